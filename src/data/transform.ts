import { DataError } from './errors.js';
import type { Transform } from './types.js';

const IMAGENET_MEAN = [0.485, 0.456, 0.406];
const IMAGENET_STD = [0.229, 0.224, 0.225];

/** Named transforms: `cifar` and `imagenet` normalize with the ImageNet statistics; `mnist` and `none` only scale to [0,1]. */
export const presets: Readonly<Record<string, Readonly<Transform>>> = {
  cifar: { mean: IMAGENET_MEAN, std: IMAGENET_STD },
  imagenet: { resize: 256, crop: 224, mean: IMAGENET_MEAN, std: IMAGENET_STD },
  mnist: {},
  none: {},
};

/** A preset's transform with every field given in `overrides` replacing the preset's, checked for sane values. */
export function makeTransform(preset: string, overrides: Transform = {}): Transform {
  const base = Object.hasOwn(presets, preset) ? presets[preset] : undefined;
  if (!base) throw new DataError(`Unknown transform preset "${preset}"; known presets: ${Object.keys(presets).join(', ')}`);
  const given = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  return checkTransform({ ...base, ...given });
}

/** Returns the transform unchanged, or throws a DataError naming its first nonsensical field. */
export function checkTransform(t: Transform): Transform {
  for (const key of ['resize', 'crop'] as const) {
    const v = t[key];
    if (v !== undefined && !(Number.isInteger(v) && v > 0)) {
      throw new DataError(`Transform ${key} must be a positive integer, got ${v}`);
    }
  }
  if (t.mean && !(t.mean.length > 0 && t.mean.every(Number.isFinite))) {
    throw new DataError(`Transform mean must be finite numbers, got [${t.mean.join(', ')}]`);
  }
  if (t.std && !(t.std.length > 0 && t.std.every((s) => Number.isFinite(s) && s !== 0))) {
    throw new DataError(`Transform std must be finite non-zero numbers, got [${t.std.join(', ')}]`);
  }
  return t;
}
