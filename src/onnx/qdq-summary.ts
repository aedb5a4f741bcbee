// What a QDQ model holds, for `pdquant inspect` and the export check: its weight codes and activation quantizers, read
// back from the graph.
import type { OnnxModel, OnnxNode, OnnxTensor } from './ir.js';
import { channelOf, numel } from './tensor.js';

/** A weight stored as integer codes behind a DequantizeLinear. */
export interface QdqWeightInfo {
  /** The DequantizeLinear node. */
  node: string;
  dataType: OnnxTensor['dataType'];
  elements: number;
  /**
   * Largest code used: with uint8 storage it tells the bit-width the codes fit in. Signed codes (q − z, zero point
   * 0) give the widest span max − min of one channel instead, which tells the same.
   */
  maxCode: number;
  /** Bytes the codes take in the file (uint4 packs two per byte). */
  bytes: number;
}

/** A QuantizeLinear → DequantizeLinear pair on an activation. */
export interface QdqActivationInfo {
  /** The quantized tensor (the Clip's input when a Clip bounds the codes). */
  value: string;
  /** From the Clip's bounds when there is one (codes 0..2^b − 1), else the width of the code type. */
  bits: number;
}

export interface QdqSummary {
  weights: QdqWeightInfo[];
  /** Layers whose weights stay float, written as exact INT32 codes (QdqSpec.floatWeights): the DequantizeLinear nodes. */
  floatWeights: string[];
  acts: QdqActivationInfo[];
}

const BITS: Partial<Record<OnnxTensor['dataType'], number>> = { uint8: 8, int8: 8, uint4: 4, int4: 4, uint16: 16, int16: 16 };

function scalar(model: OnnxModel, name: string | undefined): number | undefined {
  const t = name === undefined ? undefined : model.initializers.get(name);
  return t && numel(t.dims) === 1 ? Number(t.data[0]) : undefined;
}

/** A DequantizeLinear's axis, counted from the front (ONNX's default is 1). */
function dqAxis(dq: OnnxNode, rank: number): number {
  const axis = dq.attrs.axis?.type === 'int' ? (dq.attrs.axis.value as number) : 1;
  return axis < 0 ? axis + rank : axis;
}

/** max − min of the codes of one channel (the DequantizeLinear's axis), widest over the channels. */
function widestChannelSpan(codes: OnnxTensor, dq: OnnxNode): number {
  const perChannel = codes.dims.length > 0 && dq.attrs.axis?.type === 'int';
  const axis = perChannel ? dqAxis(dq, codes.dims.length) : 0;
  const channels = perChannel ? codes.dims[axis]! : 1;
  const channel = channelOf(codes.dims, axis, channels);
  const lo = new Array<number>(channels).fill(Infinity), hi = new Array<number>(channels).fill(-Infinity);
  codes.data.forEach((v, i) => {
    const c = channel(i);
    lo[c] = Math.min(lo[c]!, Number(v));
    hi[c] = Math.max(hi[c]!, Number(v));
  });
  return Math.max(0, ...hi.map((h, c) => h - lo[c]!));
}

/**
 * The float32 values a DequantizeLinear of initializers computes, (q − z)·s per tensor or along its axis; undefined
 * when its inputs are not initializers.
 */
export function dequantized(m: OnnxModel, dq: OnnxNode): OnnxTensor | undefined {
  const codes = m.initializers.get(dq.inputs[0]!);
  const scale = m.initializers.get(dq.inputs[1]!);
  const zero = dq.inputs[2] ? m.initializers.get(dq.inputs[2]) : undefined;
  if (!codes || !scale || (dq.inputs[2] && !zero)) return undefined;
  const channels = scale.data.length;
  const channel = channelOf(codes.dims, dqAxis(dq, codes.dims.length), channels);
  const q = codes.data as ArrayLike<number>, s = scale.data as Float32Array, z = zero?.data as ArrayLike<number> | undefined;
  const data = new Float32Array(q.length);
  for (let i = 0; i < q.length; i++) {
    const c = channel(i);
    // An integer times a float32 is exact in float64, so one rounding gives float32's product.
    data[i] = Math.fround((q[i]! - (z?.[c] ?? 0)) * s[c]!);
  }
  return { name: dq.outputs[0]!, dataType: 'float32', dims: codes.dims, data };
}

/** Whether a model holds QuantizeLinear/DequantizeLinear nodes (a QDQ model, such as `quantize -o` writes). */
export function isQdq(model: OnnxModel): boolean {
  return model.nodes.some((n) => n.opType === 'QuantizeLinear' || n.opType === 'DequantizeLinear');
}

/** Op types of quantized models: QDQ (pdquant's exports, ORT's quantizer) and the QOperator format. */
const QUANTIZED_OP = /^(QuantizeLinear|DequantizeLinear|DynamicQuantizeLinear|QLinear\w+|ConvInteger|MatMulInteger\w*)$/;

/** The quantized op types a model holds (none for a float model). */
export function quantizedOps(model: OnnxModel): string[] {
  return [...new Set(model.nodes.filter((n) => QUANTIZED_OP.test(n.opType)).map((n) => n.opType))];
}

/** The QDQ structure of a model, or undefined when it is not a QDQ model. */
export function summarizeQdq(model: OnnxModel): QdqSummary | undefined {
  if (!isQdq(model)) return undefined;
  const producer = new Map(model.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
  const weights: QdqWeightInfo[] = [];
  const floatWeights: string[] = [];
  const acts: QdqActivationInfo[] = [];
  const weightInputs = new Set(model.nodes.filter((n) => n.opType === 'Conv' || n.opType === 'Gemm').map((n) => n.inputs[1]));
  for (const node of model.nodes) {
    if (node.opType === 'DequantizeLinear') {
      const codes = model.initializers.get(node.inputs[0]!);
      if (codes?.dataType === 'int32' && weightInputs.has(node.outputs[0])) floatWeights.push(node.name);
      if (!codes || codes.dataType === 'int32') continue; // float weights, or a bias on its accumulator's grid
      const elements = numel(codes.dims);
      let maxCode = 0;
      if (codes.dataType === 'int8' || codes.dataType === 'int4') maxCode = widestChannelSpan(codes, node);
      else for (let i = 0; i < elements; i++) maxCode = Math.max(maxCode, Number(codes.data[i]));
      const bits = BITS[codes.dataType] ?? 32;
      weights.push({ node: node.name, dataType: codes.dataType, elements, maxCode, bytes: Math.ceil((elements * bits) / 8) });
    } else if (node.opType === 'QuantizeLinear') {
      const clip = producer.get(node.inputs[0]!);
      const codeType = model.initializers.get(node.inputs[2] ?? '')?.dataType ?? 'uint8';
      let bits = BITS[codeType] ?? 8;
      let value = node.inputs[0]!;
      const scale = scalar(model, node.inputs[1]);
      if (clip?.opType === 'Clip' && scale !== undefined) {
        const lo = scalar(model, clip.inputs[1]), hi = scalar(model, clip.inputs[2]);
        if (lo !== undefined && hi !== undefined) {
          bits = Math.round(Math.log2((hi - lo) / scale + 1));
          value = clip.inputs[0]!;
        }
      }
      acts.push({ value, bits });
    }
  }
  return { weights, floatWeights, acts };
}
