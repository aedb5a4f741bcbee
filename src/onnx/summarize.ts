// Model summary for `pdquant inspect`: op counts, parameters, multiply-adds and FLOPs per image.
import { attrInt } from './attrs.js';
import { OnnxError } from './errors.js';
import type { OnnxModel, OnnxNode } from './ir.js';
import { inferShapes } from './shapes.js';
import { numel } from './tensor.js';

export interface ModelSummary {
  /** Node count by op type, most frequent first. */
  opCounts: Record<string, number>;
  nodeCount: number;
  /** Elements of learnable weights: Conv/Gemm/MatMul weights and biases, BatchNormalization scale and bias (not running statistics), as PyTorch counts parameters. */
  parameters: number;
  /** Multiply-accumulates of Conv, Gemm and MatMul for one image (batch 1); other ops are not counted. */
  macs: number;
  /** 2 × macs: one multiply and one add per multiply-accumulate. */
  flops: number;
}

/** Inputs (by position) that hold learnable parameters when they are initializers. */
const PARAMETER_INPUTS: Record<string, number[]> = {
  Conv: [1, 2],
  Gemm: [0, 1, 2],
  MatMul: [0, 1],
  BatchNormalization: [1, 2],
};

/** Multiply-accumulates of one node: output elements × the length of the dot product behind each. */
const MACS: Record<string, (shape: (name: string) => number[], node: OnnxNode) => number> = {
  // W is [M, C/group, k...]: each output element sums C/group × kernel products.
  Conv: (shape, node) => numel(shape(node.outputs[0])) * numel(shape(node.inputs[1]).slice(1)),
  Gemm: (shape, node) => numel(shape(node.outputs[0])) * (attrInt(node, 'transA', 0) ? shape(node.inputs[0])[0]! : shape(node.inputs[0]).at(-1)!),
  MatMul: (shape, node) => numel(shape(node.outputs[0])) * (shape(node.inputs[0]).at(-1) as number),
};

/** Multiply-accumulates per image of `nodes` (Conv, Gemm and MatMul; other ops count 0), from their values' shapes. */
export function macsOf(nodes: readonly OnnxNode[], shape: (name: string) => number[]): number {
  return nodes.reduce((sum, node) => sum + (MACS[node.opType]?.(shape, node) ?? 0), 0);
}

/** Node count by op type, most frequent first. */
export function opCounts(nodes: readonly OnnxNode[]): Record<string, number> {
  const counts = new Map<string, number>();
  for (const node of nodes) counts.set(node.opType, (counts.get(node.opType) ?? 0) + 1);
  return Object.fromEntries([...counts].sort((a, b) => b[1] - a[1]));
}

/** Op counts, parameter count and per-image MACs/FLOPs (batch 1). */
export function summarize(model: OnnxModel): ModelSummary {

  const parameterNames = new Set<string>();
  for (const node of model.nodes) {
    for (const i of PARAMETER_INPUTS[node.opType] ?? []) {
      if (model.initializers.has(node.inputs[i] ?? '')) parameterNames.add(node.inputs[i]);
    }
  }
  const parameters = [...parameterNames].reduce((sum, name) => sum + numel(model.initializers.get(name)!.dims), 0);

  const shapes = inferShapes(model);
  const shape = (name: string): number[] => {
    const s = shapes.get(name);
    if (!s) throw new OnnxError(`cannot count multiply-adds: the shape of '${name}' is unknown (unsupported op upstream?)`);
    return s;
  };
  const macs = macsOf(model.nodes, shape);

  return {
    opCounts: opCounts(model.nodes),
    nodeCount: model.nodes.length,
    parameters,
    macs,
    flops: 2 * macs,
  };
}
