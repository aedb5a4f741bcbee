/** `pdquant quantize` end to end: load, calibrate, quantize with a method, evaluate, record. */
import { readFileSync, renameSync } from 'node:fs';
import { totalmem } from 'node:os';
import { createHash } from 'node:crypto';
import * as E from '../engine/index.js';
import { loadModel, inputChw, type LoadedModel } from '../graph/load.js';
import { KEEP_BN_EXPORT } from '../graph/fold-bn.js';
import type { UnitOverride } from '../graph/index.js';
import { QuantizedModel } from '../quant/qmodel.js';
import type { BitRule } from '../quant/placement.js';
import { loadCalibration } from '../quant/calibration.js';
import { checkEvalData, checkInputShape, evaluateGraph, evaluateOrt, type Accuracy } from '../eval/index.js';
import { checkLayerwise, checkWeights, compareLogits, exportVerdict, layerwiseProbe, top1Verdict } from '../eval/verify.js';
import { loadOrt, ortKernelCounts, type OrtKernelCounts } from '../eval/ort.js';
import { qdqSpec, qdqModel, unverifiedPath, writeQdq } from './export.js';
import { withDeclaredBatch } from '../onnx/batch.js';
import { freeImageDims, imageChannels, type ImageShape } from '../onnx/image-input.js';
import { readOnnx } from '../onnx/read.js';
import { summarizeQdq } from '../onnx/qdq-summary.js';
import type { OnnxModel } from '../onnx/ir.js';
import { withChannelsLast, withoutChannelsLast } from '../onnx/channels-last.js';
import { withHead } from '../onnx/head.js';
import { encodeOnnx } from '../onnx/write.js';
import { firstSampleShape, openDataset, transformToMetadata, type Transform } from '../data/index.js';
import { method } from './registry.js';
import { DEFAULTS, type ReconConfig } from '../recon/config.js';
import { checkResumable, readCheckpoint, reconstruct, reconUnits, type ReconEvents, type UnitRecord } from '../recon/run.js';
import { cacheMemoryWarning, largestUnitCache } from './memory.js';
import { machineInfo, type MachineInfo } from '../util/machine.js';

export interface QuantizeOptions {
  model: string;
  /** The model as readOnnx gave it, when the caller has read it already (read once, not twice). */
  read?: OnnxModel;
  calib: string;
  method: string;
  wBits: number;
  aBits: number;
  numSamples: number;
  seed: number;
  transform: Transform;
  eightBitHeadStem: boolean;
  /** Other bit-widths for the layers they match, applied in order after the defaults. */
  bitRules?: BitRule[];
  /** Quantizers and grids for onnxruntime's integer kernels (QuantizedModel's int8Kernels). */
  int8Kernels?: boolean;
  eval?: string;
  evalLimit?: number;
  /** Evaluation batch size. */
  evalBatch: number;
  /** Reconstruction hyper-parameters (defaults: PDQUANT.md §6). */
  recon?: Partial<ReconConfig>;
  runDir?: string;
  resume?: boolean;
  /** While a unit runs, save its progress in runDir this often (seconds; default 600). */
  unitCheckpointSeconds?: number;
  /** Write the deployable QDQ ONNX model here. */
  output?: string;
  /** Weight codes of ≤ 4 bits as packed UINT4 (opset 21). */
  int4Storage?: boolean;
  /** Check the exported file in onnxruntime against the simulation (default true). */
  verify?: boolean;
  /** Overrides the grouping into reconstruction units. */
  units?: UnitOverride;
  /** The memory the run may use, for the warning that its caches will not fit (default: the machine's, os.totalmem()). */
  memoryBytes?: number;
}

export interface RunEvents extends ReconEvents {
  stage?(name: string): void;
  /** Something allowed but probably a mistake, found before the long work starts. */
  warning?(message: string): void;
  evalProgress?(what: string, done: number, total: number): void;
}

export interface RunRecord {
  /** blas: the BLAS LibTorch was built with (absent in records written before it was recorded). */
  tool: { name: 'pdquant'; version: string; torch: string; node: string; threads: number; blas?: string };
  /** The CPU the run ran on (absent in records written before it was recorded): times and float sums depend on it. */
  machine?: MachineInfo;
  model: { path: string; sha256: string };
  method: string;
  w_bits: number;
  a_bits: number;
  eight_bit_head_stem: boolean;
  /** Present when some layers have other bit-widths. */
  bit_rules?: BitRule[];
  int8_kernels?: boolean;
  seed: number;
  calibration: { source: string; count: number; sha256: string };
  /** Resize, crop, mean and std applied to the images (absent when all data were model-ready .npy tensors). */
  preprocess?: Transform;
  top1?: number;
  top5?: number;
  fp_top1?: number;
  fp_top5?: number;
  n?: number;
  seconds: Record<string, number>;
  started: string;
  /** skipped: units left out, with nothing to learn (float weights and no activation step the method learns). */
  recon?: { config: ReconConfig; units: UnitRecord[]; skipped?: string[] };
  /** The process's peak resident memory (getrusage high-water mark) up to the end of the run. */
  peak_rss_mb: number;
  export?: { path: string; int4_storage: boolean; max_logit_diff?: number; max_logit?: number; agreement?: number; ort_top1?: number; integer_kernels?: OrtKernelCounts;
    /**
     * With int8Kernels: weight tensors whose codes go past ±SATURATION_SAFE_CODE (8-bit layers), written as UINT8 for
     * onnxruntime's U8U8 kernels (exact everywhere, slower than U8S8 on CPUs without VNNI), of all weight tensors.
     */
    uint8_weights?: { layers: number; of: number };
    /** The layer-by-layer check: each activation quantizer from onnxruntime's inputs (see checkLayerwise). */
    layerwise?: {
      quantizers: number; values: number; rounding_flips: number; max_logit_diff: number; failed_at: string | null;
      /** Weight layers whose weights and biases in the file were compared with the simulation's, exactly; the first that differs. */
      weight_layers: number; weights_failed_at: string | null;
      /** Whether it ran the integer kernels the file runs (always, without int8Kernels). */
      same_kernels: boolean;
    } };
}

export interface QuantizeResult {
  record: RunRecord;
  loaded: LoadedModel;
  qmodel: QuantizedModel;
}

/**
 * Reads and loads the model to calibrate; one that leaves its image size free is sized by the first calibration image
 * after preprocessing (and says so through `warn`, as it says that a float16 model is read as float32).
 */
export async function loadForCalibration(
  o: { model: string; read?: OnnxModel; calib: string; transform: Transform; units?: UnitOverride },
  warn?: (message: string) => void,
): Promise<{ onnx: OnnxModel; loaded: LoadedModel }> {
  const onnx = o.read ?? readOnnx(o.model);
  if (onnx.readFromFloat16) {
    warn?.(`${o.model} is a float16 model: pdquant reads it as float32 (which holds every float16 value exactly) and computes ` +
      'in float32, so its FP top-1 can differ a little from the float16 model\'s, and the quantized model it writes takes and ' +
      'gives float32');
  }
  const nchw = withoutChannelsLast(onnx);
  const free = freeImageDims(nchw);
  let imageShape: ImageShape | undefined;
  if (free.length > 0) {
    const chw = await firstSampleShape(await openDataset(o.calib, { unlabeled: true, channels: imageChannels(nchw) }), o.transform);
    imageShape = { chw, source: `the calibration images (${o.calib})` };
    warn?.(`${o.model} leaves ${free.map((d) => d.name).join(', ')} of its input free: quantized at the size of the calibration images, ` +
      `[${chw.join(', ')}], which the exported model takes`);
  }
  return { onnx, loaded: loadModel(onnx, { units: o.units, imageShape }) };
}

export async function quantize(o: QuantizeOptions, version: string, ev: RunEvents = {}): Promise<QuantizeResult> {
  const preset = method(o.method);
  if (o.resume) checkResumable(o.method, preset.recon ? o.runDir : undefined);
  // The export check runs the written file in onnxruntime: a broken install must stop the run now, not after hours.
  if (o.output && o.verify !== false) {
    await loadOrt().catch((e: Error) => {
      throw new Error(`${e.message}. The export check runs the quantized file in it; --no-verify writes the file unchecked`);
    });
  }
  const seconds: Record<string, number> = {};
  const timed = async <T>(name: string, fn: () => Promise<T> | T): Promise<T> => {
    ev.stage?.(name);
    const t0 = performance.now();
    const r = await fn();
    seconds[name] = (performance.now() - t0) / 1000;
    return r;
  };
  const started = new Date().toISOString();
  E.manualSeed(o.seed);
  const { onnx, loaded } = await timed('load', () => loadForCalibration(o, ev.warning));
  const channels = imageChannels(loaded.onnx);
  // The weights may sit in external data files beside the .onnx; a resumed run must see the same ones.
  const modelHash = (onnx.files ?? [o.model]).reduce((h, f) => h.update(readFileSync(f)), createHash('sha256')).digest('hex');
  if (preset.recon?.dc && loaded.bn.size === 0)
    ev.warning?.(`${o.model} has no BatchNormalization nodes (exporters fold them into the convolutions by default), so ` +
      `${o.method}'s distribution correction has no statistics to match and is skipped. To keep them, export with ${KEEP_BN_EXPORT}`);
  // Bad evaluation data must stop the run now, not after hours of reconstruction.
  const evalData = o.eval === undefined ? undefined : await openDataset(o.eval, { channels });
  if (evalData) for (const w of await checkEvalData(loaded.fp, evalData, o.transform, o.evalLimit)) ev.warning?.(w);
  const calib = await timed('calibration data', () => loadCalibration(o.calib, o.numSamples, o.transform, o.seed, channels, (m) => ev.warning?.(m)));
  checkInputShape(inputChw(loaded.folded), calib.images.shape.slice(1), 'the calibration images are', calib.preprocessed);
  if (preset.recon) {
    const tooBig = cacheMemoryWarning(largestUnitCache(reconUnits(loaded, preset.recon), loaded.folded.model), calib.count, o.memoryBytes ?? totalmem());
    if (tooBig) ev.warning?.(tooBig);
  }

  const bitRules = o.bitRules ?? [];
  const qmodel = new QuantizedModel(loaded.folded, loaded.units, { wBits: o.wBits, aBits: o.aBits, eightBitHeadStem: o.eightBitHeadStem, bitRules, int8Kernels: !!o.int8Kernels });
  await timed('weight init', () => qmodel.initWeights(preset.init));
  if (preset.recon === null) {
    await timed('activation init', () => qmodel.initActs(calib.images, preset.init, 256));
  }
  let units: UnitRecord[] | undefined;
  const skipped: string[] = [];
  const cfg: ReconConfig = { ...DEFAULTS, ...o.recon };
  if (preset.recon !== null) {
    const recon = preset.recon;
    // The calibration hash covers the preprocessed tensor, so other preprocessing or images refuse to resume.
    const fingerprint = {
      model: modelHash, method: o.method, w: o.wBits, a: o.aBits, seed: o.seed, calib: calib.hash, head8: o.eightBitHeadStem, cfg,
      units: loaded.units.map((u) => `${u.name}:${u.nodes.length}`),
      ...(bitRules.length ? { bits: bitRules } : {}),
      ...(o.int8Kernels ? { int8Kernels: true } : {}),
    };
    const prior = o.runDir && !o.resume ? readCheckpoint(o.runDir, fingerprint) : null;
    if (prior && prior.differing.length === 0 && prior.checkpoint.done.length > 0)
      ev.warning?.(`${o.runDir} holds ${prior.checkpoint.done.length} finished unit(s) of this same run, which this run does again and overwrites; ` +
        `to continue from them instead, run the same command with --resume ${o.runDir}`);
    units = await timed('reconstruction', () =>
      reconstruct({ loaded, qmodel, images: calib.images, preset: recon, cfg, seed: o.seed, runDir: o.runDir, resume: o.resume, fingerprint, unitCheckpointSeconds: o.unitCheckpointSeconds }, {
        ...ev,
        unitsSkipped: (left) => {
          skipped.push(...left.map((u) => u.name));
          ev.unitsSkipped?.(left);
        },
      }),
    );
  }
  // Kept for verifying the export after the calibration cache is gone.
  const probe = E.keep(E.tidy(() => calib.images.slice(0, 0, Math.min(64, calib.count)).clone()));
  calib.images.dispose();

  const engine = E.engineInfo();
  const record: RunRecord = {
    tool: { name: 'pdquant', version, torch: engine.torch, node: process.version, threads: engine.threads, blas: engine.blas },
    machine: machineInfo(),
    model: { path: o.model, sha256: modelHash },
    method: o.method,
    w_bits: o.wBits,
    a_bits: o.aBits,
    eight_bit_head_stem: o.eightBitHeadStem,
    ...(bitRules.length ? { bit_rules: bitRules } : {}),
    ...(o.int8Kernels ? { int8_kernels: true } : {}),
    seed: o.seed,
    calibration: { source: calib.source, count: calib.count, sha256: calib.hash },
    // Model-ready tensors (.npy) carry the user's own preprocessing, which pdquant does not know.
    ...(calib.preprocessed && (evalData === undefined || evalData.preprocessed) ? {} : { preprocess: o.transform }),
    seconds,
    started,
    ...(units ? { recon: { config: cfg, units, ...(skipped.length ? { skipped } : {}) } } : {}),
    peak_rss_mb: 0,
  };
  if (evalData) {
    const common = { transform: o.transform, batchSize: o.evalBatch, limit: o.evalLimit };
    const fp: Accuracy = await timed('fp eval', () => evaluateGraph(loaded.fp, evalData, { ...common, onProgress: (d, t) => ev.evalProgress?.('FP', d, t) }));
    const q: Accuracy = await timed('quantized eval', () =>
      evaluateGraph(loaded.folded, evalData, { ...common, hooks: qmodel.hooks({ weights: true, acts: true }), onProgress: (d, t) => ev.evalProgress?.('quantized', d, t) }),
    );
    Object.assign(record, { top1: q.top1, top5: q.top5, fp_top1: fp.top1, fp_top5: fp.top5, n: q.n });
  }
  if (o.output) {
    const output = o.output;
    const metadata = {
      'pdquant.version': version, 'pdquant.method': o.method, 'pdquant.w_bits': String(o.wBits), 'pdquant.a_bits': String(o.aBits),
      ...(bitRules.length ? { 'pdquant.bit_rules': bitRules.map((r) => `${r.match}=${r.wBits}/${r.aBits}`).join(' ') } : {}),
      ...(o.int8Kernels ? { 'pdquant.int8_kernels': 'true' } : {}),
      'pdquant.calibration_sha256': calib.hash, 'pdquant.calibration_count': String(calib.count), 'pdquant.seed': String(o.seed),
      // The preprocessing travels with the model, so `pdquant eval model.q.onnx` applies it without flags.
      ...(calib.preprocessed ? {} : transformToMetadata(o.transform)),
    };
    // The file keeps the interface of the model it came from: a fixed batch size, a final Softmax, a channels-last input. What is checked
    // against the simulation is the same model up to the logits.
    const body = await timed('export', () => withDeclaredBatch(qdqModel(loaded.folded.model, qdqSpec(qmodel, metadata, o.int4Storage)), loaded.declaredBatch));
    const deployed = withHead(body, loaded.head);
    // A file that fails the check never sits at the output path: it is written beside it and moved there once it passes.
    const verify = o.verify !== false;
    const written = verify ? unverifiedPath(output) : output;
    const file = writeQdq(withDeclaredBatch(loaded.channelsLast ? withChannelsLast(deployed) : deployed, loaded.declaredBatch), written);
    const bytes = loaded.head || loaded.channelsLast ? encodeOnnx(body) : file;
    record.export = { path: output, int4_storage: !!o.int4Storage };
    if (o.int8Kernels) {
      const weights = summarizeQdq(body)?.weights ?? [];
      record.export.uint8_weights = { layers: weights.filter((w) => w.dataType === 'uint8').length, of: weights.length };
    }
    if (verify) {
      await timed('verify', async () => {
        const cmp = await compareLogits(qmodel, bytes, probe);
        const layers = await checkLayerwise(qmodel, body, probe);
        const weights = checkWeights(qmodel, body);
        // With integer kernels, whether the layer-by-layer check ran the ones the file runs (see exportVerdict).
        let sameKernels = true;
        if (o.int8Kernels) {
          const k = (record.export!.integer_kernels = await ortKernelCounts(file));
          const checked = await ortKernelCounts(encodeOnnx(layerwiseProbe(qmodel, body)));
          sameKernels = checked.integerConvs === k.integerConvs && checked.integerAdds === k.integerAdds && checked.integerLinears === k.integerLinears;
          if (k.integerConvs < k.convs || k.integerAdds < k.adds)
            ev.warning?.(`onnxruntime runs ${k.convs - k.integerConvs} of ${k.convs} convolutions and ${k.adds - k.integerAdds} of ${k.adds} residual additions of ${output} in float, not with integer kernels (a pattern it does not fuse, e.g. an activation it folds into a float op)`);
        }
        Object.assign(record.export!, {
          max_logit_diff: cmp.maxLogitDiff, max_logit: cmp.maxLogit, agreement: cmp.agreement,
          layerwise: {
            quantizers: layers.quantizers.length, values: layers.values, rounding_flips: layers.flips, max_logit_diff: layers.maxLogitDiff,
            failed_at: layers.failed?.value ?? null, weight_layers: weights.layers, weights_failed_at: weights.failed?.node ?? null, same_kernels: sameKernels,
          },
        });
        const { problems, warning } = exportVerdict(cmp, layers, probe.shape[0]!, sameKernels, weights);
        if (warning) ev.warning?.(warning);
        if (evalData && record.top1 !== undefined) {
          const acc = await evaluateOrt(written, evalData, { transform: o.transform, batchSize: o.evalBatch, limit: o.evalLimit, onProgress: (d, t) => ev.evalProgress?.('onnxruntime', d, t) });
          record.export!.ort_top1 = acc.top1;
          const top1 = top1Verdict(acc.top1, record.top1, layers, sameKernels, weights);
          if (top1.problem) problems.push(top1.problem);
          if (top1.warning) ev.warning?.(top1.warning);
        }
        if (problems.length) {
          const resume = preset.recon && o.runDir ? ` (add --resume ${o.runDir} to skip the finished units)` : '';
          throw new Error(`The exported model does not compute what the simulation computes: ${problems.join('; ')}. ` +
            `The file is left as ${written}, not written to ${output}. If you accept the difference, ` +
            `the same command with --no-verify writes it unchecked${resume}.`);
        }
        renameSync(written, output);
      });
    }
  }
  probe.dispose();
  // The operating system's high-water mark (getrusage), which sees the peaks inside caching and DC that sampling
  // between iterations missed (torchvision resnet18, 1024 images: 14.3 GB, where sampling gave 2.7 GB). It covers the process,
  // so for several runs in one process it is the peak up to the end of this one.
  record.peak_rss_mb = Math.round(process.resourceUsage().maxRSS / 1024);
  return { record, loaded, qmodel };
}
