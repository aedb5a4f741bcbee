/**
 * Which units quantization hurts most: the model quantized scale-only (mse, as the `mse` method), then each unit alone
 * quantized (all of it, its weights only, its activations only), compared with the float model on the calibration
 * images (KL divergence of the softmax outputs and how often the top class stays the float one) and, with labelled
 * data, by top-1. It tells which layers to keep at higher precision with `--bits`, and gives the rule that selects each
 * unit.
 */
import * as E from '../engine/index.js';
import { execute, isWeightLayer, namePattern, type Graph, type RunHooks } from '../graph/index.js';
import { inputChw } from '../graph/load.js';
import { QuantizedModel } from '../quant/qmodel.js';
import { loadCalibration } from '../quant/calibration.js';
import type { BitRule } from '../quant/placement.js';
import { capture } from '../recon/caches.js';
import { checkEvalData, checkInputShape, evaluateGraph } from '../eval/index.js';
import { openDataset } from '../data/index.js';
import { imageChannels } from '../onnx/image-input.js';
import { loadForCalibration, type QuantizeOptions } from './pipeline.js';

/** How far quantized logits are from the float ones. */
export interface Divergence {
  /** Mean over images of KL(float ‖ quantized) of the softmax outputs. */
  kl: number;
  /** % of images whose top class is the float model's. */
  agreement: number;
  /** Top-1 % on the labelled data, when given. */
  top1?: number;
}

export interface UnitSensitivity extends Divergence {
  unit: string;
  kind: 'layer' | 'block';
  /** Its weight layers. */
  layers: string[];
  /** The pattern that selects exactly this unit's weight layers, for a `--bits <pattern>=<w>/<a>` rule. */
  pattern: string;
  /** Only the unit's weights quantized, and only its activations: which of the two bit-widths to raise. */
  weightsOnly: Divergence;
  actsOnly: Divergence;
}

/** Nothing quantized: the float logits themselves. */
const UNCHANGED: Divergence = { kl: 0, agreement: 100 };

/** Divergence of the logits `hooks` give from the float logits, over `images` in batches. */
export function divergence(graph: Graph, images: E.Tensor, fpLogits: E.Tensor, hooks: RunHooks, batch: number): Divergence {
  const n = images.shape[0]!;
  let kl = 0;
  let same = 0;
  for (let s = 0; s < n; s += batch) {
    const e = Math.min(n, s + batch);
    E.noGrad(() =>
      E.tidy(() => {
        const q = execute(graph, { feeds: new Map([[graph.input.name, images.slice(0, s, e)]]), outputs: [graph.output.name], hooks }).get(graph.output.name)!;
        const f = fpLogits.slice(0, s, e);
        kl += E.klDivBatchmean(E.logSoftmax(q, 1), E.softmax(f, 1)).item() * (e - s);
        const [qa, fa] = [q.argmax(1).data(), f.argmax(1).data()] as ArrayLike<number | bigint>[];
        for (let i = 0; i < e - s; i++) if (qa[i] === fa[i]) same++;
      }),
    );
  }
  // Identical outputs give a KL of 0 up to rounding, which may come out a hair below it.
  return { kl: Math.max(0, kl / n), agreement: (100 * same) / n };
}

/**
 * A name pattern for a `--bits` rule that selects the unit's weight layers `layers` and no other weight layer, and
 * reaches its activation quantizers too: the module path of all its nodes (so a block's addition, which its output
 * quantizer belongs to, is covered), else that of its layers, else a regular expression of their names (with the node
 * computing a block's output).
 */
export function unitPattern(graph: Graph, layers: readonly string[], nodes: readonly string[] = layers, output?: string): string {
  const all = graph.nodes.filter(isWeightLayer).map((n) => n.name);
  const selects = (pattern: string) => {
    const test = namePattern('pattern', pattern);
    const hit = all.filter(test);
    return hit.length === layers.length && layers.every((l) => hit.includes(l));
  };
  const modulePathOf = (names: readonly string[]) => {
    let prefix = names[0] ?? '';
    for (const l of names) while (!l.startsWith(prefix)) prefix = prefix.slice(0, -1);
    return prefix.slice(0, prefix.lastIndexOf('/') + 1);
  };
  for (const path of [modulePathOf(nodes), modulePathOf(layers)]) if (path.length > 1 && selects(path)) return path;
  const names = output && !layers.includes(output) ? [...layers, output] : layers;
  const escaped = names.map((l) => l.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return `re:^(${escaped.join('|')})$`;
}

/** The name of the node that computes `value`. */
function producerOf(graph: Graph, value: string): string | undefined {
  return graph.nodes.find((n) => n.outputs.includes(value))?.name;
}

/** What quantize takes that the analysis uses, and its batch size. */
export type SensitivityOptions = Pick<
  QuantizeOptions,
  'model' | 'read' | 'calib' | 'wBits' | 'aBits' | 'numSamples' | 'seed' | 'transform' | 'eightBitHeadStem' | 'bitRules' | 'int8Kernels' | 'units' | 'eval' | 'evalLimit'
> & { batch: number };

export interface SensitivityEvents {
  warning?(message: string): void;
  /** Before each pass: `k` of `total` (the whole model first, then each unit). */
  pass?(k: number, total: number, what: string): void;
}

export interface SensitivityReport {
  model: string;
  w_bits: number;
  a_bits: number;
  eight_bit_head_stem: boolean;
  bit_rules?: BitRule[];
  int8_kernels?: boolean;
  /** Calibration images compared on. */
  images: number;
  /** Top-1 of the float model on the labelled data, when given, and how many images. */
  fp_top1?: number;
  n?: number;
  /** Every unit quantized. */
  all: Divergence;
  /** In network order. */
  units: UnitSensitivity[];
}

/** The whole analysis: load, calibrate scale-only, then one pass with everything and one per unit quantized. */
export async function analyze(o: SensitivityOptions, ev: SensitivityEvents = {}): Promise<SensitivityReport> {
  const { loaded } = await loadForCalibration(o, ev.warning);
  const channels = imageChannels(loaded.onnx);
  const evalData = o.eval === undefined ? undefined : await openDataset(o.eval, { channels });
  if (evalData) for (const w of await checkEvalData(loaded.fp, evalData, o.transform, o.evalLimit)) ev.warning?.(w);
  const calib = await loadCalibration(o.calib, o.numSamples, o.transform, o.seed, channels, (m) => ev.warning?.(m));
  const qmodel = new QuantizedModel(loaded.folded, loaded.units, { wBits: o.wBits, aBits: o.aBits, eightBitHeadStem: o.eightBitHeadStem, bitRules: o.bitRules ?? [], int8Kernels: !!o.int8Kernels });
  const g = loaded.folded;
  let fpLogits: E.Tensor | undefined;
  try {
    checkInputShape(inputChw(g), calib.images.shape.slice(1), 'the calibration images are', calib.preprocessed);
    qmodel.initWeights('mse');
    qmodel.initActs(calib.images, 'mse', 256);
    fpLogits = capture(loaded.fp, calib.images, g.input.name, g.output.name, o.batch);
    const top1 = async (hooks?: RunHooks) =>
      evalData ? (await evaluateGraph(hooks ? g : loaded.fp, evalData, { transform: o.transform, batchSize: o.batch, limit: o.evalLimit, hooks })) : undefined;
    const total = loaded.units.length + 1;
    ev.pass?.(0, total, 'all units');
    const all: Divergence = divergence(g, calib.images, fpLogits, qmodel.hooks({ weights: true, acts: true }), o.batch);
    const fp = await top1();
    const allAcc = await top1(qmodel.hooks({ weights: true, acts: true }));
    if (allAcc) all.top1 = allAcc.top1;
    const units: UnitSensitivity[] = [];
    for (const [k, u] of loaded.units.entries()) {
      ev.pass?.(k + 1, total, u.name);
      const alone = (on: { weights: boolean; acts: boolean }) => qmodel.hooks(on, { units: new Set([u.name]) });
      const against = (hooks: RunHooks) => divergence(g, calib.images, fpLogits!, hooks, o.batch);
      const layers = u.nodes.filter((n) => isWeightLayer(n) && g.constants.has(n.inputs[1] ?? '')).map((n) => n.name);
      const weights = layers.some((l) => qmodel.weights.has(l));
      const acts = [...qmodel.acts.values()].some((a) => a.site.unit === u.name);
      const acc = await top1(alone({ weights: true, acts: true }));
      // A unit with only float weights or only float activations: one of the two passes would quantize nothing.
      const both = weights || acts ? against(alone({ weights: true, acts: true })) : UNCHANGED;
      units.push({
        unit: u.name, kind: u.kind, layers,
        pattern: unitPattern(g, layers, u.nodes.map((n) => n.name), u.kind === 'block' ? producerOf(g, u.output) : undefined),
        ...both, ...(acc ? { top1: acc.top1 } : {}),
        weightsOnly: !weights ? UNCHANGED : !acts ? both : against(alone({ weights: true, acts: false })),
        actsOnly: !acts ? UNCHANGED : !weights ? both : against(alone({ weights: false, acts: true })),
      });
    }
    return {
      model: o.model, w_bits: o.wBits, a_bits: o.aBits, eight_bit_head_stem: o.eightBitHeadStem, ...(o.bitRules?.length ? { bit_rules: o.bitRules } : {}), ...(o.int8Kernels ? { int8_kernels: true } : {}),
      images: calib.count, ...(fp ? { fp_top1: fp.top1, n: fp.n } : {}), all, units,
    };
  } finally {
    fpLogits?.dispose();
    calib.images.dispose();
    qmodel.dispose();
  }
}
