/** Neural-network ops over tensors (NCHW layout), forward and autograd gradients by LibTorch. */
import { native } from './native.js';
import { Tensor, type TensorLike } from './tensor.js';
import { call, checkRank, checkInt, checkProbability } from './errors.js';

type Pair = number | [number, number];
const pair = (v: Pair): [number, number] => (typeof v === 'number' ? [v, v] : v);

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
}

/** 2-D convolution: x [N,C,H,W], weight [O,C/groups,kh,kw], bias [O] or null. */
export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, o: Conv2dOptions = {}): Tensor {
  checkRank('conv2d', 'input', x.shape, [4]);
  checkRank('conv2d', 'weight', weight.shape, [4]);
  const groups = o.groups ?? 1;
  checkInt('conv2d', 'groups', groups, 1);
  const cin = x.shape[1]!;
  if (cin !== weight.shape[1]! * groups)
    throw new RangeError(`Error in conv2d: input has ${cin} channels but weight expects ${weight.shape[1]! * groups} (${weight.shape[1]} × groups ${groups})`);
  return new Tensor(call('conv2d', () =>
    native.conv2d(x.handle, weight.handle, bias?.handle ?? null, pair(o.stride ?? 1), pair(o.padding ?? 0), pair(o.dilation ?? 1), groups)));
}

/** y = x Wᵀ + b: x [..., in], weight [out, in]. */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  checkRank('linear', 'weight', weight.shape, [2]);
  const inF = x.shape[x.rank - 1];
  if (inF !== weight.shape[1])
    throw new RangeError(`Error in linear: input has ${inF} features but weight expects ${weight.shape[1]}`);
  return new Tensor(call('linear', () => native.linear(x.handle, weight.handle, bias?.handle ?? null)));
}

export interface BatchNormParams {
  weight: Tensor | null;
  bias: Tensor | null;
  runningMean: Tensor | null;
  runningVar: Tensor | null;
  eps: number;
  momentum?: number;
}
/** Batch normalisation over dim 1. Training mode normalises by the batch statistics (and updates the running ones). */
export function batchNorm(x: Tensor, p: BatchNormParams, training = false): Tensor {
  return new Tensor(call('batchNorm', () =>
    native.batchNorm(x.handle, p.weight?.handle ?? null, p.bias?.handle ?? null, p.runningMean?.handle ?? null,
      p.runningVar?.handle ?? null, training, p.momentum ?? 0.1, p.eps)));
}

/** Layer normalisation over the last `normalizedShape.length` dims, with optional elementwise weight and bias of that shape. */
export function layerNorm(x: Tensor, normalizedShape: readonly number[], weight: Tensor | null, bias: Tensor | null, eps: number): Tensor {
  return new Tensor(call('layerNorm', () => native.layerNorm(x.handle, [...normalizedShape], weight?.handle ?? null, bias?.handle ?? null, eps)));
}

export function relu(x: Tensor): Tensor {
  return x.relu();
}
export function hardtanh(x: Tensor, min: number, max: number): Tensor {
  return new Tensor(call('hardtanh', () => native.hardtanh(x.handle, min, max)));
}
export function relu6(x: Tensor): Tensor {
  return hardtanh(x, 0, 6);
}
export function sigmoid(x: Tensor): Tensor {
  return x.sigmoid();
}

export interface Pool2dOptions {
  kernel: Pair;
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  ceilMode?: boolean;
  countIncludePad?: boolean;
}
export function maxPool2d(x: Tensor, o: Pool2dOptions): Tensor {
  checkRank('maxPool2d', 'input', x.shape, [4]);
  return new Tensor(call('maxPool2d', () =>
    native.maxPool2d(x.handle, pair(o.kernel), pair(o.stride ?? o.kernel), pair(o.padding ?? 0), pair(o.dilation ?? 1), o.ceilMode ?? false)));
}
export function avgPool2d(x: Tensor, o: Pool2dOptions): Tensor {
  checkRank('avgPool2d', 'input', x.shape, [4]);
  return new Tensor(call('avgPool2d', () =>
    native.avgPool2d(x.handle, pair(o.kernel), pair(o.stride ?? o.kernel), pair(o.padding ?? 0), o.ceilMode ?? false, o.countIncludePad ?? true)));
}
export function adaptiveAvgPool2d(x: Tensor, out: Pair): Tensor {
  checkRank('adaptiveAvgPool2d', 'input', x.shape, [4]);
  return new Tensor(call('adaptiveAvgPool2d', () => native.adaptiveAvgPool2d(x.handle, pair(out))));
}

/** Constant padding; pads as torch.nn.functional.pad: [lastBegin, lastEnd, prevBegin, prevEnd, ...] (negative crops). */
export function pad(x: Tensor, pads: number[], value = 0): Tensor {
  if (pads.length % 2 !== 0 || pads.length / 2 > x.rank)
    throw new RangeError(`Error in pad: pads must have an even length of at most 2 × rank (${2 * x.rank}), got ${pads.length}`);
  return new Tensor(call('pad', () => native.pad(x.handle, pads, value)));
}

/** Concatenation along dim. */
export function cat(xs: Tensor[], dim = 0): Tensor {
  if (xs.length === 0) throw new RangeError('Error in cat: needs at least one tensor');
  return new Tensor(call('cat', () => native.cat(xs.map((t) => t.handle), dim)));
}

/** Elementwise choice: cond ? a : b (cond is bool). */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  if (cond.dtype !== 'bool') throw new TypeError(`Error in where: condition must be bool, got ${cond.dtype}`);
  return new Tensor(call('where', () => native.where(cond.handle, typeof a === 'number' ? a : a.handle, typeof b === 'number' ? b : b.handle)));
}

export function softmax(x: Tensor, dim = -1): Tensor {
  return new Tensor(call('softmax', () => native.softmax(x.handle, dim)));
}
export function logSoftmax(x: Tensor, dim = -1): Tensor {
  return new Tensor(call('logSoftmax', () => native.logSoftmax(x.handle, dim)));
}

/** KL(target ‖ input) as F.kl_div(logInput, target, reduction="batchmean"): Σ target·(log target − logInput) / N. */
export function klDivBatchmean(logInput: Tensor, target: Tensor): Tensor {
  if (logInput.shape.join() !== target.shape.join())
    throw new RangeError(`Error in klDiv: shapes differ: [${logInput.shape}] vs [${target.shape}]`);
  const sum = new Tensor(call('klDiv', () => native.klDivSum(logInput.handle, target.handle)));
  const out = sum.div(logInput.shape[0]!);
  sum.dispose();
  return out;
}

/** Mean squared error. */
export function mseLoss(a: Tensor, b: Tensor): Tensor {
  return new Tensor(call('mseLoss', () => native.mseLoss(a.handle, b.handle)));
}

/**
 * Per-row moment matching, [B]: Σ_c (mean_c − μ_bc)² + (std_c − σ_bc)², where μ_bc and σ_bc² are the mean and the
 * unbiased variance of x[b, c, ...] and σ = √(σ² + eps). `mean` and `std` [C] are constants. One fused pass forward
 * and backward on CPU (float); the composite of mean/var elsewhere.
 */
export function rowMomentLoss(x: Tensor, mean: Tensor, std: Tensor, eps: number): Tensor {
  if (x.rank < 3) throw new RangeError(`Error in rowMomentLoss: input must be rank 3 or more [B, C, ...], got rank ${x.rank}`);
  const c = x.shape[1]!;
  if (mean.size !== c || std.size !== c)
    throw new RangeError(`Error in rowMomentLoss: input has ${c} channels but the statistics have ${mean.size} and ${std.size}`);
  return new Tensor(call('rowMomentLoss', () => native.rowMomentLoss(x.handle, mean.handle, std.handle, eps)));
}

/** Per-row squared distance, [B]: Σ over all but dim 0 of (x − y)²; y is a constant (no gradient). */
export function rowSqDist(x: Tensor, y: Tensor): Tensor {
  if (x.shape.join() !== y.shape.join()) throw new RangeError(`Error in rowSqDist: shapes differ: [${x.shape}] vs [${y.shape}]`);
  return new Tensor(call('rowSqDist', () => native.rowSqDist(x.handle, y.handle)));
}

/**
 * Uniform fake quantization y = (clamp(round(x/δ) + z, qmin, qmax) − z)·δ with a straight-through round: gradients
 * reach x (1 inside the clamp range, inclusive, 0 outside) and δ (through x/δ and ·δ, as LSQ); z gets none. δ and z
 * broadcast against x; with one value each, CPU float32 runs one fused pass forward and one backward.
 */
export function fakeQuantize(x: Tensor, delta: Tensor, zeroPoint: Tensor, qmin: number, qmax: number): Tensor {
  return new Tensor(call('fakeQuantize', () => native.fakeQuantize(x.handle, delta.handle, zeroPoint.handle, qmin, qmax)));
}

/**
 * QDrop's activation quantizer: where(u < p, fakeQuantize(x, ...), x) with u uniform per element (the engine's
 * seeded generator), gradients as the composite's. With one δ and z on CPU float32 it is one fused pass each way, the
 * draws coming from a counter-based hash (the mask for a seed does not depend on the thread count).
 */
export function dropFakeQuantize(x: Tensor, delta: Tensor, zeroPoint: Tensor, qmin: number, qmax: number, p: number): Tensor {
  checkProbability(p);
  return new Tensor(call('dropFakeQuantize', () => native.dropFakeQuantize(x.handle, delta.handle, zeroPoint.handle, qmin, qmax, p)));
}

/**
 * where(u < p, a, b) elementwise with u uniform in [0, 1) per element, drawn from the engine's seeded generator:
 * gradients reach a where it was taken and b elsewhere. On CPU float32 the draws come from a counter-based hash in
 * the same pass (no random tensor is made), so the mask for a seed does not depend on the thread count.
 */
export function dropSelect(a: Tensor, b: Tensor, p: number): Tensor {
  if (a.shape.join() !== b.shape.join()) throw new RangeError(`Error in dropSelect: shapes differ: [${a.shape}] vs [${b.shape}]`);
  checkProbability(p);
  return new Tensor(call('dropSelect', () => native.dropSelect(a.handle, b.handle, p)));
}

/** Mean cross-entropy of logits [N,C] against int64 class indices [N]. */
export function crossEntropy(logits: Tensor, targets: Tensor): Tensor {
  checkRank('crossEntropy', 'logits', logits.shape, [2]);
  if (targets.dtype !== 'int64') throw new TypeError(`Error in crossEntropy: targets must be int64, got ${targets.dtype}`);
  return new Tensor(call('crossEntropy', () => native.crossEntropy(logits.handle, targets.handle)));
}
