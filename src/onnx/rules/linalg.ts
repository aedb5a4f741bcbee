// Gemm and MatMul shapes.
import { attrInt } from '../attrs.js';
import { OnnxError } from '../errors.js';
import { broadcastShapes } from './common.js';
import type { OpRule } from './rule.js';

const gemm: OpRule = {
  shapes(ctx) {
    const a = ctx.shape(0), b = ctx.shape(1);
    // pdquant's own form of a linear layer on a higher-rank activation (onnx/linear.ts): the product over A's last dim.
    if (a.length > 2 && b.length === 2 && !attrInt(ctx.node, 'transA', 0)) {
      const [k2, n] = attrInt(ctx.node, 'transB', 0) ? [b[1], b[0]] : b;
      if (a[a.length - 1] !== k2) throw new OnnxError(`inner dims differ: A [${a}], B [${b}] with transB`);
      return [[...a.slice(0, -1), n]];
    }
    if (a.length !== 2 || b.length !== 2) throw new OnnxError(`A and B must be rank 2, got [${a}] and [${b}]`);
    const [m, k] = attrInt(ctx.node, 'transA', 0) ? [a[1], a[0]] : a;
    const [k2, n] = attrInt(ctx.node, 'transB', 0) ? [b[1], b[0]] : b;
    if (k !== k2) throw new OnnxError(`inner dims differ: A [${a}], B [${b}] with transA/transB`);
    return [[m, n]];
  },
};

/** numpy.matmul: 1-D operands are promoted to matrices and the added dims dropped; batch dims broadcast. */
const matmul: OpRule = {
  shapes(ctx) {
    const a0 = ctx.shape(0), b0 = ctx.shape(1);
    if (a0.length === 0 || b0.length === 0) throw new OnnxError('MatMul operands must not be scalars');
    const a = a0.length === 1 ? [1, a0[0]] : a0;
    const b = b0.length === 1 ? [b0[0], 1] : b0;
    const k = a[a.length - 1];
    if (k !== b[b.length - 2]) throw new OnnxError(`inner dims differ: [${a0}] × [${b0}]`);
    const batch = broadcastShapes([a.slice(0, -2), b.slice(0, -2)]);
    return [[...batch, ...(a0.length === 1 ? [] : [a[a.length - 2]]), ...(b0.length === 1 ? [] : [b[b.length - 1]])]];
  },
};

export const LINALG_RULES: Record<string, OpRule> = { Gemm: gemm, MatMul: matmul };
