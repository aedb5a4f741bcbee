/**
 * Float32 batches through onnxruntime-node (as float16 where the model takes that), cut to the batch size a model
 * fixes when its file fixes one.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { InferenceSession } from 'onnxruntime-node';
import type { OnnxModel } from '../onnx/ir.js';
import { readOnnx } from '../onnx/read.js';
import { float32ToHalves, halvesToFloat32 } from '../onnx/half.js';

export interface OrtOutput {
  dims: number[];
  data: Float32Array;
}

type Ort = typeof import('onnxruntime-node');

/**
 * onnxruntime-node, or one clear error when it cannot load (its native binding missing or built for another system),
 * instead of Node's multi-line "Cannot find module" with its require stack. `load` is for tests.
 */
export async function loadOrt(load: () => Promise<Ort> = () => import('onnxruntime-node')): Promise<Ort> {
  try {
    return await load();
  } catch (e) {
    const why = (e instanceof Error ? e.message : String(e)).split('\n')[0];
    throw new Error(`onnxruntime-node cannot be loaded (${why}); reinstall the npm packages (npm ci, or bash scripts/setup.sh)`);
  }
}

/** An onnxruntime session on a file (so external data next to it is found) or on bytes; `options` add to the defaults. */
export async function openOrt(model: string | Uint8Array, options: InferenceSession.SessionOptions = {}): Promise<InferenceSession> {
  const ort = await loadOrt();
  const o = { logSeverityLevel: 3 as const, ...options };
  return typeof model === 'string' ? ort.InferenceSession.create(model, o) : ort.InferenceSession.create(model, o);
}

/** The batch size the session's first input fixes, or null when its batch dim is symbolic. */
function fixedBatch(session: InferenceSession): number | null {
  const meta = session.inputMetadata[0];
  const d = meta?.isTensor ? meta.shape[0] : undefined;
  return typeof d === 'number' ? d : null;
}

/** Whether the session's first input takes an [n, C, H, W] batch as [n, H, W, C]: its declared dims fit only that order. */
function wantsChannelsLast(session: InferenceSession, shape: readonly number[]): boolean {
  const meta = session.inputMetadata[0];
  if (!meta?.isTensor || meta.shape.length !== 4 || shape.length !== 4) return false;
  const fits = (s: readonly number[]) => meta.shape.every((d, i) => i === 0 || typeof d !== 'number' || d === s[i]);
  return !fits(shape) && fits([shape[0]!, shape[2]!, shape[3]!, shape[1]!]);
}

/** Whether the session's first input is float16 (a float16 model that kept no float32 input). */
function wantsFloat16(session: InferenceSession): boolean {
  const meta = session.inputMetadata[0];
  return meta?.isTensor === true && meta.type === 'float16';
}

/** An [n, C, H, W] batch in [n, H, W, C] order. */
function toChannelsLast(x: Float32Array, [n, c, h, w]: readonly number[]): Float32Array {
  const out = new Float32Array(x.length);
  const hw = h! * w!;
  for (let b = 0; b < n!; b++)
    for (let k = 0; k < c!; k++) {
      const from = (b * c! + k) * hw;
      for (let p = 0; p < hw; p++) out[(b * hw + p) * c! + k] = x[from + p]!;
    }
  return out;
}

/**
 * Runs a batch [n, ...] through the session's first input and returns the wanted outputs (default: all) as float32.
 * A model fixed to batch b gets the samples b at a time, the last group padded with zeros and the padding dropped.
 * A model whose input is channels-last (tf2onnx) gets the NCHW batch transposed to it; one whose input is float16
 * gets the batch rounded to float16, and float16 outputs come back as float32.
 */
export async function runOrt(session: InferenceSession, nchw: Float32Array, nchwShape: readonly number[], outputs?: string[]): Promise<Record<string, OrtOutput>> {
  const ort = await loadOrt();
  const last = wantsChannelsLast(session, nchwShape);
  const half = wantsFloat16(session);
  const x = last ? toChannelsLast(nchw, nchwShape) : nchw;
  const shape = last ? [nchwShape[0]!, nchwShape[2]!, nchwShape[3]!, nchwShape[1]!] : nchwShape;
  const n = shape[0]!;
  const b = fixedBatch(session) ?? n;
  const sample = x.length / n;
  const names = outputs ?? [...session.outputNames];
  const parts: Record<string, Float32Array[]> = Object.fromEntries(names.map((k) => [k, []]));
  const rest: Record<string, number[]> = {};
  for (let start = 0; start < n; start += b) {
    const take = Math.min(b, n - start);
    const chunk = new Float32Array(b * sample);
    chunk.set(x.subarray(start * sample, (start + take) * sample));
    const dims = [b, ...shape.slice(1)];
    const input = half ? new ort.Tensor('float16', float32ToHalves(chunk), dims) : new ort.Tensor('float32', chunk, dims);
    const out = await session.run({ [session.inputNames[0]!]: input }, names);
    for (const k of names) {
      const t = out[k]!;
      const data = t.type === 'float16' ? halvesToFloat32(t.data as Uint16Array) : (t.data as Float32Array);
      const per = data.length / b;
      rest[k] = [...t.dims.slice(1)];
      parts[k]!.push(take === b ? data : data.subarray(0, take * per));
    }
  }
  return Object.fromEntries(names.map((k) => {
    const chunks = parts[k]!;
    const data = chunks.length === 1 ? chunks[0]! : new Float32Array(chunks.reduce((s, c) => s + c.length, 0));
    if (chunks.length > 1) chunks.reduce((off, c) => (data.set(c, off), off + c.length), 0);
    return [k, { dims: [n, ...rest[k]!], data }];
  }));
}

/** How onnxruntime runs a model's convolutions and additions after its own graph optimizations. */
export interface OrtKernelCounts {
  /** Convolutions run as QLinearConv, and all convolutions. */
  integerConvs: number;
  convs: number;
  /** Additions of two computed values (residual additions) run as QLinearAdd, and all of them. */
  integerAdds: number;
  adds: number;
  /** Linear layers (Gemm, MatMul) run with integer kernels (QGemm, MatMulIntegerToFloat, ...), and all of them. */
  integerLinears: number;
  linears: number;
}

/** The graph onnxruntime-node runs for a model after its default graph optimizations (the fused kernels it chose). */
export async function ortOptimizedModel(model: string | Uint8Array): Promise<OnnxModel> {
  const dir = mkdtempSync(join(tmpdir(), 'pdquant-ort-'));
  try {
    const optimized = join(dir, 'optimized.onnx');
    await (await openOrt(model, { optimizedModelFilePath: optimized })).release();
    return readOnnx(optimized);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Counts, in the graph onnxruntime-node makes of the model with its default optimizations, the convolutions, residual
 * additions and linear layers it runs with integer kernels (QLinearConv, QLinearAdd, QGemm, ...) and those it runs
 * in float.
 */
export async function ortKernelCounts(model: Uint8Array): Promise<OrtKernelCounts> {
  const m = await ortOptimizedModel(model);
  const count = (ops: string[]) => m.nodes.filter((n) => ops.includes(n.opType)).length;
  const floatAdds = m.nodes.filter((n) => n.opType === 'Add' && n.inputs.every((i) => !m.initializers.has(i))).length;
  const integerConvs = count(['QLinearConv']);
  const integerAdds = count(['QLinearAdd']);
  const integerLinears = count(['QGemm', 'MatMulIntegerToFloat', 'QLinearMatMul', 'MatMulInteger']);
  return {
    integerConvs, convs: integerConvs + count(['Conv', 'FusedConv', 'NhwcFusedConv', 'ConvInteger']),
    integerAdds, adds: integerAdds + floatAdds,
    integerLinears, linears: integerLinears + count(['Gemm', 'MatMul', 'FusedGemm', 'FusedMatMul']),
  };
}
