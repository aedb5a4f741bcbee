/** What a reconstruction's calibration caches will take, known from the model before any image is read. */
import type { Unit } from '../graph/index.js';
import type { OnnxModel } from '../onnx/ir.js';
import { inferShapes } from '../onnx/shapes.js';
import { unitCacheBytesPerImage } from '../recon/caches.js';

export interface LargestCache {
  unit: Unit;
  bytesPerImage: number;
}

/** The unit whose calibration caches are largest, and their bytes per calibration image (undefined: shapes unknown). */
export function largestUnitCache(units: readonly Unit[], model: OnnxModel): LargestCache | undefined {
  let shapes: Map<string, number[]>;
  try {
    shapes = inferShapes(model);
  } catch {
    return undefined; // no estimate then
  }
  let largest: LargestCache | undefined;
  for (const unit of units) {
    const bytesPerImage = unitCacheBytesPerImage(unit, shapes);
    if (bytesPerImage !== undefined && (!largest || bytesPerImage > largest.bytesPerImage)) largest = { unit, bytesPerImage };
  }
  return largest;
}

/**
 * A reconstruction's peak memory over its largest unit's caches, measured: ResNet-18 at 224² with 1024 images holds
 * 4.21 GiB of caches in its first unit and peaks at 9.9 GB (the initialisation, DC and the FP tail come on top).
 */
export const PEAK_PER_CACHE = 2.2;

const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(1)} GiB`;

/**
 * A warning when a run with `images` calibration images would likely need more memory than the machine has
 * (`memoryBytes`), with a --num-samples (a multiple of 32) that fits in 70 % of it; undefined when it fits.
 */
export function cacheMemoryWarning(largest: LargestCache | undefined, images: number, memoryBytes: number): string | undefined {
  if (!largest) return undefined;
  const caches = largest.bytesPerImage * images;
  const peak = PEAK_PER_CACHE * caches;
  if (peak <= 0.9 * memoryBytes) return undefined;
  const fits = Math.floor((0.7 * memoryBytes) / (PEAK_PER_CACHE * largest.bytesPerImage) / 32) * 32;
  const advice = fits >= 32
    ? `if it is killed for lack of memory, use --num-samples ${fits} or fewer`
    : 'even 32 images would not fit: use a machine with more memory, or quantize at a smaller input size';
  return `unit ${largest.unit.name}'s calibration caches take ${gib(caches)} with ${images} images, and a run peaks at about ` +
    `${PEAK_PER_CACHE}× its largest caches (${gib(peak)}), more than this machine's ${gib(memoryBytes)} allow; ${advice}`;
}
