/** What counts as a layer's activation, for the unit partition and the quantizer placement. */
import type { OnnxNode } from '../onnx/ir.js';

/** Single-op activations. */
export const ACTIVATIONS = new Set(['Relu', 'Clip', 'HardSwish', 'Sigmoid', 'HardSigmoid', 'Gelu']);
/** Gates g of the two-op activations x * g(x): SiLU/Swish (Sigmoid) and HardSwish (HardSigmoid), as exporters write them. */
const GATES = new Set(['Sigmoid', 'HardSigmoid']);

/**
 * GELU as PyTorch exports it below opset 20: x · (1 + erf(x / √2)) · 0.5, that is Div → Erf → Add → Mul (by x) → Mul,
 * when `next` (the readers of x) are that Div and the first Mul; [] otherwise. The constants are not checked: the
 * shape of the computation is what makes it one activation for the placement.
 */
function geluOps(value: string, next: readonly OnnxNode[], readers: (v: string) => readonly OnnxNode[]): OnnxNode[] {
  const div = next.find((n) => n.opType === 'Div' && n.inputs[0] === value);
  const only = (n: OnnxNode | undefined, op: string): OnnxNode | undefined => {
    const r = n && readers(n.outputs[0]!);
    return r && r.length === 1 && r[0]!.opType === op ? r[0] : undefined;
  };
  const erf = only(div, 'Erf');
  const add = only(erf, 'Add');
  const mul = only(add, 'Mul');
  const half = only(mul, 'Mul');
  if (!div || !erf || !add || !mul || !half || !next.includes(mul) || !mul.inputs.includes(value)) return [];
  return [div, erf, add, mul, half];
}

/**
 * The activation right after `value`: one activation op that is its only reader, the Sigmoid/HardSigmoid and Mul of
 * x * g(x) when those two are its readers (PyTorch exports SiLU so, and HardSwish below opset 14), or GELU's five ops
 * (geluOps); [] when none.
 */
export function activationAfter(value: string, readers: (v: string) => readonly OnnxNode[]): OnnxNode[] {
  const next = readers(value);
  if (next.length === 1 && ACTIVATIONS.has(next[0]!.opType)) return [next[0]!];
  if (next.length !== 2) return [];
  const gelu = geluOps(value, next, readers);
  if (gelu.length > 0) return gelu;
  const gate = next.find((n) => GATES.has(n.opType) && n.inputs[0] === value);
  const mul = next.find((n) => n.opType === 'Mul');
  if (!gate || !mul || readers(gate.outputs[0]!).length !== 1) return [];
  const operands = [...mul.inputs].sort();
  return JSON.stringify(operands) === JSON.stringify([value, gate.outputs[0]!].sort()) ? [gate, mul] : [];
}
