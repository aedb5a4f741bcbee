/** A quantized model in simulation: the quantizers of a placement, plugged into the executor as hooks. */
import { readFileSync } from 'node:fs';
import * as E from '../engine/index.js';
import { execute, type Graph, type RunHooks, type Unit } from '../graph/index.js';
import type { OnnxNode } from '../onnx/ir.js';
import { SAME_GRID_OPS } from '../onnx/grid.js';
import { placeQuantizers, type BitRule, type Placement, type PlacementOptions, type ActSite, type WeightSite } from './placement.js';
import { UniformQuantizer, type InitMethod, type UniformQuantizerState } from './uniform.js';

export interface QuantizerSwitches {
  weights: boolean;
  acts: boolean;
}

/** What `--save-qparams` writes and `eval --qparams` reads. */
export interface QParamsFile {
  format: 'pdquant-qparams';
  version: 1;
  wBits: number;
  aBits: number;
  eightBitHeadStem: boolean;
  /** Other bit-widths for some layers (absent: none). */
  bitRules?: BitRule[];
  /** The placement and grids for onnxruntime's integer kernels (absent: false). */
  int8Kernels?: boolean;
  weights: Record<string, UniformQuantizerState & { weight: string; intWeights?: string }>;
  acts: Record<string, UniformQuantizerState>;
}

/** Reads and checks a quantization-parameters file. */
export function readQParams(path: string): QParamsFile {
  let file: QParamsFile;
  try {
    file = JSON.parse(readFileSync(path, 'utf8')) as QParamsFile;
  } catch (e) {
    throw new Error(`Cannot read quantization parameters ${path}: ${(e as Error).message}`);
  }
  if (file?.format !== 'pdquant-qparams') throw new Error(`${path} is not a pdquant quantization-parameters file`);
  return file;
}

export interface WeightQuantizer {
  site: WeightSite;
  q: UniformQuantizer;
  /** The fake-quantized weight that replaces the FP one; default: nearest rounding at q's scales. */
  weight?: () => E.Tensor;
  /** Set once the rounding is learned and fixed: the dequantized weight and its integer codes. */
  hard?: { weight: E.Tensor; intWeights: E.Tensor };
}

export interface ActQuantizer {
  site: ActSite;
  q: UniformQuantizer;
  /** Replaces the default forward (e.g. a QDrop-mode quantizer during reconstruction). */
  forward?: (x: E.Tensor) => E.Tensor;
}

export class QuantizedModel {
  readonly graph: Graph;
  readonly placement: Placement;
  readonly weights = new Map<string, WeightQuantizer>();
  readonly acts = new Map<string, ActQuantizer>();
  readonly options: Required<PlacementOptions>;
  /**
   * With int8Kernels: per weight layer whose input lies on an activation quantizer's grid, that quantizer's value.
   * Its bias is then rounded to the grid of input scale × weight scale, as an integer kernel's accumulator holds it.
   */
  readonly biasInputs = new Map<string, string>();

  /** Places the quantizers (uninitialised) on a BN-folded graph. */
  constructor(graph: Graph, units: readonly Unit[], o: PlacementOptions) {
    this.graph = graph;
    this.options = { eightBitHeadStem: true, bitRules: [], int8Kernels: false, ...o };
    this.placement = placeQuantizers(graph, units, this.options);
    if (this.options.int8Kernels) checkInt8Kernels(this.placement);
    // Integer kernels take weights as signed 8-bit codes with zero point 0: an 8-bit grid keeps its zero point at 128
    // (then q − 128 fits); a narrower grid fits as it is (q − z lies within ±(2^b − 1)).
    const symmetric = (bits: number) => this.options.int8Kernels && bits === 8;
    for (const site of this.placement.weights) this.weights.set(site.node, { site, q: new UniformQuantizer({ bits: site.bits, channelWise: true, symmetric: symmetric(site.bits) }) });
    for (const site of this.placement.acts) this.acts.set(site.value, { site, q: new UniformQuantizer({ bits: site.bits }) });
    if (this.options.int8Kernels) {
      const producer = new Map(graph.nodes.flatMap((n) => n.outputs.map((v) => [v, n] as const)));
      for (const site of this.placement.weights) {
        const node = graph.node(site.node);
        if (!graph.params.has(node.inputs[2] ?? '')) continue;
        for (let v: string | undefined = node.inputs[0]; v !== undefined; ) {
          if (this.acts.has(v)) {
            this.biasInputs.set(site.node, v);
            break;
          }
          const p = producer.get(v);
          v = p && SAME_GRID_OPS.has(p.opType) ? p.inputs[0] : undefined;
        }
      }
    }
  }

  /** The FP weight of a quantized layer. */
  fpWeight(node: string): E.Tensor {
    return this.graph.params.get(this.weights.get(node)!.site.weight)!;
  }

  /**
   * With int8Kernels, a layer's bias b as integer codes round(b / grid) on its grid [C] (input scale × weight scale),
   * what the simulation uses (codes × grid) and the export writes; undefined where the bias stays float.
   */
  quantizedBias(node: string, b: E.Tensor): { codes: E.Tensor; grid: E.Tensor } | undefined {
    const v = this.biasInputs.get(node);
    if (v === undefined) return undefined;
    const grid = this.weights.get(node)!.q.delta.reshape([-1]).mul(this.acts.get(v)!.q.delta.detach());
    return { codes: b.div(grid).round(), grid };
  }

  /** Sets every weight quantizer's scales from its FP weight. */
  initWeights(method: InitMethod): void {
    for (const [node, w] of this.weights) if (!w.q.initialized) w.q.init(this.fpWeight(node), method);
  }

  /**
   * Executor hooks with the chosen quantizers on. With `lazyInit`, an activation quantizer met for the
   * first time is initialised on the value it sees (network order, on already-quantized inputs). Values in `skip`
   * stay as they are; with `units`, only the quantizers of those units are on. A quantizer on a fed value (the image,
   * with int8Kernels) applies too unless `feeds` is false (a unit's run, which quantizes its own input itself).
   */
  hooks(on: QuantizerSwitches, o: { lazyInit?: InitMethod; skip?: ReadonlySet<string>; units?: ReadonlySet<string>; feeds?: boolean } = {}): RunHooks {
    const hooks: RunHooks = { feeds: o.feeds ?? true };
    if (on.weights)
      hooks.weight = (node: OnnxNode, w: E.Tensor) => {
        const wq = this.weights.get(node.name);
        if (!wq || (o.units && !o.units.has(wq.site.unit))) return w;
        return wq.weight ? wq.weight() : wq.q.forward(w);
      };
    if (on.weights && this.biasInputs.size)
      hooks.bias = (node: OnnxNode, b: E.Tensor) => {
        const wq = this.weights.get(node.name);
        if (!wq || (o.units && !o.units.has(wq.site.unit))) return b;
        const q = this.quantizedBias(node.name, b);
        return q ? q.codes.mul(q.grid).detach() : b;
      };
    if (on.acts)
      hooks.value = (name: string, t: E.Tensor) => {
        const aq = this.acts.get(name);
        if (!aq || o.skip?.has(name) || (o.units && !o.units.has(aq.site.unit))) return t;
        if (!aq.q.initialized) {
          if (!o.lazyInit) throw new Error(`activation quantizer at ${name} is not initialised`);
          aq.q.init(t, o.lazyInit);
        }
        return aq.forward ? aq.forward(t) : aq.q.forward(t);
      };
    return hooks;
  }

  /** Logits of the quantized (or partly quantized) model. */
  forward(x: E.Tensor, on: QuantizerSwitches): E.Tensor {
    return E.tidy(() => {
      const g = this.graph;
      return execute(g, { feeds: new Map([[g.input.name, x]]), outputs: [g.output.name], hooks: this.hooks(on) }).get(g.output.name)!;
    });
  }

  /**
   * Initialises every activation quantizer in one pass over the first `rows` images of `calib` (all by default;
   * weights quantized), as the reference does.
   */
  initActs(calib: E.Tensor, method: InitMethod, rows = calib.shape[0]!): void {
    E.noGrad(() =>
      E.tidy(() => {
        const g = this.graph;
        const x = calib.slice(0, 0, Math.min(rows, calib.shape[0]!));
        execute(g, { feeds: new Map([[g.input.name, x]]), outputs: [g.output.name], hooks: this.hooks({ weights: true, acts: true }, { lazyInit: method }) });
      }),
    );
  }

  /** Fixes a layer's weight to learned integer codes q: ŵ = (q − z)·δ. */
  setHardWeight(node: string, intWeights: E.Tensor): void {
    const wq = this.weights.get(node)!;
    if (wq.hard) E.dispose(wq.hard);
    const weight = E.keep(E.noGrad(() => E.tidy(() => intWeights.sub(wq.q.zeroPoint).mul(wq.q.delta))));
    wq.hard = { weight, intWeights: E.keep(intWeights) };
    wq.weight = () => weight;
  }

  /** Parameters of every initialised quantizer (learned integer weights included, base64 of uint8 codes). */
  state(): QParamsFile {
    const weights: QParamsFile['weights'] = {};
    for (const [node, w] of this.weights) {
      if (!w.q.initialized) continue;
      const codes = w.hard ? Buffer.from(Uint8Array.from(w.hard.intWeights.data() as Float32Array)).toString('base64') : undefined;
      weights[node] = { ...w.q.state(), weight: w.site.weight, ...(codes ? { intWeights: codes } : {}) };
    }
    const acts: QParamsFile['acts'] = {};
    for (const [v, a] of this.acts) if (a.q.initialized) acts[v] = a.q.state();
    const rules = this.options.bitRules.length ? { bitRules: [...this.options.bitRules] } : {};
    const kernels = this.options.int8Kernels ? { int8Kernels: true } : {};
    return { format: 'pdquant-qparams', version: 1, wBits: this.options.wBits, aBits: this.options.aBits, eightBitHeadStem: this.options.eightBitHeadStem, ...rules, ...kernels, weights, acts };
  }

  /** A model simulating saved parameters: the placement they were saved with (bits, 8-bit head and stem), then load(). */
  static fromQParams(graph: Graph, units: readonly Unit[], file: QParamsFile): QuantizedModel {
    const m = new QuantizedModel(graph, units, { wBits: file.wBits, aBits: file.aBits, eightBitHeadStem: file.eightBitHeadStem, bitRules: file.bitRules ?? [], int8Kernels: file.int8Kernels ?? false });
    m.load(file);
    const missing = [...[...m.weights.values()].filter((w) => !w.q.initialized).map((w) => `weight layer ${w.site.node}`), ...[...m.acts.values()].filter((a) => !a.q.initialized).map((a) => `activation ${a.site.value}`)];
    if (missing.length) {
      m.dispose();
      throw new Error(`the quantization parameters have nothing for ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ` and ${missing.length - 3} more` : ''}: they were saved for another model or by an earlier pdquant that placed quantizers differently; quantize again`);
    }
    return m;
  }

  /** Restores quantizer parameters saved by state(); names must match this model's placement. */
  load(file: QParamsFile): void {
    if (file.format !== 'pdquant-qparams') throw new Error('not a pdquant quantization-parameters file');
    for (const [node, s] of Object.entries(file.weights)) {
      const w = this.weights.get(node);
      if (!w) throw new Error(`quantization parameters name weight layer ${node}, which this model does not have`);
      w.q.load(s);
      if (s.intWeights) {
        const shape = this.fpWeight(node).shape;
        this.setHardWeight(node, E.tensor(Float32Array.from(Buffer.from(s.intWeights, 'base64')), shape));
      }
    }
    for (const [v, s] of Object.entries(file.acts)) {
      const a = this.acts.get(v);
      if (!a) throw new Error(`quantization parameters name activation ${v}, which this model does not quantize`);
      a.q.load(s);
    }
  }

  dispose(): void {
    for (const w of this.weights.values()) {
      w.q.dispose();
      if (w.hard) E.dispose(w.hard);
    }
    for (const a of this.acts.values()) a.q.dispose();
  }
}

/**
 * Integer kernels read and write 8-bit codes over their whole range; a narrower activation grid needs a Clip in the
 * export, which stops onnxruntime from fusing the layer into QLinearConv.
 */
function checkInt8Kernels(p: Placement): void {
  const narrow = p.acts.filter((a) => a.bits !== 8);
  if (narrow.length)
    throw new RangeError(`int8 kernels need 8-bit activations, but ${narrow.length} activation quantizer${narrow.length > 1 ? 's are' : ' is'} at ${[...new Set(narrow.map((a) => a.bits))].join('/')} bits (first: after ${narrow[0]!.value}); use 8-bit activations (--a 8; the weights may have 2..8 bits)`);
}
