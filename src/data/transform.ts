import { DataError } from './errors.js';
import type { ImageSize, Transform } from './types.js';

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
  return withOverrides(base, overrides);
}

/** `base` with every field that `overrides` defines replacing its own, checked for sane values. */
export function withOverrides(base: Transform, overrides: Transform): Transform {
  const given = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  return checkTransform({ ...base, ...given });
}

/** Returns the transform unchanged, or throws a DataError naming its first nonsensical field. */
export function checkTransform(t: Transform): Transform {
  for (const key of ['resize', 'crop'] as const) {
    const v = t[key];
    const sides = v === undefined ? [] : typeof v === 'number' ? [v] : v;
    if ((typeof v === 'object' && v.length !== 2) || !sides.every((s) => Number.isInteger(s) && s > 0)) {
      throw new DataError(`Transform ${key} must be a positive integer or [height, width] of positive integers, got ${formatSize(v!)}`);
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

/** A size as written on the command line and in metadata: "224", or height × width as "256x192". */
export function formatSize(size: ImageSize): string {
  return typeof size === 'number' ? String(size) : size.join('x');
}

/** "224" → 224, "256x192" → [256, 192]; undefined for anything else. */
export function parseSize(text: string): ImageSize | undefined {
  const m = /^\s*(\d+)\s*(?:[x×]\s*(\d+))?\s*$/.exec(text);
  if (!m) return undefined;
  const h = Number(m[1]);
  if (m[2] === undefined) return h > 0 ? h : undefined;
  const w = Number(m[2]);
  return h > 0 && w > 0 ? [h, w] : undefined;
}

const METADATA_KEYS = { resize: 'preprocess_resize', crop: 'preprocess_crop', mean: 'preprocess_mean', std: 'preprocess_std' } as const;

/**
 * The transform as ONNX metadata, so that an exported model carries the preprocessing it was calibrated with.
 * Mean and std are always written (0 and 1 for scaling to [0, 1] only), which tells "no normalization" apart from
 * "nothing recorded".
 */
export function transformToMetadata(t: Transform): Record<string, string> {
  const md: Record<string, string> = {};
  if (t.resize !== undefined) md[METADATA_KEYS.resize] = formatSize(t.resize);
  if (t.crop !== undefined) md[METADATA_KEYS.crop] = formatSize(t.crop);
  md[METADATA_KEYS.mean] = (t.mean ?? [0]).join(',');
  md[METADATA_KEYS.std] = (t.std ?? [1]).join(',');
  return md;
}

/** The transform a model's metadata records (both preprocess_mean and preprocess_std needed), or undefined. */
export function transformFromMetadata(md: Readonly<Record<string, string>>): Transform | undefined {
  if (md[METADATA_KEYS.mean] === undefined || md[METADATA_KEYS.std] === undefined) return undefined;
  const list = (key: string): number[] => {
    const v = md[key]!.split(',').map(Number);
    if (!v.every(Number.isFinite)) throw new DataError(`The model's metadata ${key} = "${md[key]}" is not a comma-separated list of numbers`);
    return v;
  };
  const size = (key: string): ImageSize | undefined => {
    if (md[key] === undefined) return undefined;
    const v = parseSize(md[key]!);
    if (v === undefined) throw new DataError(`The model's metadata ${key} = "${md[key]}" is not a positive integer or HxW`);
    return v;
  };
  return withOverrides({ mean: list(METADATA_KEYS.mean), std: list(METADATA_KEYS.std) }, { resize: size(METADATA_KEYS.resize), crop: size(METADATA_KEYS.crop) });
}

/** "resize 256, crop 224, scale to [0, 1], mean 0.485,0.456,0.406, std 0.229,0.224,0.225", in the order applied. */
export function describeTransform(t: Transform): string {
  return [
    t.resize !== undefined ? `resize ${formatSize(t.resize)}` : '',
    t.crop !== undefined ? `crop ${formatSize(t.crop)}` : '',
    'scale to [0, 1]',
    t.mean ? `mean ${t.mean.join(',')}` : '',
    t.std ? `std ${t.std.join(',')}` : '',
  ].filter(Boolean).join(', ');
}

/** Preprocessing asked for by name and by field (the --preset, --resize, --crop, --mean and --std of quantize and eval). */
export interface PreprocessOptions {
  preset?: string;
  resize?: ImageSize;
  crop?: ImageSize;
  mean?: number[];
  std?: number[];
}

/**
 * The transform for `preset`; without one: the preprocessing recorded in the model's metadata (preprocess_mean,
 * preprocess_std, optionally preprocess_resize and preprocess_crop, as pdquant writes into exported models), else
 * cifar for a 32×32 input, imagenet for 224×224, and [0, 1] scaling otherwise. resize, crop, mean and std
 * replace single fields of that.
 */
export function transformFor(o: PreprocessOptions, inputHw: (number | null)[], metadata: Record<string, string> = {}): Transform {
  let base: Transform;
  if (o.preset !== undefined) {
    if (!(o.preset in presets)) throw new Error(`Unknown preset ${o.preset}; choose one of ${Object.keys(presets).join(', ')}`);
    base = makeTransform(o.preset);
  } else {
    const [h, w] = inputHw;
    base = transformFromMetadata(metadata) ?? (h === 224 && w === 224 ? makeTransform('imagenet') : h === 32 && w === 32 ? makeTransform('cifar') : {});
  }
  return withOverrides(base, { resize: o.resize, crop: o.crop, mean: o.mean, std: o.std });
}
