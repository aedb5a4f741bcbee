// Channels-last image inputs (tf2onnx and Keras models take [N, H, W, C] and transpose it to NCHW first): pdquant
// quantizes the NCHW model behind that Transpose, and the export puts the Transpose back in front.
import { attrInts, isDefaultDomain } from './attrs.js';
import type { OnnxModel, OnnxNode, OnnxTensor } from './ir.js';

const TO_NCHW = [0, 3, 1, 2];

const isToNchw = (n: OnnxNode): boolean =>
  n.opType === 'Transpose' && isDefaultDomain(n) && attrInts(n, 'perm', []).join() === TO_NCHW.join();

/** Elementwise ops that may stand between the input and its Transpose (a Keras model's Rescaling and Normalization layers). */
const ELEMENTWISE = new Set(['Mul', 'Add', 'Sub', 'Div']);

/** A constant that broadcasts against [N, H, W, C] with one value per channel, or one value: every dim but the last is 1. */
const isPerChannel = (t: OnnxTensor): boolean => t.dims.length <= 4 && t.dims.slice(0, -1).every((d) => d === 1);

/** The same constant for an NCHW operand: [C] (or [1, 1, 1, C], ...) becomes [C, 1, 1]; a single value stays as it is. */
function forNchw(t: OnnxTensor): OnnxTensor {
  const c = t.dims.at(-1) ?? 1;
  return c === 1 ? t : { ...t, name: `${t.name}_nchw`, dims: [c, 1, 1] };
}

/** What lies between a channels-last input and NCHW: per-channel elementwise ops, then the Transposes to NCHW. */
interface Prefix {
  ops: OnnxNode[];
  transposes: OnnxNode[];
}

function channelsLastPrefix(model: Pick<OnnxModel, 'inputs' | 'nodes' | 'outputs' | 'initializers'>): Prefix | null {
  const input = model.inputs[0];
  if (!input || input.dims?.length !== 4) return null;
  const ops: OnnxNode[] = [];
  for (let v = input.name; ;) {
    if (model.outputs.some((o) => o.name === v)) return null;
    const users = model.nodes.filter((n) => n.inputs.includes(v));
    if (users.length > 0 && users.every(isToNchw)) return { ops, transposes: users };
    const op = users.length === 1 ? users[0]! : undefined;
    if (!op || !ELEMENTWISE.has(op.opType) || !isDefaultDomain(op) || op.inputs.length !== 2) return null;
    const other = model.initializers.get(op.inputs[op.inputs[0] === v ? 1 : 0]!);
    if (!other || op.inputs[0] === op.inputs[1] || !isPerChannel(other)) return null;
    ops.push(op);
    v = op.outputs[0]!;
  }
}

/**
 * Whether the model's first input is a rank-4 image that reaches NCHW through Transposes (perm [0, 3, 1, 2]) only,
 * possibly after elementwise ops with a constant per channel (scaling, mean and std inside the model).
 */
export function isChannelsLast(model: Pick<OnnxModel, 'inputs' | 'nodes' | 'outputs' | 'initializers'>): boolean {
  return channelsLastPrefix(model) !== null;
}

/**
 * The model behind its input Transposes: the same input name, now [N, C, H, W]; the elementwise ops before the
 * Transposes take their constants as [C, 1, 1], and the Transposes' consumers read what the Transposes read.
 */
export function withoutChannelsLast(model: OnnxModel): OnnxModel {
  const prefix = channelsLastPrefix(model);
  if (!prefix) return model;
  const input = model.inputs[0]!;
  const [n, h, w, c] = input.dims!;
  const initializers = new Map(model.initializers);
  const ops = new Map(prefix.ops.map((op) => [op, { ...op, inputs: op.inputs.map((i) => {
    const t = initializers.get(i);
    if (!t) return i;
    const nchw = forNchw(t);
    initializers.set(nchw.name, nchw);
    return nchw.name;
  }) }]));
  const nchwValue = prefix.ops.at(-1)?.outputs[0] ?? input.name;
  const transposes = new Set(prefix.transposes);
  const transposed = new Set(prefix.transposes.map((t) => t.outputs[0]!));
  const rewire = (v: string) => (transposed.has(v) ? nchwValue : v);
  return {
    ...model,
    initializers,
    inputs: [{ ...input, dims: [n!, c!, h!, w!] }, ...model.inputs.slice(1)],
    outputs: model.outputs.map((v) => ({ ...v, name: rewire(v.name) })),
    nodes: model.nodes.filter((node) => !transposes.has(node)).map((node) => ops.get(node) ?? { ...node, inputs: node.inputs.map(rewire) }),
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
