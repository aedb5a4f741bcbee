import { DataError } from './errors.js';
import { cifarSource } from './sources/cifar.js';
import { idxSource } from './sources/idx.js';
import { imageFolderSource } from './sources/imagefolder.js';
import { listFileSource } from './sources/listfile.js';
import { npySource } from './sources/npy.js';
import type { Source } from './types.js';

const table = new Map<string, Source>();

/** Adds a source kind; detection tries kinds in registration order. Refuses a kind that is already registered. */
export function registerSource(source: Source): void {
  if (table.has(source.kind)) throw new Error(`Dataset source kind "${source.kind}" is already registered`);
  table.set(source.kind, source);
}

/** The registered source kinds, in detection order. */
export function sources(): Source[] {
  return [...table.values()];
}

/** The source registered as `kind`, or a DataError listing the known kinds. */
export function sourceFor(kind: string): Source {
  const source = table.get(kind);
  if (!source) throw new DataError(`Unknown dataset kind "${kind}"; known kinds: ${[...table.keys()].join(', ')}`);
  return source;
}

// Image folders come last: any folder that is not CIFAR or IDX is taken for one.
for (const source of [cifarSource, idxSource, npySource, listFileSource, imageFolderSource]) registerSource(source);
