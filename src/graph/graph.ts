/** The in-memory model: a folded ONNX graph whose float initializers are engine tensors and whose nodes are compiled kernels. */
import * as E from '../engine/index.js';
import type { OnnxModel, OnnxNode, OnnxTensor, ValueInfo } from '../onnx/ir.js';
import { OnnxError } from '../onnx/errors.js';
import { isFloatType } from '../onnx/tensor.js';
import { nodeList } from '../onnx/supported.js';
import { compilerFor, registeredOps, type CompileContext, type Kernel } from './kernel.js';
import './ops/index.js';

/** Convolution weights and 4-D feeds in channels-last order (PDQUANT_CHANNELS_LAST=0 turns it off). */
export const CHANNELS_LAST = process.env.PDQUANT_CHANNELS_LAST !== '0';

export class Graph {
  readonly nodes: readonly OnnxNode[];
  readonly input: ValueInfo;
  readonly output: ValueInfo;
  /** Every initializer as read. */
  readonly constants: ReadonlyMap<string, OnnxTensor>;
  /** Float initializers as engine tensors (weights, biases, BN statistics). */
  readonly params: Map<string, E.Tensor>;
  readonly kernels: Map<OnnxNode, Kernel>;
  readonly producer: Map<string, OnnxNode>;
  readonly consumers: Map<string, OnnxNode[]>;
  readonly model: OnnxModel;

  /** Compiles a folded model (one input, one output); unsupported ops are listed in one error. */
  constructor(model: OnnxModel) {
    if (model.inputs.length !== 1) throw new OnnxError(`pdquant needs a model with one input, got ${model.inputs.length}: ${model.inputs.map((i) => i.name).join(', ')}`);
    if (model.outputs.length !== 1) throw new OnnxError(`pdquant needs a model with one output, got ${model.outputs.length}: ${model.outputs.map((o) => o.name).join(', ')}`);
    const input = model.inputs[0]!;
    if (input.elemType !== 'float32')
      throw new OnnxError(`pdquant needs a float32 image input, but input '${input.name}' is ${input.elemType}; export the model taking the preprocessed float32 image (any cast or scaling of raw pixels outside it)`);
    this.model = model;
    this.nodes = model.nodes;
    this.input = model.inputs[0]!;
    this.output = model.outputs[0]!;
    this.constants = model.initializers;
    const missing = new Map<string, string[]>();
    for (const n of model.nodes) {
      if (!compilerFor(n.opType) || n.domain !== '') missing.set(n.opType, [...(missing.get(n.opType) ?? []), n.name]);
    }
    if (missing.size > 0) {
      const list = [...missing].map(([op, names]) => `${op} (${nodeList(names)})`).join('; ');
      throw new OnnxError(`Unsupported ONNX ops: ${list}. pdquant supports: ${registeredOps().join(', ')}`);
    }
    this.params = new Map();
    for (const [name, t] of model.initializers) {
      if (!isFloatType(t.dataType)) continue;
      const p = E.tensor(Float32Array.from(t.data as Float32Array), t.dims);
      this.params.set(name, E.keep(CHANNELS_LAST && t.dims.length === 4 ? E.tidy(() => p.channelsLast()) : p));
    }
    const ctx: CompileContext = {
      constant: (name) => model.initializers.get(name),
      requireConstant: (node, i, what) => {
        const c = model.initializers.get(node.inputs[i] ?? '');
        if (!c) throw new OnnxError(`node ${node.name} (${node.opType}): ${what} (input ${i}) must be a constant after folding`);
        return c;
      },
    };
    this.kernels = new Map(model.nodes.map((n) => [n, compilerFor(n.opType)!(n, ctx)]));
    this.producer = new Map();
    this.consumers = new Map();
    for (const n of model.nodes) {
      for (const o of n.outputs) this.producer.set(o, n);
      for (const i of n.inputs) if (i) this.consumers.set(i, [...(this.consumers.get(i) ?? []), n]);
    }
  }

  node(name: string): OnnxNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node named ${name}`);
    return n;
  }

  /** Frees the parameter tensors. */
  dispose(): void {
    for (const t of this.params.values()) t.dispose();
    this.params.clear();
  }
}
