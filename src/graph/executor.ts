/** Runs a graph (or a slice of its nodes) on the engine, with hooks where quantizers plug in. */
import type * as E from '../engine/index.js';
import type { OnnxNode } from '../onnx/ir.js';
import { CHANNELS_LAST, type Graph } from './graph.js';

export interface RunHooks {
  /**
   * Replaces the weight (input 1) of a Conv/Gemm/MatMul node, e.g. by its fake-quantized version.
   * The executor does not free what this returns (run inside tidy() when it makes new tensors).
   */
  weight?(node: OnnxNode, w: E.Tensor): E.Tensor;
  /** Replaces the bias (input 2) of such a node, likewise. */
  bias?(node: OnnxNode, b: E.Tensor): E.Tensor;
  /** Replaces a value right after it is produced, e.g. by an activation quantizer; the executor owns the result. */
  value?(name: string, t: E.Tensor): E.Tensor;
  /** Whether `value` also replaces the feeds (a quantizer on the graph input) before any node reads them. */
  feeds?: boolean;
}

export interface RunOptions {
  /** Values available at the start (the graph input, or a unit's input/output). */
  feeds: ReadonlyMap<string, E.Tensor>;
  /** Values to return. */
  outputs: readonly string[];
  /** Nodes to run, in topological order (default: the whole graph). */
  nodes?: readonly OnnxNode[];
  hooks?: RunHooks;
}

/**
 * Executes nodes in order and returns the requested values. Tensors made here are freed as soon
 * as their last consumer has run (autograd keeps what it needs), so peak memory stays small.
 */
export function execute(graph: Graph, o: RunOptions): Map<string, E.Tensor> {
  const nodes = o.nodes ?? graph.nodes;
  const wanted = new Set(o.outputs);
  const uses = new Map<string, number>();
  for (const n of nodes) for (const i of n.inputs) if (i) uses.set(i, (uses.get(i) ?? 0) + 1);
  const env = new Map<string, E.Tensor>(o.feeds);
  // Feeds go to channels-last once here so every convolution after them runs on it.
  const converted: E.Tensor[] = [];
  if (CHANNELS_LAST)
    for (const [name, t] of o.feeds)
      if (t.rank === 4) {
        const c = t.channelsLast();
        converted.push(c);
        env.set(name, c);
      }
  // Tensors this run made, with the number of env names that refer to them.
  const made = new Map<E.Tensor, number>();
  const bind = (name: string, t: E.Tensor) => {
    env.set(name, t);
    if (made.has(t)) made.set(t, made.get(t)! + 1);
  };
  if (o.hooks?.value && o.hooks.feeds)
    for (const name of o.feeds.keys()) {
      const t = env.get(name)!;
      const q = o.hooks.value(name, t);
      if (q !== t) {
        made.set(q, 0);
        bind(name, q);
      }
    }
  const unbind = (name: string) => {
    const t = env.get(name)!;
    env.delete(name);
    const refs = made.get(t);
    if (refs === undefined) return;
    if (refs <= 1) {
      made.delete(t);
      t.dispose();
    } else made.set(t, refs - 1);
  };
  const outside = new Set<E.Tensor>([...o.feeds.values(), ...graph.params.values()]);
  const external = (t: E.Tensor) => !made.has(t) && (outside.has(t) || [...env.values()].includes(t));

  for (const node of nodes) {
    const args = node.inputs.map((name) => (name ? (env.get(name) ?? graph.params.get(name)) : undefined));
    if (o.hooks?.weight && args[1] && isWeightLayer(node) && graph.params.has(node.inputs[1]!)) args[1] = o.hooks.weight(node, args[1]);
    if (o.hooks?.bias && args[2] && isWeightLayer(node) && graph.params.has(node.inputs[2]!)) args[2] = o.hooks.bias(node, args[2]);
    let out = graph.kernels.get(node)!(args);
    const name = node.outputs[0]!;
    if (!made.has(out) && !external(out)) made.set(out, 0);
    if (o.hooks?.value) {
      const q = o.hooks.value(name, out);
      if (q !== out) {
        if (made.get(out) === 0) {
          made.delete(out);
          out.dispose();
        }
        if (!made.has(q) && !external(q)) made.set(q, 0);
        out = q;
      }
    }
    bind(name, out);
    for (const i of node.inputs) {
      if (!i || !env.has(i)) continue;
      const left = uses.get(i)! - 1;
      uses.set(i, left);
      if (left === 0 && !wanted.has(i) && !o.feeds.has(i)) unbind(i);
    }
  }
  const result = new Map<string, E.Tensor>();
  for (const name of o.outputs) {
    const t = env.get(name) ?? graph.params.get(name);
    if (!t) throw new Error(`value ${name} was not computed by the nodes that ran`);
    result.set(name, t);
  }
  for (const [name, t] of env) if (!wanted.has(name) && made.has(t) && ![...result.values()].includes(t)) unbind(name);
  for (const c of converted) if (![...result.values()].includes(c)) c.dispose();
  return result;
}

const WEIGHT_OPS = new Set(['Conv', 'Gemm', 'MatMul']);
/** A Conv/Gemm/MatMul whose second input is a weight. */
export function isWeightLayer(node: OnnxNode): boolean {
  return WEIGHT_OPS.has(node.opType);
}
