// Shape inference with constant propagation: one walk over the sorted graph, rule by rule.
import { describeNode, isDefaultDomain } from './attrs.js';
import { OnnxError } from './errors.js';
import type { OnnxModel, OnnxTensor } from './ir.js';
import { RULES, type RuleContext } from './rules/index.js';
import { renamed } from './tensor.js';

/** Shapes and constant values of a graph's tensors for given input shapes. */
export interface Propagation {
  shapes: Map<string, number[]>;
  values: Map<string, OnnxTensor>;
}

/** Input shapes with each symbolic leading (batch) dim set to `batch`; other symbolic dims are refused. */
export function concreteInputShapes(model: OnnxModel, batch: number): Record<string, number[]> {
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`Expected integer batch >= 1 but received ${batch}`);
  return Object.fromEntries(model.inputs.map((input) => [input.name, (input.dims ?? []).map((d, i) => {
    if (typeof d === 'number') return d;
    if (i === 0) return batch;
    throw new OnnxError(`input '${input.name}' dim ${i} (${d ?? '?'}) is symbolic; pdquant needs static shapes apart from the batch dim`);
  })]));
}

/** The given shape of each graph input, checked against the dims the model declares. */
function checkedInputShapes(model: OnnxModel, inputShapes: Record<string, number[]>): [string, number[]][] {
  for (const name of Object.keys(inputShapes)) {
    if (!model.inputs.some((v) => v.name === name)) throw new OnnxError(`'${name}' is not a graph input`);
  }
  return model.inputs.map(({ name, dims }) => {
    const shape = inputShapes[name];
    if (!shape) throw new OnnxError(`no shape given for input '${name}'`);
    const declared = dims ?? [];
    if (shape.length !== declared.length || declared.some((d, i) => typeof d === 'number' && d !== shape[i])) {
      throw new OnnxError(`input '${name}' has shape [${declared.map((d) => d ?? '?')}], got [${shape}]`);
    }
    return [name, shape];
  });
}

/** Walks the sorted graph: evaluates nodes whose inputs are constants, infers shapes of the others. Ops without a rule leave their outputs unknown. */
export function propagate(model: OnnxModel, inputShapes: Record<string, number[]>): Propagation {
  const shapes = new Map<string, number[]>();
  const values = new Map<string, OnnxTensor>();
  for (const [name, t] of model.initializers) {
    values.set(name, t);
    shapes.set(name, t.dims);
  }
  for (const [name, shape] of checkedInputShapes(model, inputShapes)) shapes.set(name, shape);

  for (const node of model.nodes) {
    const rule = isDefaultDomain(node) ? RULES.get(node.opType) : undefined;
    if (!rule || node.inputs.some((name) => name !== '' && !shapes.has(name))) continue;
    const ctx: RuleContext = {
      node,
      opset: model.opsetVersion,
      has: (i) => i < node.inputs.length && node.inputs[i] !== '',
      shape: (i) => shapes.get(node.inputs[i]) as number[],
      value: (i) => values.get(node.inputs[i] ?? ''),
    };
    try {
      const outs = rule.evaluate?.(ctx);
      if (outs) {
        outs.forEach((t, k) => {
          const name = node.outputs[k];
          if (!name) return;
          values.set(name, renamed(t, name));
          shapes.set(name, t.dims);
        });
      } else {
        rule.shapes(ctx)?.forEach((s, k) => node.outputs[k] && shapes.set(node.outputs[k], s));
      }
    } catch (e) {
      throw e instanceof OnnxError ? new OnnxError(`${describeNode(node)}: ${e.message}`) : e;
    }
  }
  return { shapes, values };
}

/** Shapes of every tensor whose shape can be inferred (default: batch 1). */
export function inferShapes(model: OnnxModel, inputShapes = concreteInputShapes(model, 1)): Map<string, number[]> {
  return propagate(model, inputShapes).shapes;
}
