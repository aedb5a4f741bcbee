// Image inputs whose channels, height or width the file leaves free (Hugging Face exports declare pixel_values
// [batch_size, num_channels, height, width]): pdquant folds and calibrates at one size, the size of the data.
import { attrInt } from './attrs.js';
import { OnnxError } from './errors.js';
import type { OnnxModel } from './ir.js';

/** One dimension of the image input that the file leaves free. */
export interface FreeDim {
  /** Position in the input's shape (1 = channels, 2 = height, 3 = width for NCHW). */
  index: number;
  /** The file's name for it ('height'), or '?' when unnamed. */
  name: string;
}

/** The dims after the batch dim of the first input that are not numbers. */
export function freeImageDims(model: Pick<OnnxModel, 'inputs'>): FreeDim[] {
  const dims = model.inputs[0]?.dims ?? [];
  return dims.flatMap((d, index) => (index > 0 && typeof d !== 'number' ? [{ index, name: d ?? '?' }] : []));
}

/**
 * The image channel count (1 or 3) the model takes, so that gray or colour images can be converted to it before the
 * size is known: as its input declares, else the input channels of its first convolution (weight [out, in/group, kh,
 * kw]); undefined for other counts.
 */
export function imageChannels(model: OnnxModel): 1 | 3 | undefined {
  let c = model.inputs[0]?.dims?.[1];
  if (typeof c !== 'number') {
    const conv = model.nodes.find((n) => n.opType === 'Conv' && model.initializers.has(n.inputs[1] ?? ''));
    const w = conv && model.initializers.get(conv.inputs[1]!);
    c = w && w.dims.length === 4 ? w.dims[1]! * attrInt(conv, 'group', 1) : undefined;
  }
  return c === 1 || c === 3 ? c : undefined;
}

/** The size a model with free image dims is told to run at, and where that size came from (for messages). */
export interface ImageShape {
  chw: readonly number[];
  source: string;
}

/** The model with the free dims of its image input set from `shape` (its batch dim and declared dims as they are). */
export function withImageShape(model: OnnxModel, shape: ImageShape): OnnxModel {
  const free = freeImageDims(model);
  if (free.length === 0) return model;
  const input = model.inputs[0]!;
  const dims = input.dims!;
  if (shape.chw.length !== dims.length - 1)
    throw new OnnxError(`input '${input.name}' has shape [${dims.map((d) => d ?? '?').join(', ')}], but ${shape.source} are [N, ${shape.chw.join(', ')}]`);
  const pinned = dims.map((d, i) => (i > 0 && typeof d !== 'number' ? shape.chw[i - 1]! : d));
  return { ...model, inputs: [{ ...input, dims: pinned }, ...model.inputs.slice(1)] };
}

/** The error for a model with free image dims and no data to size them from. */
export function unsizedError(model: Pick<OnnxModel, 'inputs'>): OnnxError {
  const input = model.inputs[0]!;
  const names = freeImageDims(model).map((d) => d.name).join(', ');
  return new OnnxError(`input '${input.name}' [${(input.dims ?? []).map((d) => d ?? '?').join(', ')}] leaves ${names} free; ` +
    'pdquant runs such a model at the size of its images (quantize and eval take it from the data; the preprocessing sets it with --resize/--crop)');
}
