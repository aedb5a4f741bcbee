/** What counts as a layer's activation, for the unit partition and the quantizer placement. */
import type { OnnxNode } from '../onnx/ir.js';

/** Single-op activations. */
export const ACTIVATIONS = new Set(['Relu', 'Clip', 'HardSwish', 'Sigmoid', 'HardSigmoid']);
/** Gates g of the two-op activations x * g(x): SiLU/Swish (Sigmoid) and HardSwish (HardSigmoid), as exporters write them. */
const GATES = new Set(['Sigmoid', 'HardSigmoid']);

/**
 * The activation right after `value`: one activation op that is its only reader, or the Sigmoid/HardSigmoid and Mul of
 * x * g(x) when those two are its readers (PyTorch exports SiLU so, and HardSwish below opset 14); [] when neither.
 */
export function activationAfter(value: string, readers: (v: string) => readonly OnnxNode[]): OnnxNode[] {
  const next = readers(value);
  if (next.length === 1 && ACTIVATIONS.has(next[0]!.opType)) return [next[0]!];
  if (next.length !== 2) return [];
  const gate = next.find((n) => GATES.has(n.opType) && n.inputs[0] === value);
  const mul = next.find((n) => n.opType === 'Mul');
  if (!gate || !mul || readers(gate.outputs[0]!).length !== 1) return [];
  const operands = [...mul.inputs].sort();
  return JSON.stringify(operands) === JSON.stringify([value, gate.outputs[0]!].sort()) ? [gate, mul] : [];
}
