// Split (torch.chunk / torch.split: ShuffleNetV2's channel split) as one Slice per output, so the executor, which runs
// single-output nodes, needs no multi-output kernel. Slices compute the same elements.
import { attrInt, describeNode, isDefaultDomain } from './attrs.js';
import { OnnxError } from './errors.js';
import type { OnnxModel, OnnxNode } from './ir.js';
import { splitLengths } from './rules/layout.js';
import { inferShapes } from './shapes.js';
import { makeTensor } from './tensor.js';

/** The model with every Split replaced by Slices with constant starts, ends and axes. */
export function splitAsSlices(model: OnnxModel): OnnxModel {
  const splits = model.nodes.filter((n) => n.opType === 'Split' && isDefaultDomain(n));
  if (splits.length === 0) return model;
  const shapes = inferShapes(model);
  const initializers = new Map(model.initializers);
  const names = new Set([...model.nodes.flatMap((n) => [...n.inputs, ...n.outputs]), ...initializers.keys()]);
  const fresh = (base: string) => {
    let name = base;
    for (let k = 1; names.has(name); k++) name = `${base}_${k}`;
    names.add(name);
    return name;
  };
  const constant = (base: string, v: number) => {
    const name = fresh(base);
    initializers.set(name, makeTensor(name, 'int64', [1], [v]));
    return name;
  };
  const nodes = model.nodes.flatMap((node): OnnxNode[] => {
    if (!splits.includes(node)) return [node];
    const shape = shapes.get(node.inputs[0]!);
    if (!shape) throw new OnnxError(`${describeNode(node)}: the shape of its input '${node.inputs[0]}' cannot be inferred`);
    const axis = attrInt(node, 'axis', 0);
    const a = axis < 0 ? axis + shape.length : axis;
    if (a <= 0 || a >= shape.length) throw new OnnxError(`${describeNode(node)}: splits axis ${axis} of a rank-${shape.length} tensor; pdquant splits along non-batch axes only`);
    // From opset 13 the sizes are an input (before, the attribute splitLengths reads).
    const sizesInput = model.opsetVersion >= 13 ? node.inputs[1] : undefined;
    const sizes = sizesInput ? model.initializers.get(sizesInput) : undefined;
    if (sizesInput && !sizes)
      throw new OnnxError(`${describeNode(node)}: its split sizes '${sizesInput}' are computed, not constant; pdquant needs them fixed`);
    const lengths = splitLengths(node, model.opsetVersion, shape[a]!, sizes);
    const axes = constant(`${node.name || node.outputs[0]}_axes`, a);
    let start = 0;
    return node.outputs.flatMap((out, i) => {
      const from = start;
      start += lengths[i]!;
      if (!out) return [];
      const base = `${node.name || node.outputs[0]}_${i}`;
      return [{ name: fresh(`${base}_Slice`), opType: 'Slice', domain: '', inputs: [node.inputs[0]!, constant(`${base}_start`, from), constant(`${base}_end`, start), axes], outputs: [out], attrs: {} }];
    });
  });
  const used = new Set(nodes.flatMap((n) => n.inputs));
  return { ...model, nodes, initializers: new Map([...initializers].filter(([name]) => used.has(name) || model.outputs.some((o) => o.name === name))) };
}
