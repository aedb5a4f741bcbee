/** ONNX file → the graphs pdquant works with: FP (BN kept, for DC and evaluation) and BN-folded (to quantize). */
import * as E from '../engine/index.js';
import { readOnnx } from '../onnx/read.js';
import { foldConstants } from '../onnx/fold.js';
import { HOW_TO_EXPORT, declaredBatch, freeBatch } from '../onnx/batch.js';
import { OnnxError } from '../onnx/errors.js';
import { splitHead, type Head } from '../onnx/head.js';
import { isChannelsLast, withoutChannelsLast } from '../onnx/channels-last.js';
import { freeImageDims, unsizedError, withImageShape, type ImageShape } from '../onnx/image-input.js';
import { canonicalLinear } from '../onnx/linear.js';
import { splitAsSlices } from '../onnx/split.js';
import { checkSupported } from '../onnx/supported.js';
import { quantizedOps } from '../onnx/qdq-summary.js';
import type { OnnxModel, ValueInfo } from '../onnx/ir.js';
import { Graph } from './graph.js';
import { execute } from './executor.js';
import { foldBatchNorm, type BnStats } from './fold-bn.js';
import { partition, type Unit, type UnitOverride } from './partition.js';

export interface LoadedModel {
  /** The file it was read from; null when it was given as bytes. */
  path: string | null;
  /** The model after constant folding (compute ops only), its batch dim symbolic, without its head, linear layers as Gemm. */
  onnx: OnnxModel;
  /** The batch size the file fixes (torch.onnx.export without dynamic axes: 1), which the export keeps; null when free. */
  declaredBatch: number | null;
  /** The file takes its image [N, H, W, C] and transposes it to NCHW (tf2onnx): the graphs start after that Transpose, the export puts it back. */
  channelsLast: boolean;
  /** The Softmax/LogSoftmax the model ended in, set aside (the graphs output the logits) and put back by the export. */
  head: Head | null;
  /** Full precision, BatchNormalization kept. */
  fp: Graph;
  /** BatchNormalization folded into the preceding layers; the graph that gets quantized. */
  folded: Graph;
  /** Folded layer name → the BN statistics it absorbed. */
  bn: Map<string, BnStats>;
  /** Reconstruction units of the folded graph, in network order. */
  units: Unit[];
}

export interface LoadOptions {
  units?: UnitOverride;
  /** The size to run a model at whose image input leaves channels, height or width free (required for those). */
  imageShape?: ImageShape;
}

/** Reads (a file path, the model's bytes, or a model readOnnx gave), folds and checks an ONNX model; every failure is one clear error. */
export function loadModel(source: string | Uint8Array | OnnxModel, o: LoadOptions = {}): LoadedModel {
  const read = typeof source === 'string' || source instanceof Uint8Array ? readOnnx(source) : source;
  const quantized = quantizedOps(read);
  if (quantized.length > 0)
    throw new OnnxError(`${read.files?.[0] ?? 'the model'} is already quantized (it holds ${quantized.join(', ')}): pdquant quantizes float models, ` +
      'so give it the float model this one was made from; onnxruntime runs this one (pdquant eval <model> --data <images> --backend ort)');
  const nchw = withoutChannelsLast(read);
  if (freeImageDims(nchw).length > 0 && !o.imageShape) throw unsizedError(nchw);
  const sized = o.imageShape ? withImageShape(nchw, o.imageShape) : nchw;
  const batch = declaredBatch(sized);
  const { body, head } = splitHead(foldConstants(freeBatch(sized, read.files?.[0] ?? 'the model')));
  const onnx = canonicalLinear(splitAsSlices(body));
  checkSupported(onnx);
  // Per-output-channel weights need [out, in] (Gemm); a MatMul left over has another weight or a 1-D activation.
  const matmul = onnx.nodes.find((n) => n.opType === 'MatMul' && onnx.initializers.has(n.inputs[1] ?? ''));
  if (matmul) throw new OnnxError(`node ${matmul.name} (MatMul) multiplies by the weight '${matmul.inputs[1]}', which pdquant cannot quantize: it quantizes fully connected layers with a 2-D float32 weight on activations of rank 2 or more`);
  const fp = new Graph(onnx);
  if (batch !== null) checkSamplesIndependent(fp, batch);
  const { model, bn } = foldBatchNorm(onnx);
  const folded = new Graph(model);
  return { path: read.files?.[0] ?? null, onnx, declaredBatch: batch, channelsLast: isChannelsLast(read), head, fp, folded, bn, units: partition(folded, o.units) };
}

/**
 * A graph freed from its declared batch must give each sample the output it gives that sample alone: checked on two
 * made-up samples, so a graph that mixes samples (which folding cannot see) is refused instead of calibrated wrongly.
 */
function checkSamplesIndependent(graph: Graph, declared: number): void {
  const chw = inputChw(graph) as number[];
  const size = chw.reduce((a, b) => a * b, 1);
  const data = Float32Array.from({ length: 2 * size }, (_, i) => Math.sin(i * 0.7) + 0.5 * Math.cos(i * 0.013));
  const run = (x: Float32Array, n: number) =>
    E.tidy(() => E.noGrad(() => {
      const out = execute(graph, { feeds: new Map([[graph.input.name, E.tensor(x, [n, ...chw])]]), outputs: [graph.output.name] });
      return Float32Array.from(out.get(graph.output.name)!.contiguous().data() as Float32Array);
    }));
  const both = run(data, 2);
  const alone = [run(data.subarray(0, size), 1), run(data.subarray(size), 1)];
  const per = alone[0]!.length;
  if (both.length !== 2 * per) throw new OnnxError(`the model is exported for batch size ${declared} and gives ${both.length / per} outputs for 2 samples at other batch sizes; ${HOW_TO_EXPORT}`);
  let diff = 0;
  let scale = 1e-6;
  for (let i = 0; i < both.length; i++) {
    const a = alone[i < per ? 0 : 1]![i % per]!;
    diff = Math.max(diff, Math.abs(both[i]! - a));
    scale = Math.max(scale, Math.abs(a));
  }
  if (diff > 1e-4 * scale)
    throw new OnnxError(`the model is exported for batch size ${declared} and its samples interact at other batch sizes (output differs by ${diff.toPrecision(3)}); ${HOW_TO_EXPORT}`);
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
