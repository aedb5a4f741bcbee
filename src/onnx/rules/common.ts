// Helpers shared by the shape/value rules: axes, broadcasting, index maps.
import { OnnxError } from '../errors.js';
import type { OnnxTensor } from '../ir.js';
import { DTYPES, numel, toNumbers } from '../tensor.js';
import type { RuleContext } from './rule.js';

/** An axis in [-rank, rank) mapped to [0, rank). */
export function normAxis(axis: number, rank: number): number {
  if (axis < -rank || axis >= rank) throw new OnnxError(`axis ${axis} out of range for rank ${rank}`);
  return axis < 0 ? axis + rank : axis;
}

/** The values of a constant integer tensor, or undefined when it is not known. */
export function intsOf(t: OnnxTensor | undefined): number[] | undefined {
  return t && toNumbers(t);
}

/** All given inputs as constants, or undefined if any is not a known constant. */
export function constInputs(ctx: RuleContext): OnnxTensor[] | undefined {
  const values: OnnxTensor[] = [];
  for (let i = 0; i < ctx.node.inputs.length; i++) {
    if (!ctx.has(i)) continue;
    const v = ctx.value(i);
    if (!v) return undefined;
    values[i] = v;
  }
  return values;
}

/** Numpy-style broadcast of several shapes. */
export function broadcastShapes(shapes: readonly number[][]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) {
      const e = s[s.length - rank + i] ?? 1;
      if (e === d || e === 1) continue;
      if (d !== 1) throw new OnnxError(`shapes ${shapes.map((s) => `[${s}]`).join(', ')} do not broadcast`);
      d = e;
    }
    out.push(d);
  }
  return out;
}

/** Row-major strides of a shape. */
export function stridesOf(dims: readonly number[]): number[] {
  const strides = new Array<number>(dims.length);
  let s = 1;
  for (let i = dims.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= dims[i];
  }
  return strides;
}

/** For each element of `outDims`, the flat index `offset + Σ coord[a]·strides[a]` of the element it reads. */
export function affineMap(outDims: readonly number[], strides: readonly number[], offset = 0): Int32Array {
  const rank = outDims.length;
  const map = new Int32Array(numel(outDims));
  const c = new Array<number>(rank).fill(0);
  let src = offset;
  for (let i = 0; i < map.length; i++) {
    map[i] = src;
    // Odometer increment of the coordinates, keeping src in step.
    for (let a = rank - 1; a >= 0; a--) {
      src += strides[a];
      if (++c[a] < outDims[a]) break;
      src -= strides[a] * outDims[a];
      c[a] = 0;
    }
  }
  return map;
}

/** Index map of a tensor of shape `dims` broadcast to `outDims`. */
export function broadcastMap(outDims: readonly number[], dims: readonly number[]): Int32Array {
  const lead = outDims.length - dims.length;
  const strides = stridesOf(dims);
  return affineMap(outDims, outDims.map((_, a) => (a < lead || dims[a - lead] === 1 ? 0 : strides[a - lead])));
}

/** A tensor of shape `dims` whose element i is element map[i] of `t` (same type, exact). */
export function gather(t: OnnxTensor, dims: number[], map: ArrayLike<number>): OnnxTensor {
  const data = new DTYPES[t.dataType].array(map.length);
  const src = t.data;
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
    for (let i = 0; i < map.length; i++) data[i] = src[map[i]] as bigint;
  } else {
    for (let i = 0; i < map.length; i++) data[i] = src[map[i]] as number;
  }
  return { name: '', dataType: t.dataType, dims, data };
}
