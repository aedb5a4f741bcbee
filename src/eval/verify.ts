/** Checks that an exported QDQ file computes in onnxruntime what the simulation computes on our engine. */
import * as E from '../engine/index.js';
import { execute } from '../graph/index.js';
import type { OnnxModel, OnnxNode } from '../onnx/ir.js';
import { dequantized } from '../onnx/qdq-summary.js';
import { transposed } from '../onnx/linear.js';
import { encodeOnnx } from '../onnx/write.js';
import type { QuantizedModel } from '../quant/qmodel.js';
import { openOrt, runOrt } from './ort.js';

export interface LogitComparison {
  maxLogitDiff: number;
  maxLogit: number;
  /** Share of samples whose top-1 class is the same in both. */
  agreement: number;
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

/** A quantizer's output in the simulation against onnxruntime's, both computed from onnxruntime's inputs. */
export interface QuantizerDiff {
  value: string;
  elements: number;
  /** Values one step apart: the two sides' float results lay on either side of a rounding boundary. */
  flips: number;
  /** Values apart by anything else (less or more than one step): the two sides do not compute the same. */
  mismatches: number;
  maxDiff: number;
  /** The quantizer's step. */
  step: number;
  /** Largest |value| there, for scale. */
  maxAbs: number;
}

/** The export checked quantizer by quantizer (see checkLayerwise). */
export interface LayerwiseCheck {
  quantizers: QuantizerDiff[];
  /** Values of all quantizers over all images, and how many of them lie one step apart. */
  values: number;
  flips: number;
  /** The first quantizer (network order) that differs by more than rounding flips, if any. */
  failed?: QuantizerDiff;
  /** The logits computed from onnxruntime's last quantized values, against onnxruntime's logits. */
  maxLogitDiff: number;
  maxLogit: number;
  /** Whether the logits agree within LOGIT_TOLERANCE of their largest magnitude. */
  logitsAgree: boolean;
}

/**
 * The share of a quantizer's values that may lie one step apart. Float sums in another order move a value across a
 * rounding boundary only when it lies within about 1e-6 of it (relative); a wrong scale, zero point or weight moves many.
 * Measured on torchvision vgg11_bn and resnet50 at W4A4 (random weights, 16 images): at most 4.6e-5 of a quantizer's values.
 */
export const MAX_FLIP_SHARE = 1e-3;
/** max|Δlogit| / max|logit| allowed once both sides start from the same quantized values (float rounding only). */
export const LOGIT_TOLERANCE = 1e-3;

/** Classifies the differences between two dequantized tensors on a grid of `step`: equal, one step apart, or other. */
export function compareQuantized(sim: Float32Array, ort: Float32Array, step: number): { flips: number; mismatches: number; maxDiff: number; maxAbs: number } {
  let flips = 0, mismatches = 0, maxDiff = 0, maxAbs = 0;
  for (let i = 0; i < sim.length; i++) {
    const d = Math.abs(sim[i]! - ort[i]!);
    maxAbs = Math.max(maxAbs, Math.abs(sim[i]!));
    maxDiff = Math.max(maxDiff, d);
    if (d === 0 || d <= 1e-4 * step) continue;
    if (Math.abs(d - step) <= 1e-3 * step) flips++;
    else mismatches++;
  }
  return { flips, mismatches, maxDiff, maxAbs };
}

/** Whether a quantizer differs only by rounding flips, and few of them. */
export const onlyRoundingFlips = (d: QuantizerDiff): boolean => d.mismatches === 0 && d.flips <= MAX_FLIP_SHARE * d.elements;

/** The QDQ model with every activation quantizer's output (its DequantizeLinear) as a graph output after the logits. */
export function layerwiseProbe(qmodel: QuantizedModel, qdq: OnnxModel): OnnxModel {
  const exposed = qmodel.placement.acts.map((a) => ({ name: `${a.value}_dq`, elemType: 'float32' as const, dims: null }));
  return { ...qdq, outputs: [qdq.outputs[0]!, ...exposed] };
}

/**
 * Checks an export quantizer by quantizer, so that near ties cannot hide a wrong export nor fail a right one. Every
 * activation quantizer's output (DequantizeLinear) is taken from onnxruntime; the simulation computes each quantizer
 * from onnxruntime's values of the quantizers before it, and must give the same codes, but for a few values one step
 * apart (float sums in another order crossing a rounding boundary). Its logits, from onnxruntime's last quantized
 * values, must then equal onnxruntime's up to float rounding. Runs `chunk` images at a time: every quantized value
 * of a chunk is held at once.
 */
export async function checkLayerwise(qmodel: QuantizedModel, qdq: OnnxModel, x: E.Tensor, chunk = 8): Promise<LayerwiseCheck> {
  const values = qmodel.placement.acts.map((a) => a.value);
  const logitsName = qdq.outputs[0]!.name;
  const exposed = values.map((v) => `${v}_dq`);
  const probe = layerwiseProbe(qmodel, qdq);
  const steps = new Map(values.map((v) => {
    const d = qmodel.acts.get(v)!.q.delta.toArray();
    return [v, d.length === 1 ? d[0]! : NaN]; // activation steps are per tensor; with NaN only equal values pass
  }));
  const diffs = new Map<string, QuantizerDiff>(values.map((v) => [v, { value: v, elements: 0, flips: 0, mismatches: 0, maxDiff: 0, step: steps.get(v)!, maxAbs: 0 }]));
  let maxLogitDiff = 0, maxLogit = 0;
  const g = qmodel.graph;
  const base = qmodel.hooks({ weights: true, acts: true });
  const session = await openOrt(encodeOnnx(probe));
  try {
    for (let start = 0; start < x.shape[0]!; start += chunk) {
      const xs = E.tidy(() => x.slice(0, start, Math.min(start + chunk, x.shape[0]!)).contiguous());
      const ort = await runOrt(session, xs.data() as Float32Array, xs.shape, [logitsName, ...exposed]);
      const hooks = {
        ...base,
        value: (name: string, t: E.Tensor): E.Tensor => {
          const q = base.value!(name, t);
          const o = ort[`${name}_dq`];
          if (q === t || !o) return q;
          const sim = E.tidy(() => q.contiguous().data() as Float32Array);
          const c = compareQuantized(sim, o.data, steps.get(name)!);
          const d = diffs.get(name)!;
          Object.assign(d, { elements: d.elements + sim.length, flips: d.flips + c.flips, mismatches: d.mismatches + c.mismatches, maxDiff: Math.max(d.maxDiff, c.maxDiff), maxAbs: Math.max(d.maxAbs, c.maxAbs) });
          return E.tensor(o.data, o.dims);
        },
      };
      const logits = E.noGrad(() => E.tidy(() => execute(g, { feeds: new Map([[g.input.name, xs]]), outputs: [g.output.name], hooks }).get(g.output.name)!.contiguous()));
      const a = logits.data() as Float32Array;
      logits.dispose();
      xs.dispose();
      maxLogitDiff = Math.max(maxLogitDiff, maxAbsDiff(a, ort[logitsName]!.data));
      maxLogit = a.reduce((m, v) => Math.max(m, Math.abs(v)), maxLogit);
    }
  } finally {
    await session.release();
  }
  const quantizers = values.map((v) => diffs.get(v)!);
  return {
    quantizers,
    values: quantizers.reduce((n, d) => n + d.elements, 0),
    flips: quantizers.reduce((n, d) => n + d.flips, 0),
    failed: quantizers.find((d) => !onlyRoundingFlips(d)),
    maxLogitDiff,
    maxLogit,
    logitsAgree: maxLogitDiff <= LOGIT_TOLERANCE * Math.max(maxLogit, 1e-6),
  };
}

/** The export's dequantized weights against the simulation's quantized weights (see checkWeights). */
export interface WeightCheck {
  layers: number;
  values: number;
  /** The first weight layer (network order) whose weights differ, and in how many values. */
  failed?: { node: string; differing: number; values: number; maxDiff: number; bias?: boolean };
}

/**
 * Checks every quantized weight of an export exactly: the DequantizeLinear that feeds each weight layer in the file
 * must give the simulation's quantized weight value for value ((q − z)·s in float32 on both sides). The
 * quantizer-by-quantizer check lets a few values in a million lie one step apart, which a single wrong weight code could
 * hide in; this does not. A linear layer exported as MatMul (on [N, H, W, C] or tokens) holds its weight as [in, out].
 * The biases too: as the file holds them (moved into an Add after the layer, or with int8 kernels as int32 codes).
 */
export function checkWeights(qmodel: QuantizedModel, qdq: OnnxModel): WeightCheck {
  const byName = new Map(qdq.nodes.map((n) => [n.name, n]));
  const producer = new Map(qdq.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
  const g = qmodel.graph;
  const hooks = qmodel.hooks({ weights: true, acts: false });
  const layers = qmodel.weights.size;
  let values = 0;
  const differences = (exported: Float32Array, simulated: Float32Array) => {
    if (exported.length !== simulated.length) return { differing: simulated.length, maxDiff: NaN };
    let differing = 0, maxDiff = 0;
    for (let i = 0; i < exported.length; i++) {
      const d = Math.abs(exported[i]! - simulated[i]!);
      if (d > 0) differing++;
      maxDiff = Math.max(maxDiff, d);
    }
    return { differing, maxDiff };
  };
  for (const w of qmodel.weights.values()) {
    const exportedNode = byName.get(w.site.node);
    const dq = producer.get(exportedNode?.inputs[1] ?? '');
    const file = dq?.opType === 'DequantizeLinear' ? dequantized(qdq, dq) : undefined;
    const node = g.node(w.site.node);
    const simulated = E.noGrad(() => E.tidy(() => hooks.weight!(node, g.params.get(node.inputs[1]!)!).contiguous().data() as Float32Array));
    values += simulated.length;
    if (!file) return { layers, values, failed: { node: w.site.node, differing: simulated.length, values: simulated.length, maxDiff: NaN } };
    const exported = (exportedNode!.opType === 'MatMul' && file.dims.length === 2 ? transposed(file, file.name) : file).data as Float32Array;
    const weight = differences(exported, simulated);
    if (weight.differing) return { layers, values, failed: { node: w.site.node, ...weight, values: simulated.length } };
    const bias = node.inputs[2] ? g.params.get(node.inputs[2]) : undefined;
    if (!bias) continue;
    const simulatedBias = E.noGrad(() => E.tidy(() => (hooks.bias ? hooks.bias(node, bias) : bias).contiguous().data() as Float32Array));
    const fileBias = exportedBias(qdq, exportedNode!, producer);
    const b = fileBias ? differences(fileBias, simulatedBias) : { differing: simulatedBias.length, maxDiff: NaN };
    if (b.differing) return { layers, values, failed: { node: w.site.node, ...b, values: simulatedBias.length, bias: true } };
  }
  return { layers, values };
}

/**
 * The bias a weight layer of the export adds: its third input (an initializer, or with int8 kernels a DequantizeLinear
 * of int32 codes), else the initializer of the Add that alone reads its output (where the export moved the bias).
 */
function exportedBias(m: OnnxModel, node: OnnxNode, producer: ReadonlyMap<string, OnnxNode>): Float32Array | undefined {
  const input = node.inputs[2];
  if (input) {
    const dq = producer.get(input);
    if (dq?.opType === 'DequantizeLinear') return dequantized(m, dq)?.data as Float32Array | undefined;
    const t = m.initializers.get(input);
    return t?.dataType === 'float32' ? (t.data as Float32Array) : undefined;
  }
  const readers = m.nodes.filter((n) => n.inputs.includes(node.outputs[0]!));
  const add = readers.length === 1 && readers[0]!.opType === 'Add' ? readers[0]! : undefined;
  const t = add?.inputs.map((i) => m.initializers.get(i)).find((i) => i !== undefined);
  return t?.dataType === 'float32' ? (t.data as Float32Array) : undefined;
}

/** What the layer-by-layer check of an export found wrong, in words; '' when nothing. */
export function layerwiseProblem(c: LayerwiseCheck, weights?: WeightCheck): string {
  const w = weights?.failed;
  if (w)
    return Number.isNaN(w.maxDiff)
      ? w.bias ? `the exported model does not add the bias of ${w.node} as the simulation does` : `the exported model does not feed ${w.node} its weights through a DequantizeLinear of initializers of the simulated shape`
      : `the ${w.bias ? 'bias' : 'weights'} of ${w.node} in the file differ${w.bias ? 's' : ''} from the simulation's in ${w.differing} of ${w.values} values (max difference ${w.maxDiff.toPrecision(3)})`;
  const d = c.failed;
  if (d) {
    const what = d.mismatches
      ? `${d.mismatches} of its ${d.elements} values differ by other than one step (max difference ${d.maxDiff.toPrecision(3)}, step ${d.step.toPrecision(3)}, values up to ${d.maxAbs.toPrecision(3)})`
      : `${d.flips} of its ${d.elements} values lie one step apart, more than the ${MAX_FLIP_SHARE * 100} % that float rounding explains`;
    return `from the same inputs, the activation quantizer at ${d.value} does not give the simulation's values: ${what}`;
  }
  if (!c.logitsAgree)
    return `from the same quantized values, the logits differ by up to ${c.maxLogitDiff.toPrecision(3)} (logits up to ${c.maxLogit.toPrecision(3)}): the difference is after the last activation quantizer`;
  return '';
}

/** Share of probe images whose top-1 class must agree, where the layer-by-layer check cannot vouch for the export. */
export const MIN_AGREEMENT = 0.95;

/**
 * Whether an export passes its check against the simulation: what is wrong with it, in words, and a warning for what is
 * not wrong but looks it. A layer-by-layer match shows that the file computes what the simulation computes, so a top-1
 * class that differs is then a near tie (random weights, logits within rounding of each other). That holds only where
 * the layer-by-layer check ran the kernels the file runs: onnxruntime keeps its integer kernels (QLinearConv,
 * QLinearAdd) when the quantizers' outputs are exposed, and where it does not (`sameKernels` false), the classes must agree.
 */
export function exportVerdict(cmp: LogitComparison, layers: LayerwiseCheck, probeImages: number, sameKernels = true, weights?: WeightCheck): { problems: string[]; warning?: string } {
  const problems: string[] = [];
  const layerProblem = layerwiseProblem(layers, weights);
  if (layerProblem) problems.push(layerProblem);
  if (cmp.agreement >= MIN_AGREEMENT) return { problems };
  const disagreement = `the top-1 class differs on ${((1 - cmp.agreement) * 100).toFixed(1)} % of ${probeImages} calibration images`;
  if (layerProblem || !sameKernels) return { problems: [...problems, disagreement] };
  return {
    problems,
    warning: `${disagreement}, but ${weights ? 'the weights are the simulation\'s and ' : ''}every activation quantizer of the export gives the simulation's values from the same inputs ` +
      `(${layers.flips} of ${layers.values} one rounding step apart) and so do the logits (max difference ${layers.maxLogitDiff.toPrecision(3)}, logits up to ` +
      `${layers.maxLogit.toPrecision(3)}): the classes differ where logits nearly tie, as with random weights or an untrained model`,
  };
}

/** Largest top-1 difference (points) between the exported file in onnxruntime and the simulation that passes unremarked. */
export const EXPORT_TOP1_TOLERANCE = 0.05;

/**
 * Whether onnxruntime's top-1 on the evaluation data (`ortTop1`) may differ from the simulated one (`simTop1`). Within
 * EXPORT_TOP1_TOLERANCE it passes. Beyond it, a layer-by-layer match (on the kernels the file runs) shows that each
 * quantizer computes what the simulation computes, but for values one rounding step apart, and those steps carry on
 * through the network to the classes: a warning, which float weights (more such steps than integer codes give) or a
 * deep network can call for. Without that match it is a problem.
 */
export function top1Verdict(ortTop1: number, simTop1: number, layers: LayerwiseCheck, sameKernels = true, weights?: WeightCheck): { problem?: string; warning?: string } {
  const gap = Math.abs(ortTop1 - simTop1);
  if (gap <= EXPORT_TOP1_TOLERANCE) return {};
  const says = `onnxruntime gives top-1 ${ortTop1.toFixed(2)} % but the simulation ${simTop1.toFixed(2)} % (tolerance ${EXPORT_TOP1_TOLERANCE})`;
  if (layerwiseProblem(layers, weights) || !sameKernels) return { problem: says };
  return {
    warning: `onnxruntime gives top-1 ${ortTop1.toFixed(2)} % and the simulation ${simTop1.toFixed(2)} %, ${gap.toFixed(2)} points apart (more than ${EXPORT_TOP1_TOLERANCE}), but every activation quantizer of the export gives the simulation's values from the same inputs (${layers.flips} of ${layers.values} ` +
      'one rounding step apart, where float sums in another order cross a rounding boundary): those steps carry on through the network; ' +
      "the deployed model's top-1 is onnxruntime's",
  };
}
