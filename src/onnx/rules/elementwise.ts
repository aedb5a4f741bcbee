// Same-shape and broadcasting ops: activations, arithmetic, comparisons, Cast, Where, Expand.
import { attrInt } from '../attrs.js';
import type { DataType, OnnxTensor } from '../ir.js';
import { dataTypeOf, makeTensor, toNumbers } from '../tensor.js';
import { broadcastMap, broadcastShapes, constInputs, gather, intsOf } from './common.js';
import type { OpRule, RuleContext } from './rule.js';

/** Every output has the shape of input 0 (Dropout's mask included). */
const sameShape = (ctx: RuleContext): number[][] => ctx.node.outputs.map(() => ctx.shape(0));

const unary: OpRule = { shapes: sameShape };

/** A broadcasting op over all its inputs, evaluated on numbers by `f` when all inputs are constant. */
function broadcasting(f: (...xs: number[]) => number, outType: (inputs: OnnxTensor[]) => DataType): OpRule {
  return {
    shapes: (ctx) => [broadcastShapes(ctx.node.inputs.map((_, i) => ctx.shape(i)))],
    evaluate(ctx) {
      const inputs = constInputs(ctx);
      if (!inputs) return undefined;
      const dims = broadcastShapes(inputs.map((t) => t.dims));
      const maps = inputs.map((t) => broadcastMap(dims, t.dims));
      const values = inputs.map(toNumbers);
      const out = Array.from(maps[0], (_, i) => f(...values.map((v, k) => v[maps[k][i]])));
      return [makeTensor('', outType(inputs), dims, out)];
    },
  };
}

const typeOfFirst = (inputs: OnnxTensor[]): DataType => inputs[0].dataType;

export const ELEMENTWISE_RULES: Record<string, OpRule> = {
  Relu: unary,
  Sigmoid: unary,
  HardSigmoid: unary,
  HardSwish: unary,
  Clip: unary,
  BatchNormalization: { shapes: (ctx) => [ctx.shape(0)] }, // inference form: training outputs are not inferred
  // Inference form (one output, Y): the optional Mean and InvStdDev outputs are refused by checkSupported.
  LayerNormalization: { shapes: (ctx) => [ctx.shape(0)] },
  Erf: unary,
  Gelu: unary,
  Sqrt: unary,
  Dropout: unary,
  Identity: { shapes: sameShape, evaluate: (ctx) => { const x = ctx.value(0); return x && [x]; } },
  Not: {
    shapes: sameShape,
    evaluate(ctx) {
      const x = ctx.value(0);
      return x && [makeTensor('', 'bool', x.dims, toNumbers(x).map((v) => (v ? 0 : 1)))];
    },
  },
  Cast: {
    shapes: sameShape,
    evaluate(ctx) {
      const x = ctx.value(0);
      const to = dataTypeOf(attrInt(ctx.node, 'to'), 'Cast target');
      return x && [x.dataType === to ? x : makeTensor('', to, x.dims, toNumbers(x))];
    },
  },
  Add: broadcasting((a, b) => a + b, typeOfFirst),
  Sub: broadcasting((a, b) => a - b, typeOfFirst),
  Mul: broadcasting((a, b) => a * b, typeOfFirst),
  Div: broadcasting((a, b) => a / b, typeOfFirst), // integer types truncate toward zero, as onnxruntime does
  Pow: broadcasting((a, b) => a ** b, typeOfFirst),
  Equal: broadcasting((a, b) => (a === b ? 1 : 0), () => 'bool'),
  Where: broadcasting((c, a, b) => (c ? a : b), (inputs) => inputs[1].dataType),
  Expand: {
    shapes(ctx) {
      const shape = intsOf(ctx.value(1));
      return shape && [broadcastShapes([ctx.shape(0), shape])];
    },
    evaluate(ctx) {
      const x = ctx.value(0), shape = intsOf(ctx.value(1));
      if (!x || !shape) return undefined;
      const dims = broadcastShapes([x.dims, shape]);
      return [gather(x, dims, broadcastMap(dims, x.dims))];
    },
  },
};
