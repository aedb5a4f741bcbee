/** The op registry: ONNX op type → a compiler that turns one node into a kernel over engine tensors. */
import type { Tensor } from '../engine/index.js';
import type { OnnxNode, OnnxTensor } from '../onnx/ir.js';

/** What a node compiler may look at: constant inputs are known at compile time. */
export interface CompileContext {
  /** The constant (initializer) behind an input name, if it is one. */
  constant(name: string): OnnxTensor | undefined;
  /** The constant behind input i of the node, or an error naming the node. */
  requireConstant(node: OnnxNode, i: number, what: string): OnnxTensor;
}

/** Runs one node: `args[i]` is the tensor of input i (undefined for an absent or non-float constant input). */
export type Kernel = (args: (Tensor | undefined)[]) => Tensor;

export type NodeCompiler = (node: OnnxNode, ctx: CompileContext) => Kernel;

const registry = new Map<string, NodeCompiler>();

/** Adds op kernels; refuses duplicates. */
export function registerOps(table: Record<string, NodeCompiler>): void {
  for (const [op, compile] of Object.entries(table)) {
    if (registry.has(op)) throw new Error(`op ${op} registered twice`);
    registry.set(op, compile);
  }
}

export function compilerFor(op: string): NodeCompiler | undefined {
  return registry.get(op);
}

export function registeredOps(): string[] {
  return [...registry.keys()].sort();
}

/** Input i as a tensor, or an error naming the node. */
export function arg(node: OnnxNode, args: (Tensor | undefined)[], i: number): Tensor {
  const t = args[i];
  if (!t) throw new Error(`node ${node.name} (${node.opType}): input ${i} (${node.inputs[i] ?? ''}) has no value`);
  return t;
}
