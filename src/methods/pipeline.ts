/** `pdquant quantize` end to end: load, calibrate, quantize with a method, evaluate, record. */
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import * as E from '../engine/index.js';
import { loadModel, inputChw, type LoadedModel } from '../graph/load.js';
import { QuantizedModel } from '../quant/qmodel.js';
import { loadCalibration } from '../quant/calibration.js';
import { evaluateGraph, type Accuracy } from '../eval/index.js';
import { openDataset, type Transform } from '../data/index.js';
import { method } from './registry.js';
import { DEFAULTS, type ReconConfig } from '../recon/config.js';
import { reconstruct, type ReconEvents, type UnitRecord } from '../recon/run.js';

export interface QuantizeOptions {
  model: string;
  calib: string;
  method: string;
  wBits: number;
  aBits: number;
  numSamples: number;
  seed: number;
  transform: Transform;
  eightBitHeadStem: boolean;
  eval?: string;
  evalLimit?: number;
  /** Evaluation batch size. */
  evalBatch: number;
  /** Reconstruction hyper-parameters (defaults: PDQUANT.md §6). */
  recon?: Partial<ReconConfig>;
  runDir?: string;
  resume?: boolean;
}

export interface RunEvents extends ReconEvents {
  stage?(name: string): void;
  evalProgress?(what: string, done: number, total: number): void;
}

export interface RunRecord {
  tool: { name: 'pdquant'; version: string; torch: string; node: string; threads: number };
  model: { path: string; sha256: string };
  method: string;
  w_bits: number;
  a_bits: number;
  eight_bit_head_stem: boolean;
  seed: number;
  calibration: { source: string; count: number; sha256: string };
  top1?: number;
  top5?: number;
  fp_top1?: number;
  fp_top5?: number;
  n?: number;
  seconds: Record<string, number>;
  started: string;
  recon?: { config: ReconConfig; units: UnitRecord[] };
  peak_rss_mb: number;
}

export interface QuantizeResult {
  record: RunRecord;
  loaded: LoadedModel;
  qmodel: QuantizedModel;
}

export async function quantize(o: QuantizeOptions, version: string, ev: RunEvents = {}): Promise<QuantizeResult> {
  const preset = method(o.method);
  const seconds: Record<string, number> = {};
  const timed = async <T>(name: string, fn: () => Promise<T> | T): Promise<T> => {
    events.stage?.(name);
    const t0 = performance.now();
    const r = await fn();
    seconds[name] = (performance.now() - t0) / 1000;
    return r;
  };
  const started = new Date().toISOString();
  const modelHash = createHash('sha256').update(readFileSync(o.model)).digest('hex');
  // The loops are synchronous, so memory is sampled from their callbacks rather than a timer.
  let peak = process.memoryUsage().rss;
  const sample = () => (peak = Math.max(peak, process.memoryUsage().rss));
  const events: RunEvents = {
    ...ev,
    stage: (name) => (sample(), ev.stage?.(name)),
    iteration: (u, k, it, p) => {
      if (it % 50 === 0) sample();
      ev.iteration?.(u, k, it, p);
    },
  };
  E.manualSeed(o.seed);
  const loaded = await timed('load', () => loadModel(o.model));
  const calib = await timed('calibration data', () => loadCalibration(o.calib, o.numSamples, o.transform, o.seed));
  const chw = inputChw(loaded.folded);
  const got = calib.images.shape.slice(1);
  if (chw.some((d, i) => d !== null && d !== got[i]))
    throw new Error(`The model expects input [N, ${chw.map((d) => d ?? '?').join(', ')}] but the calibration images are [N, ${got.join(', ')}]; choose the matching --preset`);

  const qmodel = new QuantizedModel(loaded.folded, loaded.units, { wBits: o.wBits, aBits: o.aBits, eightBitHeadStem: o.eightBitHeadStem });
  await timed('weight init', () => qmodel.initWeights(preset.init));
  if (preset.recon === null) {
    await timed('activation init', () => {
      const first = E.tidy(() => calib.images.slice(0, 0, Math.min(256, calib.count)));
      qmodel.initActs(first, preset.init);
      first.dispose();
    });
  }
  let units: UnitRecord[] | undefined;
  const cfg: ReconConfig = { ...DEFAULTS, ...o.recon };
  if (preset.recon !== null) {
    const recon = preset.recon;
    units = await timed('reconstruction', () =>
      reconstruct(
        {
          loaded, qmodel, images: calib.images, preset: recon, cfg, seed: o.seed, runDir: o.runDir, resume: o.resume,
          fingerprint: { model: modelHash, method: o.method, w: o.wBits, a: o.aBits, seed: o.seed, calib: calib.hash, head8: o.eightBitHeadStem, cfg },
        },
        events,
      ),
    );
  }
  calib.images.dispose();

  const record: RunRecord = {
    tool: { name: 'pdquant', version, torch: E.engineInfo().torch, node: process.version, threads: E.engineInfo().threads },
    model: { path: o.model, sha256: modelHash },
    method: o.method,
    w_bits: o.wBits,
    a_bits: o.aBits,
    eight_bit_head_stem: o.eightBitHeadStem,
    seed: o.seed,
    calibration: { source: calib.source, count: calib.count, sha256: calib.hash },
    seconds,
    started,
    ...(units ? { recon: { config: cfg, units } } : {}),
    peak_rss_mb: 0,
  };
  if (o.eval) {
    const ds = await openDataset(o.eval);
    const common = { transform: o.transform, batchSize: o.evalBatch, limit: o.evalLimit };
    const fp: Accuracy = await timed('fp eval', () => evaluateGraph(loaded.fp, ds, { ...common, onProgress: (d, t) => ev.evalProgress?.('FP', d, t) }));
    const q: Accuracy = await timed('quantized eval', () =>
      evaluateGraph(loaded.folded, ds, { ...common, hooks: qmodel.hooks({ weights: true, acts: true }), onProgress: (d, t) => ev.evalProgress?.('quantized', d, t) }),
    );
    Object.assign(record, { top1: q.top1, top5: q.top5, fp_top1: fp.top1, fp_top5: fp.top5, n: q.n });
  }
  sample();
  record.peak_rss_mb = Math.round(peak / 2 ** 20);
  return { record, loaded, qmodel };
}
