/** Checks that an exported QDQ file computes in onnxruntime what the simulation computes on our engine. */
import * as E from '../engine/index.js';
import { execute } from '../graph/index.js';
import type { OnnxModel } from '../onnx/ir.js';
import { encodeOnnx } from '../onnx/write.js';
import type { QuantizedModel } from '../quant/qmodel.js';
import { openOrt, runOrt } from './ort.js';

export interface LogitComparison {
  maxLogitDiff: number;
  maxLogit: number;
  /** Share of samples whose top-1 class is the same in both. */
  agreement: number;
}

export interface Divergence {
  value: string;
  maxDiff: number;
  /** Largest |value| there, for scale. */
  maxAbs: number;
}

async function runOnOrt(bytes: Uint8Array, x: E.Tensor, outputs?: string[]): Promise<Record<string, Float32Array>> {
  const session = await openOrt(bytes);
  try {
    const out = await runOrt(session, x.data() as Float32Array, x.shape, outputs);
    return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, t.data]));
  } finally {
    await session.release();
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Logits of the simulation and of the exported bytes on the same batch. */
export async function compareLogits(qmodel: QuantizedModel, bytes: Uint8Array, x: E.Tensor): Promise<LogitComparison> {
  const sim = E.noGrad(() => qmodel.forward(x, { weights: true, acts: true }));
  const classes = sim.shape[1]!;
  const a = sim.data() as Float32Array;
  sim.dispose();
  const b = Object.values(await runOnOrt(bytes, x))[0]!;
  let agree = 0;
  const n = a.length / classes;
  const argmax = (v: Float32Array, i: number) => {
    let best = 0;
    for (let c = 1; c < classes; c++) if (v[i * classes + c]! > v[i * classes + best]!) best = c;
    return best;
  };
  for (let i = 0; i < n; i++) if (argmax(a, i) === argmax(b, i)) agree++;
  return { maxLogitDiff: maxAbsDiff(a, b), maxLogit: a.reduce((m, v) => Math.max(m, Math.abs(v)), 0), agreement: agree / n };
}

/**
 * The first activation quantizer (in network order) whose output differs between the simulation and
 * onnxruntime by more than `tol` × its largest value, found by exposing every DequantizeLinear output.
 */
export async function firstDivergence(qmodel: QuantizedModel, qdq: OnnxModel, x: E.Tensor, tol = 1e-4): Promise<Divergence | null> {
  const values = qmodel.placement.acts.map((a) => a.value);
  const probe: OnnxModel = { ...qdq, outputs: [...qdq.outputs, ...values.map((v) => ({ name: `${v}_dq`, elemType: 'float32' as const, dims: null }))] };
  const ort = await runOnOrt(encodeOnnx(probe), x, values.map((v) => `${v}_dq`));
  const g = qmodel.graph;
  // tidy keeps arrays (not Maps) of results.
  const sim = E.noGrad(() =>
    E.tidy(() => {
      const out = execute(g, { feeds: new Map([[g.input.name, x]]), outputs: values, hooks: qmodel.hooks({ weights: true, acts: true }) });
      return values.map((v) => out.get(v)!);
    }),
  );
  try {
    for (const [k, v] of values.entries()) {
      const a = sim[k]!.contiguous();
      const s = a.data() as Float32Array;
      a.dispose();
      const o = ort[`${v}_dq`]!;
      const maxAbs = s.reduce((m, t) => Math.max(m, Math.abs(t)), 0);
      const d = maxAbsDiff(s, o);
      if (d > tol * Math.max(maxAbs, 1e-6)) return { value: v, maxDiff: d, maxAbs };
    }
    return null;
  } finally {
    E.dispose(sim);
  }
}
