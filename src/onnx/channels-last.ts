// Channels-last image inputs (tf2onnx and Keras models take [N, H, W, C] and transpose it to NCHW first): pdquant
// quantizes the NCHW model behind that Transpose, and the export puts the Transpose back in front.
import { attrInts, isDefaultDomain } from './attrs.js';
import type { OnnxModel, OnnxNode } from './ir.js';

const TO_NCHW = [0, 3, 1, 2];

const isToNchw = (n: OnnxNode): boolean =>
  n.opType === 'Transpose' && isDefaultDomain(n) && attrInts(n, 'perm', []).join() === TO_NCHW.join();

/** Whether the model's first input is a rank-4 image that feeds nothing but Transposes to NCHW. */
export function isChannelsLast(model: Pick<OnnxModel, 'inputs' | 'nodes' | 'outputs'>): boolean {
  const input = model.inputs[0];
  if (!input || input.dims?.length !== 4 || model.outputs.some((v) => v.name === input.name)) return false;
  const users = model.nodes.filter((n) => n.inputs.includes(input.name));
  return users.length > 0 && users.every(isToNchw);
}

/** The model behind its input Transposes: the same input name, now [N, C, H, W], fed straight to their consumers. */
export function withoutChannelsLast(model: OnnxModel): OnnxModel {
  if (!isChannelsLast(model)) return model;
  const input = model.inputs[0]!;
  const [n, h, w, c] = input.dims!;
  const transposes = new Set(model.nodes.filter((node) => node.inputs.includes(input.name)));
  const transposed = new Set([...transposes].map((t) => t.outputs[0]!));
  const rewire = (v: string) => (transposed.has(v) ? input.name : v);
  return {
    ...model,
    inputs: [{ ...input, dims: [n!, c!, h!, w!] }, ...model.inputs.slice(1)],
    outputs: model.outputs.map((v) => ({ ...v, name: rewire(v.name) })),
    nodes: model.nodes.filter((node) => !transposes.has(node)).map((node) => ({ ...node, inputs: node.inputs.map(rewire) })),
  };
}

/** An NCHW model given a channels-last input again: [N, H, W, C] under the same name, transposed to NCHW first. */
export function withChannelsLast(model: OnnxModel): OnnxModel {
  const input = model.inputs[0]!;
  const [n, c, h, w] = input.dims!;
  const taken = new Set(model.nodes.flatMap((node) => [node.name, ...node.outputs]));
  let nchw = `${input.name}_nchw`;
  while (taken.has(nchw)) nchw += '_';
  const transpose: OnnxNode = {
    name: nchw, opType: 'Transpose', domain: '', inputs: [input.name], outputs: [nchw], attrs: { perm: { type: 'ints', value: TO_NCHW } },
  };
  return {
    ...model,
    inputs: [{ ...input, dims: [n!, h!, w!, c!] }, ...model.inputs.slice(1)],
    nodes: [transpose, ...model.nodes.map((node) => ({ ...node, inputs: node.inputs.map((v) => (v === input.name ? nchw : v)) }))],
  };
}
