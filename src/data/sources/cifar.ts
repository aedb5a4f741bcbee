import * as fs from 'node:fs';
import * as path from 'node:path';
import { limited, makeDataset } from '../dataset.js';
import { DataError } from '../errors.js';
import { listDir, readFile } from '../fsutil.js';
import type { OpenOptions, Sample, Source } from '../types.js';

const SIDE = 32;
const PIXELS = 3 * SIDE * SIDE;
const RECORD = 1 + PIXELS;
const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
const BATCH_FILE = /_batch(_\d+)?\.bin$/;

/** The batch files to read: the given file, or test_batch.bin / data_batch_*.bin (numerically) of a folder. */
function batchFiles(p: string, isDir: boolean, opts: OpenOptions): string[] {
  if (!isDir) return [p];
  const found = listDir(p).files.filter((f) => BATCH_FILE.test(f));
  const wanted = opts.split === 'test'
    ? found.filter((f) => f === 'test_batch.bin')
    : found.filter((f) => f.startsWith('data_batch')).sort((a, b) => batchNumber(a) - batchNumber(b));
  if (wanted.length === 0) {
    const expected = opts.split === 'test' ? 'test_batch.bin' : 'data_batch_*.bin';
    throw new DataError(`No ${expected} in ${p} (found: ${found.join(', ') || 'none'})`);
  }
  return wanted.map((f) => path.join(p, f));
}

/** The N of data_batch_N.bin. */
function batchNumber(name: string): number {
  return Number(/(\d+)\.bin$/.exec(name)?.[1] ?? 0);
}

/** Class names from batches.meta.txt beside the batches, else CIFAR-10's. */
function classNames(dir: string): string[] {
  const meta = path.join(dir, 'batches.meta.txt');
  if (!fs.existsSync(meta)) return CIFAR10_CLASSES;
  return readFile(meta).toString('utf8').split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
}

/** CIFAR-10 binary batches: records of 1 label byte + 3072 bytes of CHW 32x32 pixels. */
export const cifarSource: Source = {
  kind: 'cifar-bin',
  summary: 'CIFAR-10 binary batches (a .bin file, or a folder of data_batch_*.bin / test_batch.bin)',
  detect: (p, isDir) => (isDir ? listDir(p).files.some((f) => BATCH_FILE.test(f)) : path.extname(p).toLowerCase() === '.bin'),
  async open(p, opts) {
    const isDir = fs.statSync(p).isDirectory();
    const classes = classNames(isDir ? p : path.dirname(p));
    const records: Buffer[] = [];
    const samples: Sample[] = [];
    for (const file of batchFiles(p, isDir, opts)) {
      const bytes = readFile(file);
      if (bytes.length === 0 || bytes.length % RECORD !== 0) {
        throw new DataError(
          `${file} is ${bytes.length} bytes, not a whole number of ${RECORD}-byte CIFAR-10 records: truncated or not a CIFAR-10 batch`,
        );
      }
      const count = limited(bytes.length / RECORD, opts.limit === undefined ? undefined : opts.limit - samples.length);
      for (let r = 0; r < count; r++) {
        const label = bytes[r * RECORD]!;
        if (label >= classes.length) {
          throw new DataError(`${file} record ${r} has label ${label} but there are ${classes.length} classes: not a CIFAR-10 batch`);
        }
        samples.push({ path: `${file}#${r}`, label });
        records.push(bytes.subarray(r * RECORD + 1, (r + 1) * RECORD));
      }
      if (samples.length === opts.limit) break;
    }
    return makeDataset({
      kind: 'cifar-bin',
      root: p,
      classes,
      channels: opts.channels ?? 3,
      samples,
      async pixels(i) {
        const chw = records[i]!;
        const data = new Uint8Array(PIXELS);
        for (let c = 0; c < 3; c++) for (let k = 0; k < SIDE * SIDE; k++) data[k * 3 + c] = chw[c * SIDE * SIDE + k]!;
        return { data, width: SIDE, height: SIDE, channels: 3 };
      },
    });
  },
};
