import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse, type NpyArray } from 'npyjs';
import { limited, makeDataset } from '../dataset.js';
import { DataError, reason } from '../errors.js';
import { readFile } from '../fsutil.js';
import type { Dataset, Item, OpenOptions, Sample, Source } from '../types.js';

/** Reads a NumPy .npy file (C order), turning what is wrong with it into a DataError naming the file. */
function readNpy(file: string): NpyArray {
  const bytes = readFile(file);
  let array: NpyArray;
  try {
    // parse() takes an ArrayBuffer: a large file's Buffer owns its whole buffer, a small one may sit in a shared pool.
    const whole = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
    array = parse((whole ? bytes.buffer : bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)) as ArrayBuffer);
  } catch (e) {
    const magic = bytes.subarray(0, 6).equals(Buffer.from('\x93NUMPY', 'latin1'));
    throw new DataError(magic ? `${file} is a truncated or damaged .npy file (${reason(e)})` : `${file} is not a NumPy .npy file (it does not start with \\x93NUMPY)`, { cause: e });
  }
  if (array.fortranOrder) throw new DataError(`${file} is stored in Fortran order; save it with np.save(path, np.ascontiguousarray(a))`);
  const expected = array.shape.reduce((a, b) => a * b, 1);
  if ((array.data as unknown as ArrayLike<number>).length !== expected) {
    throw new DataError(`${file} is truncated: its header says ${array.shape.join('×')} (${expected} values)`);
  }
  return array;
}

/** The labels file beside an .npy of inputs: X_images.npy → X_labels.npy (last "images" → "labels"), else X.labels.npy. */
function labelsFile(file: string): string | undefined {
  const dir = path.dirname(file);
  const base = path.basename(file, '.npy');
  const at = base.lastIndexOf('images');
  const candidates = [...(at >= 0 ? [`${base.slice(0, at)}labels${base.slice(at + 6)}.npy`] : []), `${base}.labels.npy`];
  return candidates.map((c) => path.join(dir, c)).find((f) => fs.existsSync(f));
}

/** Integer class labels, one per sample. */
function readLabels(file: string, count: number): Int32Array {
  const a = readNpy(file);
  if (!/^[iu][1248]$/.test(a.dtype) || a.shape.length !== 1) {
    throw new DataError(`${file} must hold one integer label per sample (a 1-D integer array), but is ${a.dtype} of shape (${a.shape.join(', ')})`);
  }
  if (a.shape[0] !== count) throw new DataError(`${file} has ${a.shape[0]} labels but its inputs have ${count} samples`);
  const labels = Int32Array.from(a.data as unknown as ArrayLike<number | bigint>, Number);
  const bad = labels.findIndex((l) => l < 0);
  if (bad >= 0) throw new DataError(`${file}: label ${bad} is ${labels[bad]}; labels are class indices 0, 1, ...`);
  return labels;
}

/** Model-ready float tensors [N, C, H, W]: fed as they are, so transforms do not apply. */
function tensorDataset(file: string, a: NpyArray, labels: Int32Array | undefined, opts: OpenOptions): Dataset {
  const [total, c, h, w] = a.shape as [number, number, number, number];
  const values = a.data as Float32Array | Float64Array;
  const count = limited(total, opts.limit);
  const per = c * h * w;
  const samples: Sample[] = Array.from({ length: count }, (_, i) => ({ path: `${file}#${i}`, label: labels ? labels[i]! : -1 }));
  const classCount = labels ? labels.reduce((m, l) => Math.max(m, l), -1) + 1 : 0;
  const classes = Array.from({ length: classCount }, (_, k) => String(k));
  const sample = (i: number): Sample => {
    const s = Number.isInteger(i) ? samples[i] : undefined;
    if (!s) throw new DataError(`Sample index ${i} is out of range for ${file} (${count} samples)`);
    return s;
  };
  return {
    kind: 'npy',
    root: file,
    size: count,
    classes,
    channels: c,
    preprocessed: true,
    sample,
    async get(i: number): Promise<Item> {
      const { path: p, label } = sample(i);
      return { path: p, label, data: Float32Array.from(values.subarray(i * per, (i + 1) * per)), shape: [c, h, w] };
    },
    describe: () => `npy ${file}: ${count} model-ready tensors ${c}×${h}×${w}, ${classCount ? `${classCount} classes` : 'unlabelled'}`,
  };
}

/**
 * NumPy .npy files: float32/float64 [N, C, H, W] are model-ready inputs (your own preprocessing, used as they are);
 * uint8 [N, H, W] or [N, H, W, C] are images that the preprocessing options apply to. Labels for evaluation come from
 * an integer .npy beside it (X_images.npy → X_labels.npy, else X.labels.npy).
 */
export const npySource: Source = {
  kind: 'npy',
  summary: 'NumPy .npy: float32 [N,C,H,W] model-ready inputs, or uint8 [N,H,W(,C)] images; labels in X_labels.npy or X.labels.npy beside it',
  detect: (p, isDir) => !isDir && p.toLowerCase().endsWith('.npy'),
  async open(file, opts) {
    const a = readNpy(file);
    const total = a.shape[0] ?? 0;
    const labelFile = labelsFile(file);
    const labels = labelFile ? readLabels(labelFile, total) : undefined;
    if (a.dtype === 'f4' || a.dtype === 'f8' || a.dtype === 'f2') {
      if (a.shape.length !== 4) throw new DataError(`${file} holds floats of shape (${a.shape.join(', ')}); model-ready inputs are [N, C, H, W]`);
      return tensorDataset(file, a, labels, opts);
    }
    if (a.dtype === 'u1') {
      if (a.shape.length !== 3 && !(a.shape.length === 4 && (a.shape[3] === 1 || a.shape[3] === 3))) {
        throw new DataError(`${file} holds uint8 of shape (${a.shape.join(', ')}); images are [N, H, W] or [N, H, W, C] with C 1 or 3`);
      }
      const [, height, width, ch = 1] = a.shape as [number, number, number, number?];
      const size = height * width * ch;
      const count = limited(total, opts.limit);
      const data = a.data as Uint8Array;
      return makeDataset({
        kind: 'npy',
        root: file,
        classes: labels ? Array.from({ length: labels.reduce((m, l) => Math.max(m, l), -1) + 1 }, (_, k) => String(k)) : [],
        channels: opts.channels ?? ch,
        samples: Array.from({ length: count }, (_, i) => ({ path: `${file}#${i}`, label: labels ? labels[i]! : -1 })),
        pixels: async (i) => ({ data: data.subarray(i * size, (i + 1) * size), width, height, channels: ch }),
      });
    }
    throw new DataError(`${file} holds ${a.dtype}; pdquant reads float32/float64 [N, C, H, W] inputs or uint8 images`);
  },
};
