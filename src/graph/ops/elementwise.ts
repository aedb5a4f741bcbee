/** Activations and broadcasting arithmetic. */
import * as E from '../../engine/index.js';
import { attrFloat, attrString } from '../../onnx/attrs.js';
import type { OnnxNode } from '../../onnx/ir.js';
import { toNumbers } from '../../onnx/tensor.js';
import { arg, registerOps, type CompileContext, type Kernel } from '../kernel.js';

const unary = (f: (x: E.Tensor) => E.Tensor) => (node: OnnxNode): Kernel => (args) => f(arg(node, args, 0));
const binary = (f: (a: E.Tensor, b: E.Tensor) => E.Tensor) => (node: OnnxNode): Kernel => (args) =>
  f(arg(node, args, 0), arg(node, args, 1));

/** Clip bounds: attributes before opset 11, constant inputs after; a non-constant bound is used as a tensor. */
function clip(node: OnnxNode, ctx: CompileContext): Kernel {
  const bound = (i: number, attr: string): number | null => {
    const name = node.inputs[i];
    if (name) {
      const c = ctx.constant(name);
      return c ? toNumbers(c)[0]! : null;
    }
    const a = node.attrs[attr];
    return a && a.type === 'float' ? a.value : null;
  };
  const lo = bound(1, 'min');
  const hi = bound(2, 'max');
  if (lo === 0 && hi === 6) return (args) => E.relu6(arg(node, args, 0));
  return (args) => arg(node, args, 0).clamp(lo ?? args[1] ?? null, hi ?? args[2] ?? null);
}

function hardSigmoid(node: OnnxNode, alpha: number, beta: number) {
  const a = attrFloat(node, 'alpha', alpha);
  const b = attrFloat(node, 'beta', beta);
  return (x: E.Tensor) => x.mul(a).add(b).clamp(0, 1);
}

/** GELU (opset 20): x·Φ(x) exactly, or with Φ approximated by tanh ('tanh'). */
function gelu(node: OnnxNode): Kernel {
  const approximate = attrString(node, 'approximate', 'none');
  return (args) => {
    const x = arg(node, args, 0);
    return E.tidy(() => {
      const phi = approximate === 'tanh'
        ? x.pow(3).mul(0.044715).add(x).mul(Math.sqrt(2 / Math.PI)).tanh().add(1).mul(0.5)
        : x.div(Math.SQRT2).erf().add(1).mul(0.5);
      return x.mul(phi);
    });
  };
}

registerOps({
  Relu: unary((x) => x.relu()),
  Erf: unary((x) => x.erf()),
  Gelu: gelu,
  Sqrt: unary((x) => x.sqrt()),
  Pow: binary((a, b) => a.pow(b)),
  Sigmoid: unary((x) => x.sigmoid()),
  Clip: clip,
  HardSigmoid: (node) => unary(hardSigmoid(node, 0.2, 0.5))(node),
  HardSwish: (node) => {
    const hs = hardSigmoid(node, 1 / 6, 0.5);
    return (args) => {
      const x = arg(node, args, 0);
      return E.tidy(() => x.mul(hs(x)));
    };
  },
  Add: binary((a, b) => a.add(b)),
  Sub: binary((a, b) => a.sub(b)),
  Mul: binary((a, b) => a.mul(b)),
  Div: binary((a, b) => a.div(b)),
  Identity: unary((x) => x),
  Dropout: unary((x) => x),
  // Activations are float32 throughout; checkSupported admits only Casts to float32 on them (PyTorch's x.float()).
  Cast: unary((x) => x),
});
