// Ops that move elements without arithmetic: views (Reshape, Flatten, Squeeze, Unsqueeze), Transpose, Slice,
// Concat, Gather, Pad. Evaluation on constants is exact for every element type.
import { attrInt, attrInts } from '../attrs.js';
import { OnnxError } from '../errors.js';
import type { OnnxNode, OnnxTensor } from '../ir.js';
import { DTYPES, numel, renamed, toNumbers } from '../tensor.js';
import { affineMap, constInputs, gather, intsOf, normAxis, stridesOf } from './common.js';
import type { OpRule, RuleContext } from './rule.js';

/** A rule for an op whose output is its input's data under a new shape. */
function view(shape: (ctx: RuleContext, x: number[]) => number[] | undefined): OpRule {
  return {
    shapes(ctx) {
      const out = shape(ctx, ctx.shape(0));
      return out && [out];
    },
    evaluate(ctx) {
      const x = ctx.value(0);
      const out = x && shape(ctx, x.dims);
      return out && [renamed(x, '', out)];
    },
  };
}

/** Reshape target: 0 copies the input dim (unless allowzero), -1 is inferred. */
function reshapeDims(x: number[], shape: number[], allowZero: boolean): number[] {
  const out = shape.map((d, i) => (d === 0 && !allowZero ? x[i] : d));
  if (out.some((d) => d === undefined || d < -1)) throw new OnnxError(`cannot reshape [${x}] to [${shape}]`);
  const infer = out.indexOf(-1);
  if (infer !== out.lastIndexOf(-1)) throw new OnnxError(`shape [${shape}] has more than one -1`);
  const total = numel(x);
  if (infer >= 0) {
    const known = numel(out.filter((_, i) => i !== infer));
    if (known === 0 || total % known !== 0) throw new OnnxError(`cannot reshape [${x}] to [${shape}]`);
    out[infer] = total / known;
  }
  if (numel(out) !== total) throw new OnnxError(`cannot reshape [${x}] (${total} elements) to [${shape}]`);
  return out;
}

/** Squeeze/Unsqueeze axes: an attribute up to opset 12, an (optional for Squeeze) input from 13. */
function axesOf(ctx: RuleContext): number[] | null | undefined {
  if (ctx.opset < 13) return ctx.node.attrs.axes ? attrInts(ctx.node, 'axes') : null;
  return ctx.has(1) ? intsOf(ctx.value(1)) : null;
}

const squeeze = view((ctx, x) => {
  const axes = axesOf(ctx);
  if (axes === undefined) return undefined;
  if (axes === null) return x.filter((d) => d !== 1);
  const drop = new Set(axes.map((a) => normAxis(a, x.length)));
  for (const a of drop) if (x[a] !== 1) throw new OnnxError(`cannot squeeze axis ${a} of [${x}]`);
  return x.filter((_, i) => !drop.has(i));
});

const unsqueeze = view((ctx, x) => {
  const axes = axesOf(ctx);
  if (axes === null) throw new OnnxError('Unsqueeze needs axes');
  if (axes === undefined) return undefined;
  const rank = x.length + axes.length;
  const added = new Set(axes.map((a) => normAxis(a, rank)));
  const rest = [...x];
  return Array.from({ length: rank }, (_, i) => (added.has(i) ? 1 : rest.shift() as number));
});

const flatten = view((ctx, x) => {
  const axis = normAxis(attrInt(ctx.node, 'axis', 1), x.length + 1);
  return [numel(x.slice(0, axis)), numel(x.slice(axis))];
});

const reshape = view((ctx, x) => {
  const shape = intsOf(ctx.value(1));
  return shape && reshapeDims(x, shape, attrInt(ctx.node, 'allowzero', 0) === 1);
});

const permOf = (ctx: RuleContext, rank: number): number[] =>
  attrInts(ctx.node, 'perm', Array.from({ length: rank }, (_, i) => rank - 1 - i));

const transpose: OpRule = {
  shapes(ctx) {
    const x = ctx.shape(0);
    return [permOf(ctx, x.length).map((p) => x[p])];
  },
  evaluate(ctx) {
    const x = ctx.value(0);
    if (!x) return undefined;
    const perm = permOf(ctx, x.dims.length);
    const strides = stridesOf(x.dims);
    const dims = perm.map((p) => x.dims[p]);
    return [gather(x, dims, affineMap(dims, perm.map((p) => strides[p])))];
  },
};

/** Per-axis first index, step and output size of a Slice (ONNX clamping rules, negative steps included). */
function sliceWindow(ctx: RuleContext, x: number[]): { begin: number[]; step: number[]; dims: number[] } | undefined {
  const starts = intsOf(ctx.value(1)), ends = intsOf(ctx.value(2));
  const axes = ctx.has(3) ? intsOf(ctx.value(3)) : starts?.map((_, i) => i);
  const steps = ctx.has(4) ? intsOf(ctx.value(4)) : starts?.map(() => 1);
  if (!starts || !ends || !axes || !steps) return undefined;
  const begin = x.map(() => 0), step = x.map(() => 1), dims = [...x];
  const clamp = (v: number, lo: number, hi: number): number => Math.min(Math.max(v, lo), hi);
  axes.forEach((axis, j) => {
    const a = normAxis(axis, x.length), d = x[a], k = steps[j];
    if (k === 0) throw new OnnxError('Slice step must not be 0');
    const s = starts[j] < 0 ? starts[j] + d : starts[j];
    const e = ends[j] < 0 ? ends[j] + d : ends[j];
    begin[a] = k > 0 ? clamp(s, 0, d) : clamp(s, 0, d - 1);
    const end = k > 0 ? clamp(e, 0, d) : clamp(e, -1, d - 1);
    step[a] = k;
    dims[a] = Math.max(0, Math.ceil((end - begin[a]) / k));
  });
  return { begin, step, dims };
}

const slice: OpRule = {
  shapes(ctx) {
    const w = sliceWindow(ctx, ctx.shape(0));
    return w && [w.dims];
  },
  evaluate(ctx) {
    const x = ctx.value(0);
    const w = x && sliceWindow(ctx, x.dims);
    if (!x || !w) return undefined;
    const strides = stridesOf(x.dims);
    const offset = w.begin.reduce((sum, b, a) => sum + b * strides[a], 0);
    return [gather(x, w.dims, affineMap(w.dims, strides.map((s, a) => s * w.step[a]), offset))];
  },
};

/** Output shape of Concat along `axis`. */
function concatDims(shapes: number[][], axisAttr: number): { axis: number; dims: number[] } {
  const rank = shapes[0].length;
  const axis = normAxis(axisAttr, rank);
  for (const s of shapes) {
    if (s.length !== rank || s.some((d, i) => i !== axis && d !== shapes[0][i])) {
      throw new OnnxError(`cannot concatenate ${shapes.map((t) => `[${t}]`).join(', ')} on axis ${axisAttr}`);
    }
  }
  const dims = [...shapes[0]];
  dims[axis] = shapes.reduce((sum, s) => sum + s[axis], 0);
  return { axis, dims };
}

const concat: OpRule = {
  shapes: (ctx) => [concatDims(ctx.node.inputs.map((_, i) => ctx.shape(i)), attrInt(ctx.node, 'axis')).dims],
  evaluate(ctx) {
    const inputs = constInputs(ctx);
    if (!inputs) return undefined;
    const { axis, dims } = concatDims(inputs.map((t) => t.dims), attrInt(ctx.node, 'axis'));
    const outer = numel(dims.slice(0, axis)), inner = numel(dims.slice(axis + 1));
    const data = new DTYPES[inputs[0].dataType].array(numel(dims));
    let pos = 0;
    for (let o = 0; o < outer; o++) {
      for (const t of inputs) {
        const chunk = t.dims[axis] * inner;
        (data as Float64Array).set((t.data as Float64Array).subarray(o * chunk, (o + 1) * chunk), pos);
        pos += chunk;
      }
    }
    return [{ name: '', dataType: inputs[0].dataType, dims, data }];
  },
};

/** The lengths a Split (opsets 11–26) gives its outputs along its axis, from its `split` attribute or input, else equal. */
export function splitLengths(node: OnnxNode, opset: number, dim: number, sizes: OnnxTensor | undefined): number[] {
  const parts = node.outputs.length;
  const given = opset < 13 ? (node.attrs.split ? attrInts(node, 'split') : undefined) : sizes && toNumbers(sizes);
  if (given) {
    if (given.length !== parts || given.reduce((a, b) => a + b, 0) !== dim)
      throw new OnnxError(`split sizes [${given}] do not give ${parts} parts of a dim of ${dim}`);
    return given;
  }
  // num_outputs (opset 18) or as many equal parts as outputs; the last part is smaller when dim does not divide.
  const n = node.attrs.num_outputs ? attrInt(node, 'num_outputs') : parts;
  const size = Math.ceil(dim / n);
  return Array.from({ length: parts }, (_, i) => Math.max(0, Math.min(size, dim - i * size)));
}

const split: OpRule = {
  shapes(ctx) {
    const shape = ctx.shape(0);
    const axis = normAxis(attrInt(ctx.node, 'axis', 0), shape.length);
    if (ctx.opset >= 13 && ctx.has(1) && !ctx.value(1)) return undefined;
    return splitLengths(ctx.node, ctx.opset, shape[axis]!, ctx.has(1) ? ctx.value(1) : undefined).map((n) => shape.map((d, i) => (i === axis ? n : d)));
  },
};

const gatherOp: OpRule = {
  shapes(ctx) {
    const x = ctx.shape(0);
    const axis = normAxis(attrInt(ctx.node, 'axis', 0), x.length);
    return [[...x.slice(0, axis), ...ctx.shape(1), ...x.slice(axis + 1)]];
  },
  evaluate(ctx) {
    const [x, indices] = constInputs(ctx) ?? [];
    if (!x || !indices) return undefined;
    const axis = normAxis(attrInt(ctx.node, 'axis', 0), x.dims.length);
    const n = x.dims[axis], outer = numel(x.dims.slice(0, axis)), inner = numel(x.dims.slice(axis + 1));
    const idx = (intsOf(indices) as number[]).map((i) => {
      if (i < -n || i >= n) throw new OnnxError(`index ${i} out of range for a dim of ${n}`);
      return i < 0 ? i + n : i;
    });
    const map: number[] = [];
    for (let o = 0; o < outer; o++) for (const i of idx) for (let k = 0; k < inner; k++) map.push((o * n + i) * inner + k);
    return [gather(x, [...x.dims.slice(0, axis), ...indices.dims, ...x.dims.slice(axis + 1)], map)];
  },
};

const pad: OpRule = {
  shapes(ctx) {
    const x = ctx.shape(0);
    const pads = intsOf(ctx.value(1));
    const axes = ctx.has(3) ? intsOf(ctx.value(3)) : x.map((_, i) => i);
    if (!pads || !axes) return undefined;
    if (pads.length !== 2 * axes.length) throw new OnnxError(`pads [${pads}] must hold 2 values per padded axis of [${x}]`);
    const out = [...x];
    axes.forEach((axis, j) => {
      const a = normAxis(axis, x.length);
      out[a] = x[a] + pads[j] + pads[j + axes.length];
    });
    if (out.some((d) => d < 0)) throw new OnnxError(`pads [${pads}] crop [${x}] below zero`);
    return [out];
  },
};

export const LAYOUT_RULES: Record<string, OpRule> = {
  Reshape: reshape,
  Flatten: flatten,
  Squeeze: squeeze,
  Unsqueeze: unsqueeze,
  Transpose: transpose,
  Slice: slice,
  Split: split,
  Concat: concat,
  Gather: gatherOp,
  Pad: pad,
};
