import { DataError } from './errors.js';
import type { Batch, Dataset, Item, Transform } from './types.js';

/** Options of batches(). */
export interface BatchOptions {
  batchSize: number;
  transform?: Transform;
  /** Batches decoded ahead while the consumer works on the current one (0 = none). */
  prefetch?: number;
  /** Sample indices to visit, in this order; default all, in dataset order. */
  indices?: readonly number[];
}

/** Yields the dataset as NCHW batches in order (the last one may be partial), decoding up to `prefetch` batches ahead. */
export async function* batches(dataset: Dataset, opts: BatchOptions): AsyncGenerator<Batch> {
  const { batchSize, transform = {}, prefetch = 2 } = opts;
  if (!(Number.isInteger(batchSize) && batchSize > 0)) throw new DataError(`batchSize must be a positive integer, got ${batchSize}`);
  if (!(Number.isInteger(prefetch) && prefetch >= 0)) throw new DataError(`prefetch must be a non-negative integer, got ${prefetch}`);
  const indices = opts.indices ?? allIndices(dataset);
  const count = Math.ceil(indices.length / batchSize);
  const queue: Promise<Batch>[] = [];
  let next = 0;
  for (;;) {
    while (queue.length <= prefetch && next < count) {
      const start = next++ * batchSize;
      const pending = loadBatch(dataset, indices.slice(start, start + batchSize), transform);
      pending.catch(() => {}); // a failure surfaces when its turn comes; this stops it counting as unhandled meanwhile
      queue.push(pending);
    }
    const head = queue.shift();
    if (!head) return;
    yield await head;
  }
}

/** Decodes the given samples (default all) into one batch, e.g. a calibration set. */
export function loadAll(dataset: Dataset, transform: Transform = {}, indices?: readonly number[]): Promise<Batch> {
  return loadBatch(dataset, indices ?? allIndices(dataset), transform);
}

/** 0..size-1. */
function allIndices(dataset: Dataset): number[] {
  return Array.from({ length: dataset.size }, (_, i) => i);
}

/** Decodes samples concurrently and packs them into one batch; the first failure by position is thrown. */
async function loadBatch(dataset: Dataset, indices: readonly number[], transform: Transform): Promise<Batch> {
  const settled = await Promise.allSettled(indices.map((i) => dataset.get(i, transform)));
  const items = settled.map((s) => {
    if (s.status === 'rejected') throw s.reason;
    return s.value;
  });
  return pack(items);
}

/** Copies same-shaped items into one NCHW batch, or names the first item whose shape differs. */
function pack(items: Item[]): Batch {
  const first = items[0];
  const [c, h, w] = first ? first.shape : [0, 0, 0];
  const per = c * h * w;
  const data = new Float32Array(items.length * per);
  items.forEach((item, n) => {
    const [ic, ih, iw] = item.shape;
    if (ic !== c || ih !== h || iw !== w) {
      throw new DataError(
        `Image ${item.path} is ${ic}x${ih}x${iw} (CxHxW) but ${first!.path} in the same batch is ${c}x${h}x${w}; ` +
          'give a resize/crop transform so all images have one size',
      );
    }
    data.set(item.data, n * per);
  });
  return { data, shape: [items.length, c, h, w], labels: Int32Array.from(items, (i) => i.label), paths: items.map((i) => i.path) };
}
