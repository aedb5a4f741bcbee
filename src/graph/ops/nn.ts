/** Convolution, normalisation, pooling and dense ops (ONNX semantics on the engine). */
import * as E from '../../engine/index.js';
import { attrFloat, attrInt, attrInts, attrString } from '../../onnx/attrs.js';
import type { OnnxNode } from '../../onnx/ir.js';
import { arg, registerOps, type Kernel } from '../kernel.js';

/** ONNX pads [b0, b1, e0, e1] for 2-D spatial dims, resolving auto_pad against the input size. */
function spatialPads(node: OnnxNode, x: E.Tensor, kernel: number[], strides: number[], dilations: number[]): number[] {
  const autoPad = attrString(node, 'auto_pad', 'NOTSET');
  if (autoPad === 'NOTSET') return attrInts(node, 'pads', [0, 0, 0, 0]);
  if (autoPad === 'VALID') return [0, 0, 0, 0];
  const pads = [0, 0, 0, 0];
  for (let i = 0; i < 2; i++) {
    const size = x.shape[2 + i]!;
    const out = Math.ceil(size / strides[i]!);
    const total = Math.max(0, (out - 1) * strides[i]! + (kernel[i]! - 1) * dilations[i]! + 1 - size);
    const small = Math.floor(total / 2);
    pads[i] = autoPad === 'SAME_UPPER' ? small : total - small;
    pads[i + 2] = total - pads[i]!;
  }
  return pads;
}

/** Symmetric pads go to the op; asymmetric ones become an explicit pad first. */
function splitPads(x: E.Tensor, pads: number[], value: number): { x: E.Tensor; padding: [number, number] } {
  const [t, l, b, r] = pads as [number, number, number, number];
  if (t === b && l === r) return { x, padding: [t, l] };
  return { x: E.pad(x, [l, r, t, b], value), padding: [0, 0] };
}

function check2d(node: OnnxNode, x: E.Tensor): void {
  if (x.rank !== 4) throw new RangeError(`node ${node.name} (${node.opType}): pdquant supports 2-D (rank-4 NCHW) inputs, got rank ${x.rank}`);
}

const conv = (node: OnnxNode): Kernel => {
  const group = attrInt(node, 'group', 1);
  const strides = attrInts(node, 'strides', [1, 1]);
  const dilations = attrInts(node, 'dilations', [1, 1]);
  return (args) => {
    const x = arg(node, args, 0);
    const w = arg(node, args, 1);
    check2d(node, x);
    const kernel = attrInts(node, 'kernel_shape', w.shape.slice(2));
    const p = splitPads(x, spatialPads(node, x, kernel, strides, dilations), 0);
    const y = E.conv2d(p.x, w, args[2] ?? null, { stride: strides as [number, number], padding: p.padding, dilation: dilations as [number, number], groups: group });
    if (p.x !== x) p.x.dispose();
    return y;
  };
};

const batchNorm = (node: OnnxNode): Kernel => {
  const eps = attrFloat(node, 'epsilon', 1e-5);
  return (args) =>
    E.batchNorm(arg(node, args, 0), { weight: arg(node, args, 1), bias: arg(node, args, 2), runningMean: arg(node, args, 3), runningVar: arg(node, args, 4), eps });
};

function pool(kind: 'max' | 'avg') {
  return (node: OnnxNode): Kernel => {
    const kernel = attrInts(node, 'kernel_shape');
    const strides = attrInts(node, 'strides', [1, 1]);
    const dilations = attrInts(node, 'dilations', [1, 1]);
    const ceilMode = attrInt(node, 'ceil_mode', 0) === 1;
    const countIncludePad = attrInt(node, 'count_include_pad', 0) === 1;
    return (args) => {
      const x = arg(node, args, 0);
      check2d(node, x);
      const pads = spatialPads(node, x, kernel, strides, dilations);
      const o = { kernel: kernel as [number, number], stride: strides as [number, number], ceilMode };
      if (kind === 'max') {
        const p = splitPads(x, pads, -Infinity);
        const y = E.maxPool2d(p.x, { ...o, padding: p.padding, dilation: dilations as [number, number] });
        if (p.x !== x) p.x.dispose();
        return y;
      }
      const [t, l, b, r] = pads as [number, number, number, number];
      if (t !== b || l !== r) throw new RangeError(`node ${node.name} (AveragePool): asymmetric pads are not supported`);
      return E.avgPool2d(x, { ...o, padding: [t, l], countIncludePad });
    };
  };
}

/**
 * A linear layer over the last dim of a rank-3 or rank-4 activation (pdquant's Gemm on [N, H, W, C] or [N, L, C]) as a
 * 1×1 convolution of the channels-first view: the same products, on the engine's convolution kernels, which are
 * tens of times faster on CPU than its matrix product for these shapes (ConvNeXt's linear layers).
 */
function linearNd(x: E.Tensor, w: E.Tensor, bias: E.Tensor | null): E.Tensor {
  const [out, inner] = w.shape as [number, number];
  const o = { stride: [1, 1] as [number, number], padding: [0, 0] as [number, number], dilation: [1, 1] as [number, number], groups: 1 };
  return E.tidy(() => {
    const kernel = w.reshape([out, inner, 1, 1]);
    if (x.rank === 4) return E.conv2d(x.permute([0, 3, 1, 2]), kernel, bias, o).permute([0, 2, 3, 1]);
    const [n, l] = x.shape as [number, number, number];
    return E.conv2d(x.permute([0, 2, 1]).reshape([n, inner, l, 1]), kernel, bias, o).reshape([n, out, l]).permute([0, 2, 1]);
  });
}

const gemm = (node: OnnxNode): Kernel => {
  const alpha = attrFloat(node, 'alpha', 1);
  const beta = attrFloat(node, 'beta', 1);
  const transA = attrInt(node, 'transA', 0) === 1;
  const transB = attrInt(node, 'transB', 0) === 1;
  return (args) => {
    let a = arg(node, args, 0);
    const b = arg(node, args, 1);
    if (transA) a = a.permute([1, 0]);
    // The weight is kept as given; linear() wants [out, in].
    const w = transB ? b : b.permute([1, 0]);
    const c = args[2];
    const bias = alpha === 1 && beta === 1 ? (c ?? null) : null;
    let y = !transA && (a.rank === 3 || a.rank === 4) ? linearNd(a, w, bias) : E.linear(a, w, bias);
    if (alpha !== 1) y = y.mul(alpha);
    if (c && !(alpha === 1 && beta === 1)) y = y.add(beta === 1 ? c : c.mul(beta));
    return y;
  };
};

/** LayerNormalization (opset 17): normalises over the dims from `axis` to the last; Scale and B have those dims' shape. */
const layerNorm = (node: OnnxNode): Kernel => {
  const axis = attrInt(node, 'axis', -1);
  const eps = attrFloat(node, 'epsilon', 1e-5);
  return (args) => {
    const x = arg(node, args, 0);
    const from = axis < 0 ? x.rank + axis : axis;
    if (from < 0 || from >= x.rank) throw new RangeError(`node ${node.name} (LayerNormalization): axis ${axis} is outside rank ${x.rank}`);
    return E.layerNorm(x, x.shape.slice(from), arg(node, args, 1), args[2] ?? null, eps);
  };
};

registerOps({
  Conv: conv,
  LayerNormalization: layerNorm,
  BatchNormalization: batchNorm,
  MaxPool: pool('max'),
  AveragePool: pool('avg'),
  GlobalAveragePool: (node) => (args) => {
    const x = arg(node, args, 0);
    return x.mean(Array.from({ length: x.rank - 2 }, (_, i) => i + 2), true);
  },
  Gemm: gemm,
  MatMul: (node) => (args) => arg(node, args, 0).matmul(arg(node, args, 1)),
});
