// Ops that keep quantized values on their grid exactly, for the walks that look for the quantizer behind a value.
import type { OnnxModel, OnnxNode } from './ir.js';

/** Ops whose output values all lie on their first input's quantization grid: picked, moved, or clamped at 0. */
export const SAME_GRID_OPS: ReadonlySet<string> = new Set(['Slice', 'Reshape', 'Flatten', 'Transpose', 'Identity', 'Squeeze', 'Unsqueeze', 'Dropout', 'MaxPool', 'Relu']);

/** SAME_GRID_OPS, and a Pad in constant mode with value 0 (0 is on every grid whose zero point lies in its range). */
export function keepsGrid(node: OnnxNode, model: OnnxModel): boolean {
  if (SAME_GRID_OPS.has(node.opType)) return true;
  if (node.opType !== 'Pad') return false;
  const mode = node.attrs.mode?.type === 'string' ? node.attrs.mode.value : 'constant';
  const value = node.inputs[2] ? model.initializers.get(node.inputs[2]) : undefined;
  const attrValue = node.attrs.value?.type === 'float' ? node.attrs.value.value : 0;
  return mode === 'constant' && attrValue === 0 && (!node.inputs[2] || (!!value && value.data.length === 1 && Number(value.data[0]) === 0));
}
