/** ONNX file → the graphs pdquant works with: FP (BN kept, for DC and evaluation) and BN-folded (to quantize). */
import { readOnnx } from '../onnx/read.js';
import { foldConstants } from '../onnx/fold.js';
import { checkSupported } from '../onnx/supported.js';
import type { OnnxModel, ValueInfo } from '../onnx/ir.js';
import { Graph } from './graph.js';
import { foldBatchNorm, type BnStats } from './fold-bn.js';
import { partition, type Unit, type UnitOverride } from './partition.js';

export interface LoadedModel {
  /** The file it was read from; null when it was given as bytes. */
  path: string | null;
  /** The model after constant folding (compute ops only). */
  onnx: OnnxModel;
  /** Full precision, BatchNormalization kept. */
  fp: Graph;
  /** BatchNormalization folded into the preceding layers; the graph that gets quantized. */
  folded: Graph;
  /** Folded layer name → the BN statistics it absorbed. */
  bn: Map<string, BnStats>;
  /** Reconstruction units of the folded graph, in network order. */
  units: Unit[];
}

/** Reads (a file path, or the model's bytes), folds and checks an ONNX model; every failure is one clear error. */
export function loadModel(source: string | Uint8Array, o: { units?: UnitOverride } = {}): LoadedModel {
  const onnx = foldConstants(readOnnx(source));
  checkSupported(onnx);
  const fp = new Graph(onnx);
  const { model, bn } = foldBatchNorm(onnx);
  const folded = new Graph(model);
  return { path: typeof source === 'string' ? source : null, onnx, fp, folded, bn, units: partition(folded, o.units) };
}

/** What a graph or an ONNX file's first input and output are: enough to check data against without compiling it. */
export interface ModelIo {
  input: ValueInfo;
  output: ValueInfo;
}

/** The first input and output of an ONNX model as read, for files pdquant only hands to onnxruntime (QDQ exports). */
export function modelIo(model: OnnxModel): ModelIo {
  return { input: model.inputs[0]!, output: model.outputs[0]! };
}

/** Input shape [C, H, W] the model expects (dims that are symbolic come back as null). */
export function inputChw(g: Pick<ModelIo, 'input'>): (number | null)[] {
  const dims = g.input.dims ?? [];
  return dims.slice(1).map((d) => (typeof d === 'number' ? d : null));
}

/** The image channel count the model takes (1 or 3), so grayscale or colour images are converted to it; undefined if unknown. */
export function inputChannels(g: Pick<ModelIo, 'input'>): 1 | 3 | undefined {
  const c = inputChw(g)[0];
  return c === 1 || c === 3 ? c : undefined;
}
