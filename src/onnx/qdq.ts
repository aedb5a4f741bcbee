// A BN-folded float model + quantization parameters → a standard QDQ ONNX model (a pure IR transformation).
//
// Weights: the float initializer becomes integer codes + per-channel scale/zero point and a DequantizeLinear node,
// so the layer sees ŵ = (q − z)·s (float32), exactly what the simulation uses.
// Activations: `value` → [Clip] → QuantizeLinear → DequantizeLinear → every former consumer, which computes
// x̂ = (clamp(round_half_even(x/s) + z, 0, 2^b − 1) − z)·s. onnxruntime's CPU QuantizeLinear divides by the scale
// (no reciprocal multiply) and rounds half to even, so this route is exact (test/onnx-qdq.test.ts checks it,
// rounding ties and values outside the range included). The Clip, only for b < 8, bounds the uint8 code to
// 0..2^b − 1: its bounds are the dequantized values of codes 0 and 2^b − 1, so clipping before quantizing gives the
// same code as clamping after.
//
// Biases stay float32, as in the simulation. Note: onnxruntime's default graph optimizations (level basic and up)
// include WeightBiasQuantization, which rounds the float bias of a Conv/Gemm fed by a per-tensor DequantizeLinear to
// the int32 grid of input scale × weight scale — a deviation of up to half a grid step per bias. The graph as written
// is exact; to run it exactly in onnxruntime, disable its QDQ optimizers (session config `session.disable_quant_qdq`
// = "1", in onnxruntime-node `extra: { session: { disable_quant_qdq: '1' } }`) or graph optimizations.
//
// With `integerKernels` the graph takes the form onnxruntime fuses into QLinearConv/QLinearAdd instead: INT8 weight
// codes with zero point 0, biases as INT32 codes on the input scale × weight scale grid inside the layer (the
// simulation rounds them so too), no Clip (8-bit activations only).
import { describeNode, attrInt } from './attrs.js';
import { OnnxError } from './errors.js';
import type { OnnxModel, OnnxNode, OnnxTensor } from './ir.js';
import { channelOf, numel } from './tensor.js';
import { keepsGrid } from './grid.js';
import { freshName, namesInUse } from './names.js';

/** Quantized weight of one Conv/Gemm/MatMul node (its input 1, a float32 initializer). */
export interface QdqWeight {
  /** Conv/Gemm/MatMul node name. */
  node: string;
  /** 2..8. */
  bits: number;
  /** Channel axis of the weight: 0 for Conv and Gemm(transB=1), 1 for MatMul/Gemm(transB=0). */
  axis: number;
  /** Per channel, > 0. */
  scale: Float32Array;
  /** Per channel, 0..2^bits−1. */
  zeroPoint: Uint8Array;
  /** Integer weight codes q in 0..2^bits−1, same element order and count as the float weight. */
  codes: Uint8Array;
  /**
   * With integerKernels: the layer's bias as INT32 codes with their per-channel scale (input scale × weight scale),
   * where the layer reads an activation quantizer's grid; otherwise the bias stays float (a separate Add).
   */
  bias?: { codes: Int32Array; scale: Float32Array };
}

/** Uniform quantizer on an activation. */
export interface QdqActivation {
  /** Tensor name after which the quantizer sits (a node output or a graph input). */
  value: string;
  bits: number;
  /** > 0; stored (and applied) as float32. */
  scale: number;
  /** 0..2^bits−1. */
  zeroPoint: number;
}

export interface QdqSpec {
  weights: QdqWeight[];
  acts: QdqActivation[];
  /** Store weight codes of ≤ 4 bits as packed UINT4 (needs opset 21, to which the model is raised). */
  int4Storage?: boolean;
  /**
   * The form onnxruntime fuses into integer kernels (QLinearConv, QLinearAdd): weights as INT8 codes q − z with zero
   * point 0 (each must fit; UINT8 q − z + 128 where they pass ±SATURATION_SAFE_CODE), and biases given as INT32 codes
   * (QdqWeight.bias) inside the layer. Activations must be 8-bit (no Clip).
   */
  integerKernels?: boolean;
  /**
   * Conv/Gemm layers whose weights stay float (no quantizer). They are written as exact INT32 codes with power-of-two
   * scales behind a DequantizeLinear, their bias as an Add: onnxruntime's WeightBiasQuantization pass would otherwise
   * round a float weight initializer to 8 bits, per tensor, wherever the layer reads a DequantizeLinear and leads to
   * a QuantizeLinear. Other nodes named here (a MatMul) keep their float initializer.
   */
  floatWeights?: string[];
  /** Merged into the model's metadata_props (overriding equal keys). */
  metadata?: Record<string, string>;
}

/** Opset from which DequantizeLinear takes a per-channel `axis`. */
const PER_CHANNEL_OPSET = 13;
/** Opset from which QuantizeLinear/DequantizeLinear take UINT4. */
const UINT4_OPSET = 21;
/** Least IR version of each opset (ONNX versioning table); UINT4 itself needs IR 10. */
const MIN_IR: Record<number, number> = { 13: 7, 14: 7, 15: 8, 16: 8, 17: 8, 18: 8, 19: 9, 20: 9, 21: 10 };

/**
 * Ops whose interface changed incompatibly at some opset: raising a model across that opset would change their meaning.
 * `uses` says whether a node actually depends on the old form (e.g. an attribute later moved to an input).
 */
const BREAKING: Record<string, { opset: number; uses(node: OnnxNode): boolean; why: string }> = {};
const hasAttr = (name: string) => (node: OnnxNode) => name in node.attrs;
for (const op of ['Squeeze', 'Unsqueeze', 'ReduceSum']) {
  BREAKING[op] = { opset: 13, uses: hasAttr('axes'), why: "its 'axes' attribute became an input" };
}
BREAKING.Split = { opset: 13, uses: hasAttr('split'), why: "its 'split' attribute became an input" };
for (const op of ['Softmax', 'LogSoftmax', 'Hardmax']) {
  BREAKING[op] = {
    opset: 13,
    uses: (node) => attrInt(node, 'axis', 1) !== -1,
    why: 'it no longer flattens the input to 2-D around its axis (only axis=-1 keeps its meaning)',
  };
}
BREAKING.Dropout = { opset: 12, uses: hasAttr('ratio'), why: "its 'ratio' attribute became an input" };
for (const op of ['ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp', 'ReduceSumSquare']) {
  BREAKING[op] = { opset: 18, uses: hasAttr('axes'), why: "its 'axes' attribute became an input" };
}
BREAKING.GridSample = {
  opset: 20,
  uses: (node) => node.attrs.mode?.type === 'string' && ['bilinear', 'bicubic'].includes(node.attrs.mode.value as string),
  why: "its modes 'bilinear'/'bicubic' were renamed 'linear'/'cubic'",
};
BREAKING.GroupNormalization = { opset: 21, uses: () => true, why: 'its scale and bias changed from per-group to per-channel' };

/** The expected channel axis of a weight (input 1) of a Conv/Gemm/MatMul node of the given weight rank. */
function channelAxis(node: OnnxNode, rank: number): number {
  switch (node.opType) {
    case 'Conv': return 0;
    case 'Gemm': return attrInt(node, 'transB', 0) ? 0 : 1;
    case 'MatMul': return rank - 1;
    default: throw new OnnxError(`${describeNode(node)}: weights of ${node.opType} cannot be quantized (Conv, Gemm and MatMul can)`);
  }
}

/**
 * A float32 weight as INT32 codes times a power of two per channel (along `axis`), 2^(e − 30) for the channel's largest
 * magnitude 2^e..2^(e+1): every value at least 2^−7 of that largest one is exact, a smaller one is off by at most 2^−31
 * of the largest.
 */
export function exactInt32Codes(w: Float32Array, dims: readonly number[], axis: number): { codes: Int32Array; scale: Float32Array } {
  const channels = dims[axis]!;
  const channel = channelOf(dims, axis, channels);
  const largest = new Float64Array(channels);
  w.forEach((v, i) => { largest[channel(i)] = Math.max(largest[channel(i)]!, Math.abs(v)); });
  const scale = Float32Array.from(largest, (m) => (m > 0 ? 2 ** (Math.floor(Math.log2(m)) - 30) : 1));
  return { codes: Int32Array.from(w, (v, i) => Math.round(v / scale[channel(i)]!)), scale };
}

/** Codes q − z per element (channels on `axis` of `dims`), which must fit INT8. */
function signedCodes(w: QdqWeight, dims: readonly number[], what: string): Int8Array {
  const channel = channelOf(dims, w.axis, dims[w.axis]!);
  const out = new Int8Array(w.codes.length);
  for (let i = 0; i < out.length; i++) {
    const v = w.codes[i]! - w.zeroPoint[channel(i)]!;
    if (v < -128 || v > 127) throw new OnnxError(`${what}: code[${i}] − zero point = ${v} does not fit INT8; integer kernels need 8-bit weights quantized with zero point 128`);
    out[i] = v;
  }
  return out;
}

/**
 * The largest |q − z| whose products with uint8 activations onnxruntime's U8S8 kernels sum exactly on x86 CPUs without
 * VNNI: they add two products u8·s8 in a saturating int16 (pmaddubsw), and 2 · 255 · 64 fits it, 2 · 255 · 127 does
 * not. Measured: full-range INT8 weights moved the demo CNN's first quantizer by up to 38 steps on an AVX-only EPYC, and
 * resnet20's W8A8 logits by up to 2.2 on an AVX2 EPYC.
 */
export const SATURATION_SAFE_CODE = 64;

/**
 * A layer's signed codes q − z as onnxruntime's integer kernels take them: INT8 with zero point 0 when they are
 * within ±SATURATION_SAFE_CODE (every narrower grid), else UINT8 q − z + 128 with zero point 128, which its U8U8
 * kernels compute exactly on every CPU (an 8-bit layer).
 */
function integerKernelCodes(signed: Int8Array): { dataType: 'int8' | 'uint8'; codes: Int8Array | Uint8Array; zeroPoint(channels: number): Int8Array | Uint8Array } {
  if (signed.every((v) => Math.abs(v) <= SATURATION_SAFE_CODE)) return { dataType: 'int8', codes: signed, zeroPoint: (c) => new Int8Array(c) };
  return { dataType: 'uint8', codes: Uint8Array.from(signed, (v) => v + 128), zeroPoint: (c) => new Uint8Array(c).fill(128) };
}

const scalarTensor = (name: string, dataType: 'float32' | 'uint8', value: number): OnnxTensor =>
  ({ name, dataType, dims: [], data: dataType === 'float32' ? Float32Array.of(value) : Uint8Array.of(value) });

function checkBits(bits: number, what: string): void {
  if (!Number.isInteger(bits) || bits < 2 || bits > 8) throw new OnnxError(`${what}: bits must be an integer in 2..8, got ${bits}`);
}

function checkCode(v: number, bits: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > 2 ** bits - 1) {
    throw new OnnxError(`${what} = ${v} is outside 0..${2 ** bits - 1} (${bits} bits)`);
  }
}

function checkScale(s: number, what: string): void {
  if (!Number.isFinite(s) || !(s > 0)) throw new OnnxError(`${what} = ${s} must be finite and > 0`);
}

/**
 * The QDQ form of a float model: each weight in `spec.weights` becomes codes + DequantizeLinear, each activation in
 * `spec.acts` gets [Clip →] QuantizeLinear → DequantizeLinear. The input model is not modified; tensors it holds
 * are shared with the result. The opset is raised to 13 when weights are quantized per channel (21 with UINT4 codes),
 * after checking that no op changes meaning on the way.
 */
export function toQdq(model: OnnxModel, spec: QdqSpec): OnnxModel {
  const initializers = new Map(model.initializers);
  const nodes = model.nodes.map((n) => ({ ...n, inputs: [...n.inputs] }));
  const outputs = model.outputs.map((v) => ({ ...v }));

  // Every name in use, so that new tensors and nodes collide with none.
  const taken = namesInUse(model);
  const claim = (name: string, what: string): string => {
    if (taken.has(name)) throw new OnnxError(`${what}: the name '${name}' is already used in the model`);
    taken.add(name);
    return name;
  };
  const fresh = (base: string): string => freshName(taken, base);

  const before = new Map<number, OnnxNode[]>();
  const after = new Map<number, OnnxNode[]>();
  const atStart: OnnxNode[] = [];
  const push = (map: Map<number, OnnxNode[]>, i: number, node: OnnxNode) => map.set(i, [...(map.get(i) ?? []), node]);

  /**
   * A quantized layer's float bias moves to an Add after it. onnxruntime's WeightBiasQuantization pass (level basic and
   * up) otherwise rounds a Conv/Gemm bias to the int32 grid of input scale × weight scale whenever the input comes from
   * a DequantizeLinear, which changed resnet20's W4A4 top-1 by a point; as an Add it stays exactly what was simulated.
   */
  const biasAdds = new Map<string, number>();
  /** Whether the node keeps no float bias initializer of its own afterwards. */
  const splitBias = (index: number, node: OnnxNode, rank: number): boolean => {
    const bias = model.initializers.get(node.inputs[2] ?? '');
    if (!bias) return true;
    if (bias.dataType !== 'float32') return false;
    if (node.opType === 'Gemm' && (node.attrs.beta?.type === 'float' ? node.attrs.beta.value : 1) !== 1) return false;
    const shaped: OnnxTensor = node.opType === 'Conv'
      ? { ...bias, name: fresh(`${bias.name}_bias`), dims: [bias.dims[0]!, ...Array<number>(rank - 2).fill(1)] }
      : bias;
    initializers.set(shaped.name, shaped);
    const out = node.outputs[0]!;
    const raw = fresh(`${out}_nobias`);
    node.inputs = node.inputs.slice(0, 2);
    node.outputs = [raw, ...node.outputs.slice(1)];
    if (shaped !== bias && !nodes.some((n) => n.inputs.includes(bias.name))) initializers.delete(bias.name);
    push(after, index, { name: fresh(`${node.name}_bias_Add`), opType: 'Add', domain: '', inputs: [raw, shaped.name], outputs: [out], attrs: {} });
    biasAdds.set(out, index);
    return true;
  };

  /** With integer kernels, a bias given as INT32 codes goes into the layer behind a DequantizeLinear, so the layer fuses. */
  const integerBias = (index: number, node: OnnxNode, w: QdqWeight): boolean => {
    const bias = model.initializers.get(node.inputs[2] ?? '');
    if (!w.bias || !bias) return false;
    const what = `bias of node '${w.node}'`;
    if (w.bias.codes.length !== bias.data.length || w.bias.scale.length !== bias.data.length)
      throw new OnnxError(`${what}: ${w.bias.codes.length} codes and ${w.bias.scale.length} scales for '${bias.name}' of ${bias.data.length} elements`);
    w.bias.scale.forEach((sc, c) => checkScale(sc, `${what}: scale[${c}]`));
    const q: OnnxTensor = { name: fresh(`${bias.name}_q`), dataType: 'int32', dims: [bias.data.length], data: Int32Array.from(w.bias.codes) };
    const sc: OnnxTensor = { name: fresh(`${bias.name}_scale`), dataType: 'float32', dims: [bias.data.length], data: Float32Array.from(w.bias.scale) };
    initializers.set(q.name, q).set(sc.name, sc);
    const dq = fresh(`${bias.name}_dq`);
    push(before, index, {
      name: fresh(`${bias.name}_DequantizeLinear`), opType: 'DequantizeLinear', domain: '',
      inputs: [q.name, sc.name], outputs: [dq], attrs: { axis: { type: 'int', value: 0 } },
    });
    node.inputs[2] = dq;
    if (!nodes.some((n) => n.inputs.includes(bias.name))) initializers.delete(bias.name);
    return true;
  };

  /**
   * onnxruntime fuses an addition into QLinearAdd only when both inputs come straight from DequantizeLinear. An input
   * that reaches a quantizer through ops that keep its grid (option-A shortcuts: Slice, zero Pad) gets a
   * QuantizeLinear → DequantizeLinear with that quantizer's parameters, which changes no value.
   */
  const requantizeAddInputs = () => {
    const acts = new Map(spec.acts.map((a) => [a.value, a]));
    const made = new Map<string, number>();
    model.nodes.forEach((n, i) => n.outputs.forEach((v) => made.set(v, i)));
    const gridSource = (v: string): QdqActivation | undefined => {
      for (let x: string | undefined = v; x !== undefined; ) {
        if (acts.has(x)) return acts.get(x);
        const p: OnnxNode | undefined = made.has(x) ? model.nodes[made.get(x)!] : undefined;
        x = p && keepsGrid(p, model) ? p.inputs[0] : undefined;
      }
      return undefined;
    };
    const done = new Set<string>();
    for (const add of model.nodes) {
      if (add.opType !== 'Add' || add.inputs.some((v) => model.initializers.has(v))) continue;
      for (const v of add.inputs) {
        const a = acts.has(v) || done.has(v) ? undefined : gridSource(v);
        if (!a || !made.has(v)) continue;
        done.add(v);
        const scale = scalarTensor(fresh(`${v}_requant_scale`), 'float32', Math.fround(a.scale));
        const zero = scalarTensor(fresh(`${v}_requant_zero_point`), 'uint8', a.zeroPoint);
        initializers.set(scale.name, scale).set(zero.name, zero);
        const q = fresh(`${v}_requant_q`), dq = fresh(`${v}_requant_dq`);
        // Every reader takes the requantized value (the same values): a MaxPool output that also feeds a convolution
        // keeps a single reader, the pattern onnxruntime fuses.
        for (const n of nodes) n.inputs = n.inputs.map((x) => (x === v ? dq : x));
        push(after, made.get(v)!, { name: fresh(`${v}_requant_QuantizeLinear`), opType: 'QuantizeLinear', domain: '', inputs: [v, scale.name, zero.name], outputs: [q], attrs: {} });
        push(after, made.get(v)!, { name: fresh(`${v}_requant_DequantizeLinear`), opType: 'DequantizeLinear', domain: '', inputs: [q, scale.name, zero.name], outputs: [dq], attrs: {} });
      }
    }
  };

  // ---- weights ----
  const kernels = spec.integerKernels === true;
  if (kernels && spec.int4Storage) throw new OnnxError('integer kernels read 8-bit weight codes: int4 storage cannot be combined with them');
  if (kernels) for (const a of spec.acts) if (a.bits !== 8) throw new OnnxError(`activation '${a.value}': integer kernels need 8-bit activations, it has ${a.bits} bits`);
  const int4 = spec.int4Storage === true && spec.weights.some((w) => w.bits <= 4);
  const seenNodes = new Set<string>();
  const replaced = new Set<string>();
  for (const w of spec.weights) {
    const what = `weight of node '${w.node}'`;
    if (seenNodes.has(w.node)) throw new OnnxError(`${what}: quantized twice in the spec`);
    seenNodes.add(w.node);
    const matches = nodes.flatMap((n, i) => (n.name === w.node ? [i] : []));
    if (matches.length === 0) throw new OnnxError(`${what}: the model has no node named '${w.node}'`);
    if (matches.length > 1) throw new OnnxError(`${what}: ${matches.length} nodes are named '${w.node}'`);
    const index = matches[0];
    const node = nodes[index];
    checkBits(w.bits, what);
    if (!['Conv', 'Gemm', 'MatMul'].includes(node.opType) || node.domain !== '' && node.domain !== 'ai.onnx') {
      throw new OnnxError(`${what}: ${describeNode(node)} is not a Conv, Gemm or MatMul`);
    }
    const weightName = node.inputs[1] ?? '';
    const float = model.initializers.get(weightName);
    if (!float) throw new OnnxError(`${what}: its input 1 '${weightName}' is not an initializer`);
    const axis = channelAxis(node, float.dims.length);
    if (float.dataType !== 'float32') throw new OnnxError(`${what}: initializer '${weightName}' is ${float.dataType}, not float32`);
    if (w.axis !== axis) {
      throw new OnnxError(`${what}: axis ${w.axis} given, but the output channels of ${describeNode(node)} lie on axis ${axis} of '${weightName}' [${float.dims}]`);
    }
    const channels = float.dims[axis];
    if (w.scale.length !== channels) throw new OnnxError(`${what}: ${w.scale.length} scales for ${channels} channels`);
    if (w.zeroPoint.length !== channels) throw new OnnxError(`${what}: ${w.zeroPoint.length} zero points for ${channels} channels`);
    const n = numel(float.dims);
    if (w.codes.length !== n) throw new OnnxError(`${what}: ${w.codes.length} codes for '${weightName}' [${float.dims}] of ${n} elements`);
    w.scale.forEach((s, c) => checkScale(s, `${what}: scale[${c}]`));
    w.zeroPoint.forEach((z, c) => checkCode(z, w.bits, `${what}: zero point[${c}]`));
    for (let i = 0; i < n; i++) if (w.codes[i] > 2 ** w.bits - 1) checkCode(w.codes[i], w.bits, `${what}: code[${i}]`);

    const kernelCodes = kernels ? integerKernelCodes(signedCodes(w, float.dims, what)) : undefined;
    const codeType = kernelCodes?.dataType ?? (int4 && w.bits <= 4 ? 'uint4' : 'uint8');
    const codes: OnnxTensor = { name: fresh(`${weightName}_q`), dataType: codeType, dims: [...float.dims], data: kernelCodes?.codes ?? Uint8Array.from(w.codes) };
    const scale: OnnxTensor = { name: fresh(`${weightName}_scale`), dataType: 'float32', dims: [channels], data: Float32Array.from(w.scale) };
    const zero: OnnxTensor = { name: fresh(`${weightName}_zero_point`), dataType: codeType, dims: [channels], data: kernelCodes?.zeroPoint(channels) ?? Uint8Array.from(w.zeroPoint) };
    for (const t of [codes, scale, zero]) initializers.set(t.name, t);
    const dq = fresh(`${weightName}_dq`);
    push(before, index, {
      name: fresh(`${weightName}_DequantizeLinear`), opType: 'DequantizeLinear', domain: '',
      inputs: [codes.name, scale.name, zero.name], outputs: [dq], attrs: { axis: { type: 'int', value: axis } },
    });
    node.inputs[1] = dq;
    replaced.add(weightName);
    if (!(kernels && integerBias(index, node, w))) splitBias(index, node, float.dims.length);
  }
  for (const name of spec.floatWeights ?? []) {
    const index = nodes.findIndex((n) => n.name === name);
    const node = nodes[index];
    if (!node) throw new OnnxError(`float weight of node '${name}': the model has no node named '${name}'`);
    if (seenNodes.has(name)) throw new OnnxError(`weight of node '${name}': both quantized and float in the spec`);
    const float = model.initializers.get(node.inputs[1] ?? '');
    if (!['Conv', 'Gemm'].includes(node.opType) || !float || float.dataType !== 'float32') continue;
    const axis = channelAxis(node, float.dims.length);
    const { codes, scale } = exactInt32Codes(float.data as Float32Array, float.dims, axis);
    const q: OnnxTensor = { name: fresh(`${float.name}_q32`), dataType: 'int32', dims: [...float.dims], data: codes };
    const sc: OnnxTensor = { name: fresh(`${float.name}_scale`), dataType: 'float32', dims: [scale.length], data: scale };
    initializers.set(q.name, q).set(sc.name, sc);
    const dq = fresh(`${float.name}_dq`);
    push(before, index, { name: fresh(`${float.name}_DequantizeLinear`), opType: 'DequantizeLinear', domain: '', inputs: [q.name, sc.name], outputs: [dq], attrs: { axis: { type: 'int', value: axis } } });
    node.inputs[1] = dq;
    replaced.add(float.name);
    // Left in the layer, onnxruntime would round the bias to the grid of input scale × these tiny scales, overflowing INT32.
    if (!splitBias(index, node, float.dims.length)) throw new OnnxError(`bias of node '${name}': cannot be moved out of ${describeNode(node)} (a Gemm with beta ≠ 1, or not float32), which float weights need`);
  }
  // Float weights that nothing reads any more are dropped (a weight shared with an unquantized node stays).
  for (const name of replaced) {
    if (!nodes.some((n) => n.inputs.includes(name)) && !outputs.some((v) => v.name === name)) initializers.delete(name);
  }

  // ---- activations ----
  const producer = new Map<string, number>();
  nodes.forEach((n, i) => n.outputs.forEach((o) => o && producer.set(o, i)));
  for (const [out, i] of biasAdds) producer.set(out, i);
  const seenValues = new Set<string>();
  const rewired: [string, string][] = [];
  for (const a of spec.acts) {
    const v = a.value;
    const what = `activation '${v}'`;
    if (seenValues.has(v)) throw new OnnxError(`${what}: quantized twice in the spec`);
    seenValues.add(v);
    const isInput = model.inputs.some((i) => i.name === v);
    if (model.initializers.has(v)) throw new OnnxError(`${what}: is an initializer, not an activation`);
    if (!producer.has(v) && !isInput) throw new OnnxError(`${what}: no node produces it and it is not a graph input`);
    const declared = [...model.inputs, ...model.outputs].find((i) => i.name === v);
    if (declared && declared.elemType !== 'float32') throw new OnnxError(`${what}: is ${declared.elemType}, not float32`);
    checkBits(a.bits, what);
    checkScale(a.scale, `${what}: scale`);
    checkCode(a.zeroPoint, a.bits, `${what}: zero point`);

    const s = Math.fround(a.scale);
    const z = a.zeroPoint;
    const added: OnnxNode[] = [];
    let x = v;
    if (a.bits < 8) {
      const lo = scalarTensor(claim(`${v}_clip_min`, what), 'float32', Math.fround((0 - z) * s));
      const hi = scalarTensor(claim(`${v}_clip_max`, what), 'float32', Math.fround((2 ** a.bits - 1 - z) * s));
      initializers.set(lo.name, lo).set(hi.name, hi);
      const clipped = claim(`${v}_clip`, what);
      added.push({ name: claim(`${v}_Clip`, what), opType: 'Clip', domain: '', inputs: [x, lo.name, hi.name], outputs: [clipped], attrs: {} });
      x = clipped;
    }
    const scale = scalarTensor(claim(`${v}_scale`, what), 'float32', s);
    const zero = scalarTensor(claim(`${v}_zero_point`, what), 'uint8', z);
    initializers.set(scale.name, scale).set(zero.name, zero);
    const q = claim(`${v}_q`, what);
    const dq = claim(`${v}_dq`, what);
    added.push(
      { name: claim(`${v}_QuantizeLinear`, what), opType: 'QuantizeLinear', domain: '', inputs: [x, scale.name, zero.name], outputs: [q], attrs: {} },
      { name: claim(`${v}_DequantizeLinear`, what), opType: 'DequantizeLinear', domain: '', inputs: [q, scale.name, zero.name], outputs: [dq], attrs: {} },
    );
    const at = producer.get(v);
    if (at === undefined) atStart.push(...added);
    else for (const node of added) push(after, at, node);
    rewired.push([v, dq]);
  }
  // Consumers read the dequantized value; the producer keeps the original name (diagnostics find it there).
  const dqOf = new Map(rewired);
  for (const node of nodes) node.inputs = node.inputs.map((name) => dqOf.get(name) ?? name);
  for (const out of outputs) out.name = dqOf.get(out.name) ?? out.name;
  if (kernels) requantizeAddInputs();

  // ---- opset ----
  let opsetVersion = model.opsetVersion;
  if (spec.weights.length > 0 || replaced.size > 0) opsetVersion = Math.max(opsetVersion, PER_CHANNEL_OPSET);
  if (int4) opsetVersion = Math.max(opsetVersion, UINT4_OPSET);
  if (opsetVersion !== model.opsetVersion) {
    for (const node of model.nodes) {
      const rule = BREAKING[node.opType];
      if (rule && model.opsetVersion < rule.opset && rule.opset <= opsetVersion && rule.uses(node)) {
        throw new OnnxError(`the QDQ model needs opset ${opsetVersion}${int4 ? ' (UINT4 weight codes)' : ' (per-channel DequantizeLinear)'}, but the model is opset ${model.opsetVersion} and ${describeNode(node)} changes meaning at opset ${rule.opset}: ${rule.why}; re-export the model at opset ${opsetVersion}${int4 ? ' or quantize without int4Storage' : ''}`);
      }
    }
  }
  const irVersion = opsetVersion !== model.opsetVersion || int4 ? Math.max(model.irVersion, MIN_IR[opsetVersion] ?? 0) : model.irVersion;

  const ordered: OnnxNode[] = [...atStart];
  nodes.forEach((node, i) => ordered.push(...(before.get(i) ?? []), node, ...(after.get(i) ?? [])));
  return {
    ...model,
    irVersion,
    opsetVersion,
    inputs: model.inputs.map((v) => ({ ...v })),
    outputs,
    initializers,
    nodes: ordered,
    metadata: { ...model.metadata, ...(spec.metadata ?? {}) },
  };
}
