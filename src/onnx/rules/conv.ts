// Convolution and pooling: output spatial sizes from kernel, strides, dilations, pads, auto_pad and ceil_mode.
import { attrInt, attrInts, attrString } from '../attrs.js';
import { OnnxError } from '../errors.js';
import type { OnnxNode } from '../ir.js';
import type { OpRule, RuleContext } from './rule.js';

/** Spatial output sizes of a sliding window over `spatial` (ONNX Conv/MaxPool/AveragePool semantics). */
function windowOutput(node: OnnxNode, spatial: number[], kernel: number[]): number[] {
  const n = spatial.length;
  const ones = new Array<number>(n).fill(1);
  const strides = attrInts(node, 'strides', ones);
  const dilations = attrInts(node, 'dilations', ones);
  const pads = attrInts(node, 'pads', new Array<number>(2 * n).fill(0));
  const autoPad = attrString(node, 'auto_pad', 'NOTSET');
  const ceilMode = attrInt(node, 'ceil_mode', 0) === 1;
  if (kernel.length !== n || strides.length !== n || dilations.length !== n || pads.length !== 2 * n) {
    throw new OnnxError(`kernel_shape, strides, dilations and pads must cover the ${n} spatial dims`);
  }
  return spatial.map((size, i) => {
    const span = (kernel[i] - 1) * dilations[i] + 1;
    const s = strides[i];
    let out: number;
    if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') out = Math.ceil(size / s);
    else if (autoPad === 'VALID') out = Math.floor((size - span) / s) + 1;
    else if (autoPad === 'NOTSET') {
      const room = size + pads[i] + pads[i + n] - span;
      out = (ceilMode ? Math.ceil(room / s) : Math.floor(room / s)) + 1;
      // With ceil_mode a last window that would start inside the end padding is dropped (PyTorch, ONNX).
      if (ceilMode && (out - 1) * s >= size + pads[i]) out--;
    } else throw new OnnxError(`auto_pad '${autoPad}' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID`);
    if (out < 1) throw new OnnxError(`spatial dim ${i} of size ${size} is too small for a window of ${span}`);
    return out;
  });
}

function checkRank(shape: number[], what: string): void {
  if (shape.length < 3) throw new OnnxError(`${what} must be rank 3 or more (N, C, spatial...), got [${shape}]`);
}

const conv: OpRule = {
  shapes(ctx) {
    const x = ctx.shape(0), w = ctx.shape(1);
    checkRank(x, 'input');
    const group = attrInt(ctx.node, 'group', 1);
    if (w.length !== x.length || x[1] !== w[1] * group) {
      throw new OnnxError(`input [${x}] does not match weight [${w}] with group ${group}`);
    }
    const kernel = attrInts(ctx.node, 'kernel_shape', w.slice(2));
    return [[x[0], w[0], ...windowOutput(ctx.node, x.slice(2), kernel)]];
  },
};

const pool: OpRule = {
  shapes(ctx: RuleContext) {
    const x = ctx.shape(0);
    checkRank(x, 'input');
    const out = [x[0], x[1], ...windowOutput(ctx.node, x.slice(2), attrInts(ctx.node, 'kernel_shape'))];
    return ctx.node.outputs.map(() => out); // MaxPool's optional Indices output has the same shape
  },
};

const globalPool: OpRule = {
  shapes(ctx) {
    const x = ctx.shape(0);
    checkRank(x, 'input');
    return [[x[0], x[1], ...x.slice(2).map(() => 1)]];
  },
};

export const CONV_RULES: Record<string, OpRule> = {
  Conv: conv,
  MaxPool: pool,
  AveragePool: pool,
  GlobalAveragePool: globalPool,
};
