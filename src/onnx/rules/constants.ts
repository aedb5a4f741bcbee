// Ops that make constants: Constant, Shape (from a known shape), ConstantOfShape, Range.
import { attrInt, attrTensor } from '../attrs.js';
import { OnnxError } from '../errors.js';
import type { OnnxTensor } from '../ir.js';
import { makeTensor, numel, toNumbers } from '../tensor.js';
import { constInputs, intsOf } from './common.js';
import type { OpRule, RuleContext } from './rule.js';

/** A rule whose output shapes are those of its evaluated outputs (they depend on constant inputs). */
function byValue(evaluate: (ctx: RuleContext) => OnnxTensor[] | undefined): OpRule {
  return { evaluate, shapes: (ctx) => evaluate(ctx)?.map((t) => t.dims) };
}

/** Constant's value: the `value` tensor or one of the value_int(s)/value_float(s) shorthands. */
function constantValue(ctx: RuleContext): OnnxTensor[] {
  const { attrs } = ctx.node;
  const a = attrs.value ?? attrs.value_int ?? attrs.value_ints ?? attrs.value_float ?? attrs.value_floats;
  if (!a) throw new OnnxError(`Constant has none of value, value_int(s), value_float(s) (${Object.keys(attrs).join(', ') || 'no attributes'})`);
  switch (a.type) {
    case 'tensor': return [attrTensor(ctx.node, 'value')];
    case 'int': return [makeTensor('', 'int64', [], [a.value])];
    case 'ints': return [makeTensor('', 'int64', [a.value.length], a.value)];
    case 'float': return [makeTensor('', 'float32', [], [a.value])];
    case 'floats': return [makeTensor('', 'float32', [a.value.length], a.value)];
    default: throw new OnnxError(`Constant value of type ${a.type} not supported`);
  }
}

/** Shape's output, with the opset-15 start/end attributes (negative from the end, clamped). */
function shapeValue(ctx: RuleContext): OnnxTensor[] {
  const x = ctx.shape(0);
  const clamp = (v: number): number => Math.min(Math.max(v < 0 ? v + x.length : v, 0), x.length);
  const dims = x.slice(clamp(attrInt(ctx.node, 'start', 0)), clamp(attrInt(ctx.node, 'end', x.length)));
  return [makeTensor('', 'int64', [dims.length], dims)];
}

function constantOfShape(ctx: RuleContext): OnnxTensor[] | undefined {
  const dims = intsOf(ctx.value(0));
  if (!dims) return undefined;
  const fill = ctx.node.attrs.value ? attrTensor(ctx.node, 'value') : makeTensor('', 'float32', [1], [0]);
  if (fill.data.length !== 1) throw new OnnxError('ConstantOfShape value must hold one element');
  return [makeTensor('', fill.dataType, dims, new Array<number>(numel(dims)).fill(toNumbers(fill)[0]))];
}

function range(ctx: RuleContext): OnnxTensor[] | undefined {
  const [start, limit, delta] = (constInputs(ctx) ?? []).map((t) => toNumbers(t)[0]);
  const type = ctx.value(0)?.dataType;
  if (delta === undefined || !type) return undefined;
  if (delta === 0) throw new OnnxError('Range delta must not be 0');
  const n = Math.max(Math.ceil((limit - start) / delta), 0);
  return [makeTensor('', type, [n], Array.from({ length: n }, (_, i) => start + i * delta))];
}

export const CONSTANT_RULES: Record<string, OpRule> = {
  Constant: byValue(constantValue),
  Shape: byValue(shapeValue),
  ConstantOfShape: byValue(constantOfShape),
  Range: byValue(range),
};
