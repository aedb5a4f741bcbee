// pdquant as a library: quantize and evaluate from a Node program with the defaults and checks of the command line
// (which is a thin layer over these two functions).
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { openDataset, firstSampleShape, transformFor, type PreprocessOptions, type Transform } from './data/index.js';
import type { OnnxModel } from './onnx/ir.js';
import { checkEvalData, evaluateGraph, evaluateOrt, type Accuracy } from './eval/index.js';
import { inputChw, loadModel, modelIo } from './graph/load.js';
import { withoutChannelsLast } from './onnx/channels-last.js';
import { freeImageDims, imageChannels } from './onnx/image-input.js';
import { isQdq } from './onnx/qdq-summary.js';
import { readOnnx } from './onnx/read.js';
import { quantize, type RunEvents, type RunRecord } from './methods/pipeline.js';
import { analyze, type SensitivityEvents, type SensitivityReport } from './methods/sensitivity.js';
import { method } from './methods/registry.js';
import { ARCH_PRESETS, type ReconConfig } from './recon/config.js';
import type { UnitOverride } from './graph/partition.js';
import type { QParamsFile } from './quant/qmodel.js';
import { FLOAT_BITS, isBitWidth, quantizesNothing, type BitRule } from './quant/placement.js';
import { outputFileProblem, outputFolderProblem } from './util/output-paths.js';

export type { Accuracy } from './eval/index.js';
export type { ImageSize, PreprocessOptions, Transform } from './data/index.js';
export type { RunEvents, RunRecord } from './methods/pipeline.js';
export type { Divergence, SensitivityEvents, SensitivityReport, UnitSensitivity } from './methods/sensitivity.js';
export type { ReconConfig } from './recon/config.js';
export type { QParamsFile } from './quant/qmodel.js';
export type { UnitOverride } from './graph/partition.js';
export { FLOAT_ACTIVATIONS, FLOAT_WEIGHTS, type BitRule } from './quant/placement.js';
export { ARCH_PRESETS } from './recon/config.js';
export { methodNames } from './methods/registry.js';
export { OnnxError } from './onnx/errors.js';
export { DataError } from './data/errors.js';
export { readRunRecord, renderReport, writeReport } from './report/index.js';

/** This package's version (what run records and exported models name). */
export const VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** The engine's device: cpu, cuda or cuda:N (default: $PDQUANT_DEVICE, else cpu). */
async function useDevice(device: string | undefined): Promise<void> {
  (await import('./engine/index.js')).selectDeviceOrEnv(device, 'device');
}

export interface QuantizeModelOptions extends PreprocessOptions {
  /** The float ONNX model. */
  model: string;
  /** Calibration images: a folder, a list file, CIFAR-10 .bin, IDX or .npy. */
  calib: string;
  /**
   * Weight and activation bit-widths, 2..8; or 32 (FLOAT_WEIGHTS, FLOAT_ACTIVATIONS) to leave those values in float:
   * activation-only or weight-only quantization.
   */
  wBits: number;
  aBits: number;
  /** minmax, mse, cosine, adaround, brecq, qdrop, pd-only, pd-reg, pd-reg-drop, qdrop-dc or pdquant (default). */
  method?: string;
  /** Calibration images to use (default 1024). */
  numSamples?: number;
  /** Default 1005. */
  seed?: number;
  /** First and last layer and the classifier input at 8 bits (default true). */
  eightBitHeadStem?: boolean;
  /**
   * Other bit-widths for some layers, e.g. [{ match: 're:depthwise', wBits: 8, aBits: 8 }]: the weights of the weight
   * layers whose node name matches (a prefix, or a regular expression after 're:') and the activation quantizer after
   * each; applied in order after the defaults (the 8-bit head and stem included), so a later rule wins.
   */
  bitRules?: BitRule[];
  /**
   * Place quantizers and grids so that onnxruntime runs every convolution and residual addition of the export with
   * integer kernels (QLinearConv, QLinearAdd): the image and each residual branch's output get 8-bit quantizers too,
   * 8-bit weights get zero point 128. Needs 8-bit activations; weights 2..8 bits.
   */
  int8Kernels?: boolean;
  /** Labelled images to measure FP and quantized top-1 on. */
  eval?: string;
  evalLimit?: number;
  /** Default 100. */
  evalBatch?: number;
  /** resnet (default), regnet, mobilenetv2 or mnasnet: w_round, T and λc of PDQUANT.md §6. */
  archPreset?: string;
  /** Reconstruction hyper-parameters over the arch preset's and the reference's defaults. */
  recon?: Partial<ReconConfig>;
  /** Per-unit checkpoints (default runs/<model>-<method>-w<w>a<a>-seed<seed>); with `resume`, finished units are skipped. */
  runDir?: string;
  resume?: boolean;
  /** While a unit runs, its progress is saved in runDir this often (seconds; default 600), so that a resume continues inside it. */
  unitCheckpointSeconds?: number;
  units?: UnitOverride;
  /** Write the deployable QDQ model here, checked in onnxruntime unless `verify` is false. */
  output?: string;
  int4Storage?: boolean;
  verify?: boolean;
  /** cpu, cuda or cuda:N (default: $PDQUANT_DEVICE, else cpu). */
  device?: string;
}

export interface QuantizeModelResult {
  record: RunRecord;
  /** The quantization parameters (what `pdquant eval --qparams` and `evaluateModel({ qparams })` read). */
  qparams: QParamsFile;
}

/** Where a reconstruction run checkpoints unless told otherwise. */
export function defaultRunDir(model: string, methodName: string, wBits: number, aBits: number, seed: number): string {
  return join('runs', `${basename(model, '.onnx')}-${methodName}-w${wBits}a${aBits}-seed${seed}`);
}

/** 2..8, or FLOAT_BITS: the values stay float32 (no quantizer). */
const bitWidth = (what: string, b: number) => {
  if (!isBitWidth(b)) throw new RangeError(`Expected integer 2..8, or ${FLOAT_BITS} for float, for ${what} but received ${b}`);
  return b;
};

/**
 * The model as read, the same seen NCHW (a channels-last input's Transpose set aside), and the preprocessing its input
 * size and metadata call for unless `o` says otherwise.
 */
function readWithTransform(model: string, o: PreprocessOptions): { read: OnnxModel; onnx: OnnxModel; transform: Transform } {
  const read = readOnnx(model);
  const onnx = withoutChannelsLast(read);
  return { read, onnx, transform: transformFor(o, inputChw(modelIo(onnx)).slice(1), onnx.metadata) };
}

/** The bit-widths and bit rules, checked. */
function checkedBits(o: { wBits: number; aBits: number; bitRules?: BitRule[] }): [number, number] {
  const bits = [bitWidth('wBits', o.wBits), bitWidth('aBits', o.aBits)] as [number, number];
  for (const r of o.bitRules ?? []) {
    if (typeof r?.match !== 'string' || r.match === '') throw new Error(`Expected a node-name pattern as the match of each bit rule but received ${JSON.stringify(r?.match)}`);
    bitWidth(`the weights of bit rule ${r.match}`, r.wBits);
    bitWidth(`the activations of bit rule ${r.match}`, r.aBits);
  }
  if (quantizesNothing(bits[0], bits[1], o.bitRules))
    throw new RangeError(`weights and activations both at ${FLOAT_BITS} bits (float) quantize nothing; give --w or --a (wBits or aBits) 2..8`);
  return bits;
}

/** Why int8Kernels cannot be used with these bits and options, or undefined when it can (checked before anything is read). */
export function int8KernelsRefusal(wBits: number, aBits: number, o: { bitRules?: BitRule[]; int4Storage?: boolean }): string | undefined {
  if ([wBits, ...(o.bitRules ?? []).map((r) => r.wBits)].includes(FLOAT_BITS))
    return `int8 kernels (--int8-kernels, int8Kernels) need quantized weights (onnxruntime's integer kernels read 8-bit weight codes), but weights are left in float (${FLOAT_BITS}); the weights may have 2..8 bits`;
  const other = [aBits, ...(o.bitRules ?? []).map((r) => r.aBits)].find((a) => a !== 8);
  if (other === FLOAT_BITS) return `int8 kernels (--int8-kernels, int8Kernels) need 8-bit activations (onnxruntime's integer kernels read and write 8-bit codes), but activations are left in float (${FLOAT_BITS}); the weights may have 2..8 bits`;
  if (other !== undefined) return `int8 kernels (--int8-kernels, int8Kernels) need 8-bit activations (onnxruntime's integer kernels read and write all 256 codes; a narrower grid needs a Clip that stops them), but an activation bit-width is ${other}; the weights may have 2..8 bits`;
  if (o.int4Storage) return 'int8 kernels (--int8-kernels) and int4 storage (--int4-storage) exclude each other: the integer kernels read weights as 8-bit codes';
  return undefined;
}

function checkInt8Kernels(wBits: number, aBits: number, o: { bitRules?: BitRule[]; int4Storage?: boolean }): void {
  const refusal = int8KernelsRefusal(wBits, aBits, o);
  if (refusal) throw new Error(refusal);
}

/** Quantizes a model with a method; evaluates, exports and verifies where asked. Every bad input is one clear error. */
export async function quantizeModel(o: QuantizeModelOptions, events: RunEvents = {}): Promise<QuantizeModelResult> {
  await useDevice(o.device);
  const name = o.method ?? 'pdquant';
  const preset = method(name);
  const arch = ARCH_PRESETS[o.archPreset ?? 'resnet'];
  if (!arch) throw new Error(`Unknown arch preset ${o.archPreset}; choose one of ${Object.keys(ARCH_PRESETS).join(', ')}`);
  const [wBits, aBits] = checkedBits(o);
  if (o.int8Kernels) checkInt8Kernels(wBits, aBits, o);
  const seed = o.seed ?? 1005;
  const runDir = preset.recon ? o.runDir ?? defaultRunDir(o.model, name, wBits, aBits, seed) : undefined;
  // What the run writes at its end must be writable now, not after hours of reconstruction.
  const outputProblem = o.output !== undefined ? outputFileProblem(o.output) : undefined;
  if (outputProblem) throw new Error(`output ${o.output} ${outputProblem}`);
  if (o.unitCheckpointSeconds !== undefined && !(o.unitCheckpointSeconds >= 0 && Number.isFinite(o.unitCheckpointSeconds)))
    throw new RangeError(`Expected seconds ≥ 0 for unitCheckpointSeconds but received ${o.unitCheckpointSeconds}`);
  const runDirProblem = runDir !== undefined ? outputFolderProblem(runDir) : undefined;
  if (runDirProblem) throw new Error(`runDir ${runDir} ${runDirProblem}`);
  const { read, transform } = readWithTransform(o.model, o);
  const { record, qmodel } = await quantize(
    {
      model: o.model, read, calib: o.calib, method: name, wBits, aBits, numSamples: o.numSamples ?? 1024, seed, transform,
      eightBitHeadStem: o.eightBitHeadStem ?? true, bitRules: o.bitRules, int8Kernels: o.int8Kernels, eval: o.eval, evalLimit: o.evalLimit, evalBatch: o.evalBatch ?? 100,
      recon: { ...arch, ...o.recon },
      runDir, resume: o.resume, unitCheckpointSeconds: o.unitCheckpointSeconds,
      output: o.output, int4Storage: o.int4Storage, verify: o.verify, units: o.units,
    },
    VERSION,
    events,
  );
  return { record, qparams: qmodel.state() };
}

export interface EvaluateModelOptions extends PreprocessOptions {
  /** torch (pdquant's engine, default) or ort (onnxruntime-node, which also runs exported QDQ files). */
  backend?: 'torch' | 'ort';
  /** Default 100. */
  batch?: number;
  limit?: number;
  /** For data holding both (CIFAR folder, IDX folder, ImageFolder with train/test). */
  split?: 'train' | 'test';
  /** Simulate the quantized model these parameters describe (torch backend). */
  qparams?: QParamsFile;
  device?: string;
  /** Something allowed but probably a mistake (e.g. a class count other than the model's outputs). */
  onWarning?(message: string): void;
  onProgress?(done: number, total: number): void;
}

/** Top-1/top-5 of a model on labelled images. */
export async function evaluateModel(model: string, data: string, o: EvaluateModelOptions = {}): Promise<Accuracy> {
  const backend = o.backend ?? 'torch';
  if (backend !== 'torch' && backend !== 'ort') throw new Error(`Expected torch or ort for the backend but received ${backend}`);
  if (o.qparams && backend === 'ort') throw new Error('qparams simulate on our engine; use the torch backend (or export the model and evaluate that file with ort)');
  if (backend === 'torch') await useDevice(o.device);
  // pdquant's side sees the image NCHW; onnxruntime gets it in the file's own layout (runOrt).
  const { onnx, transform } = readWithTransform(model, o);
  // onnxruntime runs what our engine does not compile, such as the QDQ files pdquant exports: those are only read.
  if (backend === 'torch' && isQdq(onnx))
    throw new Error(`${model} is a quantized (QDQ) model: evaluate it with --backend ort (onnxruntime), or the float model with --qparams on our engine`);
  const dataset = await openDataset(data, { split: o.split, channels: imageChannels(onnx) });
  // A model that leaves its image size free runs on our engine at the size of the data.
  const imageShape = backend === 'torch' && freeImageDims(onnx).length > 0 ? { chw: await firstSampleShape(dataset, transform), source: `the images of ${data}` } : undefined;
  const loaded = backend === 'torch' ? loadModel(onnx, { imageShape }) : undefined;
  if (loaded && onnx.readFromFloat16) {
    o.onWarning?.(`${model} is a float16 model: our engine evaluates it in float32 (which holds every float16 value exactly), ` +
      'so its top-1 can differ a little from the float16 model\'s in onnxruntime (--backend ort)');
  }
  for (const w of await checkEvalData(loaded?.fp ?? modelIo(onnx), dataset, transform, o.limit)) o.onWarning?.(w);
  const opts = { transform, batchSize: o.batch ?? 100, limit: o.limit, onProgress: o.onProgress };
  if (!loaded) return evaluateOrt(model, dataset, opts);
  if (!o.qparams) return evaluateGraph(loaded.fp, dataset, opts);
  const { QuantizedModel } = await import('./quant/qmodel.js');
  const qmodel = QuantizedModel.fromQParams(loaded.folded, loaded.units, o.qparams);
  return evaluateGraph(loaded.folded, dataset, { ...opts, hooks: qmodel.hooks({ weights: true, acts: true }) });
}

export interface AnalyzeSensitivityOptions extends PreprocessOptions {
  model: string;
  /** Calibration images (the first `numSamples` of them, default 256, drawn as quantize draws them). */
  calib: string;
  wBits: number;
  aBits: number;
  numSamples?: number;
  /** Default 1005. */
  seed?: number;
  /** Default true. */
  eightBitHeadStem?: boolean;
  /** Rules already decided on: the analysis quantizes with them. */
  bitRules?: BitRule[];
  /** The placement and grids quantize uses with int8Kernels (8-bit activations). */
  int8Kernels?: boolean;
  units?: UnitOverride;
  /** Labelled images: top-1 for the whole model and for each unit alone quantized. */
  eval?: string;
  evalLimit?: number;
  /** Default 64. */
  batch?: number;
  device?: string;
}

/**
 * Which units lose most when quantized (scale-only, as the `mse` method): every unit alone quantized, compared with
 * the float model; each row gives the `--bits` pattern that selects the unit.
 */
export async function analyzeSensitivity(o: AnalyzeSensitivityOptions, events: SensitivityEvents = {}): Promise<SensitivityReport> {
  await useDevice(o.device);
  const [wBits, aBits] = checkedBits(o);
  if (o.int8Kernels) checkInt8Kernels(wBits, aBits, o);
  const { read, transform } = readWithTransform(o.model, o);
  return analyze({
    model: o.model, read, calib: o.calib, wBits, aBits, numSamples: o.numSamples ?? 256, seed: o.seed ?? 1005,
    transform, eightBitHeadStem: o.eightBitHeadStem ?? true,
    bitRules: o.bitRules, int8Kernels: o.int8Kernels, units: o.units, eval: o.eval, evalLimit: o.evalLimit, batch: o.batch ?? 64,
  }, events);
}
