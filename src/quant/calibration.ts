/** The calibration set: the first N images of a folder or list file, as one engine tensor, with a hash for the run record. */
import { createHash } from 'node:crypto';
import * as E from '../engine/index.js';
import { openDataset, loadAll, type Transform } from '../data/index.js';

export interface Calibration {
  images: E.Tensor;
  count: number;
  /** sha256 of the calibration tensor (shape, then float32 values after preprocessing): equal hashes, equal calibration. */
  hash: string;
  source: string;
  /** The data were model-ready tensors, so no preprocessing was applied. */
  preprocessed: boolean;
}

/** A seeded permutation (mulberry32 + Fisher–Yates), so a folder's calibration draw is reproducible. */
export function seededPermutation(n: number, seed: number): number[] {
  let a = seed >>> 0;
  const rand = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

/**
 * A list file is used in its order (first N); a folder or other dataset gives a seeded random draw of N.
 * `channels`: what the model takes (1 or 3); images of another channel count are converted as PIL's convert("L"/"RGB").
 * `warn` hears of fewer images than asked for, and of model-ready tensors.
 */
export async function loadCalibration(
  spec: string, count: number, transform: Transform, seed = 0, channels?: 1 | 3, warn: (message: string) => void = () => {},
): Promise<Calibration> {
  const ds = await openDataset(spec, { unlabeled: true, channels });
  if (ds.size === 0) throw new Error(`The calibration data ${spec} holds no images`);
  const n = Math.min(count, ds.size);
  if (n < count) warn(`${spec} holds ${ds.size} images; calibrating on all of them instead of ${count}`);
  if (ds.preprocessed) warn(`${spec} holds model-ready tensors: used as they are, no preprocessing applied`);
  const indices = ds.kind === 'list' ? Array.from({ length: n }, (_, i) => i) : seededPermutation(ds.size, seed).slice(0, n);
  const batch = await loadAll(ds, transform, indices);
  const hash = createHash('sha256').update(batch.shape.join(',')).update(new Uint8Array(batch.data.buffer, batch.data.byteOffset, batch.data.byteLength)).digest('hex');
  return { images: E.keep(E.tensor(batch.data, batch.shape)), count: n, hash, source: spec, preprocessed: ds.preprocessed === true };
}
