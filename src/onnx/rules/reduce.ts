// ReduceMean shape: axes as attribute before opset 18, as input from 18.
import { attrInt, attrInts } from '../attrs.js';
import { intsOf, normAxis } from './common.js';
import type { OpRule } from './rule.js';

const reduce: OpRule = {
  shapes(ctx) {
    const x = ctx.shape(0);
    let axes: number[] | undefined;
    if (ctx.opset < 18) axes = attrInts(ctx.node, 'axes', []);
    else if (ctx.has(1)) axes = intsOf(ctx.value(1));
    else axes = [];
    if (!axes) return undefined;
    if (axes.length === 0 && attrInt(ctx.node, 'noop_with_empty_axes', 0) === 1) return [x];
    const reduced = new Set(axes.length === 0 ? x.map((_, i) => i) : axes.map((a) => normAxis(a, x.length)));
    const keep = attrInt(ctx.node, 'keepdims', 1) === 1;
    return [x.flatMap((d, i) => (!reduced.has(i) ? [d] : keep ? [1] : []))];
  },
};

export const REDUCE_RULES: Record<string, OpRule> = { ReduceMean: reduce };
