import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataError } from './errors.js';
import { sourceFor, sources } from './registry.js';
import type { Dataset, OpenOptions } from './types.js';

/** Opens a dataset folder or file, detecting its kind (ImageFolder, list .txt, CIFAR-10 .bin, IDX) unless opts.kind names one. */
export async function openDataset(spec: string, opts: OpenOptions = {}): Promise<Dataset> {
  checkOptions(opts);
  const p = path.resolve(spec);
  const stat = fs.statSync(p, { throwIfNoEntry: false });
  if (!stat) throw new DataError(`Dataset path does not exist: ${p}`);
  const source = opts.kind !== undefined ? sourceFor(opts.kind) : sources().find((s) => s.detect(p, stat.isDirectory()));
  if (!source) {
    const kinds = sources().map((s) => `  ${s.kind}: ${s.summary}`).join('\n');
    throw new DataError(`Cannot tell what kind of dataset ${p} is; expected one of:\n${kinds}`);
  }
  return source.open(p, opts);
}

/** Throws a DataError for an option value that makes no sense. */
function checkOptions(opts: OpenOptions): void {
  const { limit, channels, split } = opts;
  if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) {
    throw new DataError(`limit must be a positive integer, got ${limit}`);
  }
  if (channels !== undefined && channels !== 1 && channels !== 3) throw new DataError(`channels must be 1 or 3, got ${channels}`);
  if (split !== undefined && split !== 'train' && split !== 'test') {
    throw new DataError(`split must be "train" or "test", got "${split}"`);
  }
}
