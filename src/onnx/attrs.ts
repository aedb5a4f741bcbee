// Node helpers: typed attribute access, the default-domain test, and how errors name a node.
import { OnnxError } from './errors.js';
import type { AttrValue, OnnxNode, OnnxTensor } from './ir.js';

/** Whether a node belongs to the default ONNX domain ('' or 'ai.onnx'). */
export const isDefaultDomain = (node: OnnxNode): boolean => node.domain === '' || node.domain === 'ai.onnx';

type Value<K extends AttrValue['type']> = Extract<AttrValue, { type: K }>['value'];

/** "node /conv1/Conv (Conv)": how errors name a node. */
export function describeNode(node: OnnxNode): string {
  return `node ${node.name || node.outputs[0] || '<unnamed>'} (${node.opType})`;
}

function get<K extends AttrValue['type']>(node: OnnxNode, name: string, type: K, fallback?: Value<K>): Value<K> {
  const attr = node.attrs[name];
  if (attr === undefined) {
    if (fallback === undefined) throw new OnnxError(`${describeNode(node)}: attribute '${name}' is required`);
    return fallback;
  }
  if (attr.type !== type) throw new OnnxError(`${describeNode(node)}: attribute '${name}' must be ${type}, got ${attr.type}`);
  return attr.value as Value<K>;
}

/** Integer attribute, or `fallback` when absent (error when absent without fallback). */
export const attrInt = (node: OnnxNode, name: string, fallback?: number): number => get(node, name, 'int', fallback);
/** Integer-list attribute, or `fallback` when absent. */
export const attrInts = (node: OnnxNode, name: string, fallback?: number[]): number[] => get(node, name, 'ints', fallback);
/** Float attribute, or `fallback` when absent. */
export const attrFloat = (node: OnnxNode, name: string, fallback?: number): number => get(node, name, 'float', fallback);
/** String attribute, or `fallback` when absent. */
export const attrString = (node: OnnxNode, name: string, fallback?: string): string => get(node, name, 'string', fallback);
/** Tensor attribute (e.g. Constant's `value`). */
export const attrTensor = (node: OnnxNode, name: string): OnnxTensor => get(node, name, 'tensor');
