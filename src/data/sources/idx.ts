import * as fs from 'node:fs';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { limited, makeDataset } from '../dataset.js';
import { DataError, reason } from '../errors.js';
import { listDir, readFile } from '../fsutil.js';
import type { OpenOptions, Source } from '../types.js';

const IDX_FILE = /idx\d-ubyte(\.gz)?$/;
const IMAGES_FILE = /images[-.]idx3-ubyte(\.gz)?$/;
const TEST_PREFIX = /^(t10k|test)[-.]/;

/** An IDX array of unsigned bytes. */
interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

/** Reads an IDX file (gzipped or not) of unsigned bytes with the expected number of dimensions. */
function readIdx(file: string, ndim: number): IdxArray {
  let bytes: Uint8Array = readFile(file);
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch (e) {
      throw new DataError(`Cannot decompress ${file} (truncated or damaged gzip): ${reason(e)}`, { cause: e });
    }
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const magic = 0x0800 | ndim;
  if (bytes.length < 4 || view.getUint32(0) !== magic) {
    const found = bytes.length < 4 ? `only ${bytes.length} bytes` : `found ${hex(view.getUint32(0))}`;
    throw new DataError(
      `${file} is not an IDX file of unsigned bytes with ${ndim} dimensions: expected magic ${hex(magic)}, ${found}`,
    );
  }
  const header = 4 + 4 * ndim;
  if (bytes.length < header) {
    throw new DataError(`${file} is truncated: ${bytes.length} bytes, shorter than its ${header}-byte header`);
  }
  const dims = Array.from({ length: ndim }, (_, k) => view.getUint32(4 + 4 * k));
  const expected = header + dims.reduce((a, b) => a * b, 1);
  if (bytes.length < expected) {
    throw new DataError(`${file} is truncated: ${bytes.length} bytes, its header (${dims.join('x')}) needs ${expected}`);
  }
  return { dims, data: bytes.subarray(header, expected) };
}

/** A 32-bit number as 0x0000abcd. */
function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

/** The images file to read: the given file, or the one of the requested split (default train) in a folder. */
function imagesFile(p: string, isDir: boolean, opts: OpenOptions): string {
  if (!isDir) return p;
  const split = opts.split ?? 'train';
  const found = listDir(p).files.filter((f) => IMAGES_FILE.test(f));
  const wanted = found.filter((f) => (TEST_PREFIX.test(f) ? 'test' : 'train') === split);
  if (wanted.length !== 1) {
    const problem = wanted.length ? `several ${split} image files (${wanted.join(', ')}): give one file` : `no ${split} images file`;
    const expected = 'expected *-images-idx3-ubyte[.gz], t10k- for test';
    throw new DataError(`${p} has ${problem} (found: ${found.join(', ') || 'none'}; ${expected})`);
  }
  return path.join(p, wanted[0]!);
}

/** The labels file matching an images file (X-images-idx3-ubyte → X-labels-idx1-ubyte, gzipped or not), if any. */
function labelsFile(images: string): string | undefined {
  const stem = path.join(path.dirname(images), path.basename(images).replace(/images([-.])idx3-ubyte(\.gz)?$/, 'labels$1idx1-ubyte'));
  return [stem, `${stem}.gz`].find((f) => fs.existsSync(f));
}

/** MNIST-style IDX files: N×H×W unsigned-byte images with an optional matching labels file. */
export const idxSource: Source = {
  kind: 'idx',
  summary: 'IDX files as MNIST / Fashion-MNIST (*-images-idx3-ubyte[.gz] + *-labels-idx1-ubyte[.gz], or their folder)',
  detect: (p, isDir) => (isDir ? listDir(p).files.some((f) => IDX_FILE.test(f)) : IDX_FILE.test(path.basename(p))),
  async open(p, opts) {
    const file = imagesFile(p, fs.statSync(p).isDirectory(), opts);
    const images = readIdx(file, 3);
    const [total, height, width] = images.dims as [number, number, number];
    const labelFile = labelsFile(file);
    const labels = labelFile ? readIdx(labelFile, 1) : undefined;
    if (labels && labels.dims[0] !== total) {
      throw new DataError(`${labelFile} has ${labels.dims[0]} labels but ${file} has ${total} images`);
    }
    const count = limited(total, opts.limit);
    const samples = Array.from({ length: count }, (_, i) => ({ path: `${file}#${i}`, label: labels ? labels.data[i]! : -1 }));
    const classCount = labels ? labels.data.reduce((a, b) => Math.max(a, b), -1) + 1 : 0;
    const size = height * width;
    return makeDataset({
      kind: 'idx',
      root: file,
      classes: Array.from({ length: classCount }, (_, k) => String(k)),
      channels: opts.channels ?? 1,
      samples,
      pixels: async (i) => ({ data: images.data.subarray(i * size, (i + 1) * size), width, height, channels: 1 }),
    });
  },
};
