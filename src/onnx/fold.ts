// Constant folding: shape arithmetic replaced by initializers, for every batch size at once.
import { attrInt } from './attrs.js';
import { OnnxError } from './errors.js';
import type { OnnxModel, OnnxNode, OnnxTensor, ValueInfo } from './ir.js';
import { concreteInputShapes, propagate, type Propagation } from './shapes.js';
import { makeTensor, renamed, tensorsEqual, toNumbers } from './tensor.js';

export interface FoldOptions {
  /** Fold for this batch size only (inputs get it as a static dim); default: keep the batch dim symbolic. */
  batch?: number;
}

/**
 * Two batch sizes probe the graph; a value is folded only when it comes out identical under both, so
 * the folded model stays valid for any batch. (Probes > 1, so size-1 broadcasting and squeezing cannot hide the batch.)
 */
const BATCH_PROBES = [2, 3];

/** Values known under every probe and equal across them: true constants. */
function constantsOf(runs: Propagation[]): Map<string, OnnxTensor> {
  const constants = new Map<string, OnnxTensor>();
  for (const [name, value] of runs[0].values) {
    if (runs.every((r) => { const v = r.values.get(name); return v !== undefined && tensorsEqual(v, value); })) {
      constants.set(name, value);
    }
  }
  return constants;
}

/**
 * Reshape's target written as x.view(x.size(0), ...) varies with the batch; where an entry equals the input's dim
 * under every probe it becomes 0 ("copy the dim"), which makes the target constant. undefined if that does not suffice.
 */
function batchFreeReshapeTarget(node: OnnxNode, runs: Propagation[]): OnnxTensor | undefined {
  if (node.opType !== 'Reshape' || attrInt(node, 'allowzero', 0) === 1) return undefined;
  const targets = runs.map((r) => r.values.get(node.inputs[1]));
  const inputs = runs.map((r) => r.shapes.get(node.inputs[0]));
  if (targets.some((t) => !t) || inputs.some((s) => !s)) return undefined;
  const entries = targets.map((t) => toNumbers(t as OnnxTensor));
  const target = entries[0].map((d, i) => {
    if (entries.every((e) => e[i] === d)) return d;
    return entries.every((e, r) => e[i] === (inputs[r] as number[])[i]) ? 0 : NaN;
  });
  if (target.some(Number.isNaN)) return undefined;
  const t = targets[0] as OnnxTensor;
  return makeTensor(`${t.name}_batch_free`, t.dataType, t.dims, target);
}

/** A model where every node computable from constants and static shapes is replaced by initializers; dead nodes and unused initializers removed. */
export function foldConstants(model: OnnxModel, options: FoldOptions = {}): OnnxModel {
  const probes = options.batch === undefined ? BATCH_PROBES : [options.batch];
  const runs = probes.map((b) => {
    try {
      return propagate(model, concreteInputShapes(model, b));
    } catch (e) {
      if (!(e instanceof OnnxError) || options.batch !== undefined) throw e;
      throw new OnnxError(`${e.message} (at batch size ${b}: pdquant checks that folding holds for any batch; ` +
        'if the model only runs at one batch size, fold with { batch })');
    }
  });
  const constants = constantsOf(runs);
  const graphOutputs = new Set(model.outputs.map((v) => v.name));

  const nodes: OnnxNode[] = [];
  const initializers = new Map<string, OnnxTensor>();
  for (const node of model.nodes) {
    const folded = node.outputs.every((o) => o === '' || (constants.has(o) && !graphOutputs.has(o)));
    if (folded) continue;
    const kept = { ...node, inputs: [...node.inputs] };
    const target = constants.has(node.inputs[1] ?? '') ? undefined : batchFreeReshapeTarget(node, runs);
    if (target) {
      kept.inputs[1] = target.name;
      initializers.set(target.name, target);
    }
    for (const name of kept.inputs) {
      const value = constants.get(name);
      if (value && !initializers.has(name)) initializers.set(name, renamed(value, name));
    }
    nodes.push(kept);
  }
  for (const name of graphOutputs) {
    const value = model.initializers.get(name);
    if (value) initializers.set(name, value);
  }
  const live = removeDead(nodes, graphOutputs);
  const used = new Set([...live.flatMap((n) => n.inputs), ...graphOutputs]);
  const inputs = options.batch === undefined ? model.inputs : withStaticShapes(model.inputs, runs[0]);
  const outputs = options.batch === undefined ? model.outputs : withStaticShapes(model.outputs, runs[0]);
  return {
    ...model,
    inputs,
    outputs,
    nodes: live,
    initializers: new Map([...initializers].filter(([name]) => used.has(name))),
  };
}

/** Nodes that contribute to the graph outputs, in their given (topological) order. */
function removeDead(nodes: OnnxNode[], outputs: Set<string>): OnnxNode[] {
  const needed = new Set(outputs);
  const live: OnnxNode[] = [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    if (!nodes[i].outputs.some((o) => needed.has(o))) continue;
    live.push(nodes[i]);
    for (const name of nodes[i].inputs) needed.add(name);
  }
  return live.reverse();
}

/** Value infos with their inferred static shapes (used when folding for one batch size). */
function withStaticShapes(infos: ValueInfo[], run: Propagation): ValueInfo[] {
  return infos.map((v) => ({ ...v, dims: run.shapes.get(v.name) ?? v.dims }));
}
