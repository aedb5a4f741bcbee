/** Layout ops: their shape arguments are constants after folding and are read at compile time. */
import * as E from '../../engine/index.js';
import { attrInt, attrInts } from '../../onnx/attrs.js';
import type { OnnxNode } from '../../onnx/ir.js';
import { toNumbers } from '../../onnx/tensor.js';
import { arg, registerOps, type CompileContext, type Kernel } from '../kernel.js';

const norm = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

/** Axes from the attribute (older opsets) or the constant input i (newer ones). */
function axesOf(node: OnnxNode, ctx: CompileContext, i: number): number[] | undefined {
  if (node.attrs.axes) return attrInts(node, 'axes');
  const name = node.inputs[i];
  return name ? toNumbers(ctx.requireConstant(node, i, 'axes')) : undefined;
}

function reshapeTo(node: OnnxNode, x: E.Tensor, spec: number[]): E.Tensor {
  const allowZero = attrInt(node, 'allowzero', 0) === 1;
  return x.reshape(spec.map((d, i) => (d === 0 && !allowZero ? x.shape[i]! : d)));
}

function slice(node: OnnxNode, ctx: CompileContext): Kernel {
  const starts = toNumbers(ctx.requireConstant(node, 1, 'starts'));
  const ends = toNumbers(ctx.requireConstant(node, 2, 'ends'));
  const axes = node.inputs[3] ? toNumbers(ctx.requireConstant(node, 3, 'axes')) : starts.map((_, i) => i);
  const steps = node.inputs[4] ? toNumbers(ctx.requireConstant(node, 4, 'steps')) : starts.map(() => 1);
  return (args) => {
    let x = arg(node, args, 0);
    return E.tidy(() => {
      for (let k = 0; k < axes.length; k++) {
        const axis = norm(axes[k]!, x.rank);
        const dim = x.shape[axis]!;
        const step = steps[k]!;
        const clampTo = (v: number, lo: number, hi: number) => Math.min(Math.max(v < 0 ? v + dim : v, lo), hi);
        if (step > 0) {
          x = x.slice(axis, clampTo(starts[k]!, 0, dim), clampTo(ends[k]!, 0, dim), step);
        } else {
          // Negative step: flip, then slice forward from the mirrored start.
          const s = clampTo(starts[k]!, -1, dim - 1);
          const e = clampTo(ends[k]!, -1, dim - 1);
          x = x.flip([axis]).slice(axis, dim - 1 - s, dim - 1 - e, -step);
        }
      }
      return x;
    });
  };
}

/** Gather with constant indices (torchvision's transform_input picks channels with x[:, 0]): slices along the axis. */
function gather(node: OnnxNode, ctx: CompileContext): Kernel {
  const indices = ctx.requireConstant(node, 1, 'indices');
  const picks = toNumbers(indices);
  return (args) => {
    const x = arg(node, args, 0);
    const axis = norm(attrInt(node, 'axis', 0), x.rank);
    const dim = x.shape[axis]!;
    return E.tidy(() => {
      const parts = picks.map((i) => {
        if (i < -dim || i >= dim) throw new RangeError(`node ${node.name} (Gather): index ${i} is out of range for a dim of ${dim}`);
        const at = i < 0 ? i + dim : i;
        return x.slice(axis, at, at + 1);
      });
      const picked = parts.length === 1 ? parts[0]! : E.cat(parts, axis);
      return picked.reshape([...x.shape.slice(0, axis), ...indices.dims, ...x.shape.slice(axis + 1)]);
    });
  };
}

function pad(node: OnnxNode, ctx: CompileContext): Kernel {
  const mode = node.attrs.mode && node.attrs.mode.type === 'string' ? node.attrs.mode.value : 'constant';
  if (mode !== 'constant') throw new RangeError(`node ${node.name} (Pad): mode '${mode}' is not supported (only constant)`);
  const pads = node.attrs.pads ? attrInts(node, 'pads') : toNumbers(ctx.requireConstant(node, 1, 'pads'));
  const value = node.inputs[2] ? (toNumbers(ctx.requireConstant(node, 2, 'constant_value'))[0] ?? 0) : 0;
  const n = pads.length / 2;
  // ONNX [b0..bn-1, e0..en-1] → F.pad order, last dim first.
  const torchPads: number[] = [];
  for (let i = n - 1; i >= 0; i--) torchPads.push(pads[i]!, pads[i + n]!);
  return (args) => E.pad(arg(node, args, 0), torchPads, value);
}

registerOps({
  Flatten: (node) => {
    const axis = attrInt(node, 'axis', 1);
    return (args) => {
      const x = arg(node, args, 0);
      const a = norm(axis, x.rank);
      const outer = x.shape.slice(0, a).reduce((p, d) => p * d, 1);
      return x.reshape([outer, -1]);
    };
  },
  Reshape: (node, ctx) => {
    const spec = toNumbers(ctx.requireConstant(node, 1, 'shape'));
    return (args) => reshapeTo(node, arg(node, args, 0), spec);
  },
  Transpose: (node) => (args) => {
    const x = arg(node, args, 0);
    const perm = attrInts(node, 'perm', x.shape.map((_, i) => x.rank - 1 - i));
    return x.permute(perm);
  },
  Squeeze: (node, ctx) => {
    const axes = axesOf(node, ctx, 1);
    return (args) => {
      const x = arg(node, args, 0);
      const drop = new Set((axes ?? x.shape.flatMap((d, i) => (d === 1 ? [i] : []))).map((a) => norm(a, x.rank)));
      return x.reshape(x.shape.filter((_, i) => !drop.has(i)));
    };
  },
  Unsqueeze: (node, ctx) => {
    const axes = axesOf(node, ctx, 1) ?? [];
    return (args) => {
      const x = arg(node, args, 0);
      const rank = x.rank + axes.length;
      const at = new Set(axes.map((a) => norm(a, rank)));
      const shape: number[] = [];
      let k = 0;
      for (let i = 0; i < rank; i++) shape.push(at.has(i) ? 1 : x.shape[k++]!);
      return x.reshape(shape);
    };
  },
  ReduceMean: (node, ctx) => {
    const axes = axesOf(node, ctx, 1);
    const keep = attrInt(node, 'keepdims', 1) === 1;
    return (args) => {
      const x = arg(node, args, 0);
      return x.mean((axes ?? x.shape.map((_, i) => i)).map((a) => norm(a, x.rank)), keep);
    };
  },
  Slice: slice,
  Gather: gather,
  Pad: pad,
  Concat: (node) => {
    const axis = attrInt(node, 'axis');
    return (args) => E.cat(node.inputs.map((_, i) => arg(node, args, i)), axis);
  },
});
