// A Softmax/LogSoftmax at the end of a classifier: set aside while quantizing (top-1 and PD-Quant's loss work on the
// logits), put back on the exported model so it keeps the interface it came with.
import { attrInt } from './attrs.js';
import type { OnnxModel, OnnxNode, ValueInfo } from './ir.js';
import { inferShapes } from './shapes.js';

/** The normalization the model ended in, and the graph output it produced. */
export interface Head {
  opType: 'Softmax' | 'LogSoftmax';
  /** The node's name, for messages. */
  name: string;
  output: ValueInfo;
}

/**
 * Splits a trailing Softmax or LogSoftmax over the classes of an [N, K] output off the model; the model's output
 * becomes the logits. Models that end otherwise come back whole, with no head.
 */
export function splitHead(model: OnnxModel): { body: OnnxModel; head: Head | null } {
  const whole = { body: model, head: null };
  if (model.outputs.length !== 1) return whole;
  const output = model.outputs[0]!;
  const node = model.nodes.find((n) => n.outputs.includes(output.name));
  if (!node || (node.opType !== 'Softmax' && node.opType !== 'LogSoftmax') || node.domain !== '') return whole;
  const logits = node.inputs[0] ?? '';
  if (model.inputs.some((v) => v.name === logits) || model.initializers.has(logits)) return whole;
  const rank = inferShapes(model).get(logits)?.length;
  const axis = attrInt(node, 'axis', model.opsetVersion >= 13 ? -1 : 1);
  if (rank !== 2 || (axis !== 1 && axis !== -1)) return whole;
  return {
    body: { ...model, nodes: model.nodes.filter((n) => n !== node), outputs: [{ ...output, name: logits }] },
    head: { opType: node.opType, name: node.name, output },
  };
}

/** The model with the head appended again after its (only) output: same output name, type and shape as before. */
export function withHead(model: OnnxModel, head: Head | null): OnnxModel {
  if (!head) return model;
  const logits = model.outputs[0]!.name;
  const node: OnnxNode = {
    name: head.name, opType: head.opType, domain: '', inputs: [logits], outputs: [head.output.name],
    attrs: { axis: { type: 'int', value: -1 } },
  };
  return { ...model, nodes: [...model.nodes, node], outputs: [head.output] };
}
