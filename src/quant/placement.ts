/** Where quantizers go on a BN-folded graph (PDQUANT.md §3, the QDrop/BRECQ convention). */
import type { OnnxNode } from '../onnx/ir.js';
import { activationAfter, isWeightLayer, namePattern, type Unit } from '../graph/index.js';

export interface WeightSite {
  /** The Conv/Gemm/MatMul node. */
  node: string;
  /** Its weight initializer. */
  weight: string;
  bits: number;
  unit: string;
}

export interface ActSite {
  /** The value after which the quantizer sits. */
  value: string;
  bits: number;
  unit: string;
  /** Why it is there (for inspect). */
  role: 'layer output' | 'block output' | 'layer input' | 'add input';
}

export interface Placement {
  weights: WeightSite[];
  acts: ActSite[];
}

/**
 * Other bit-widths for some layers: the weights of each weight layer whose node name matches (a prefix, or a regular
 * expression after 're:'), and the activation quantizer after it (after its activation), on the block output a
 * matching node computes, or on a matching layer's input. Applied in order after the defaults, so a later rule wins.
 */
export interface BitRule {
  match: string;
  wBits: number;
  aBits: number;
}

/** A bit-width that means no quantizer: the values stay float32. */
export const FLOAT_BITS = 32;
/** Activations at FLOAT_BITS: weight-only quantization ("A32"). */
export const FLOAT_ACTIVATIONS = FLOAT_BITS;
/** Weights at FLOAT_BITS: activation-only quantization ("W32"), or one layer's weights kept float by a bit rule. */
export const FLOAT_WEIGHTS = FLOAT_BITS;
/** Whether `b` is a bit-width of weights or activations: an integer 2..8, or FLOAT_BITS (no quantizer). */
export const isBitWidth = (b: number): boolean => Number.isInteger(b) && ((b >= 2 && b <= 8) || b === FLOAT_BITS);
/** Whether these bits place no quantizer at all: weights and activations float, and every bit rule too. */
export function quantizesNothing(wBits: number, aBits: number, bitRules: readonly { wBits: number; aBits: number }[] = []): boolean {
  return [{ wBits, aBits }, ...bitRules].every((r) => r.wBits === FLOAT_BITS && r.aBits === FLOAT_BITS);
}

export interface PlacementOptions {
  /** 2..8, or FLOAT_WEIGHTS for none (a bit rule may also say FLOAT_WEIGHTS to keep a layer's weights float). */
  wBits: number;
  /** 2..8, or FLOAT_ACTIVATIONS for none (a bit rule may also say FLOAT_ACTIVATIONS to take quantizers away). */
  aBits: number;
  /** First and last weight layers and the classifier's input at 8 bits (default true). */
  eightBitHeadStem?: boolean;
  bitRules?: readonly BitRule[];
  /**
   * Quantizers also where onnxruntime's integer kernels need them and §3 has none: on the first layer's input (the
   * image) and on each input of a residual addition that no quantizer made (a branch's last layer), so that every
   * convolution and addition reads and writes integer codes (default false).
   */
  int8Kernels?: boolean;
}

interface GraphView {
  nodes: readonly OnnxNode[];
  constants: ReadonlyMap<string, unknown>;
  output: { name: string };
}

/**
 * Ops whose output a layer may read as quantized when their inputs are: they pick, move or clamp values (and pooling,
 * whose average §3's models feed to the classifier as it is).
 */
const GRID_KEEPING = new Set([
  'Relu', 'Clip', 'MaxPool', 'AveragePool', 'GlobalAveragePool', 'GlobalMaxPool', 'Flatten', 'Reshape', 'Squeeze', 'Unsqueeze',
  'Transpose', 'Identity', 'Dropout', 'Pad', 'Slice', 'Gather', 'Concat', 'Cast', 'ReduceMean',
]);

/** Ops through which a block's branch may reach its addition and still be quantized only after it. */
const BRANCH_PASSING = new Set(['Transpose', 'Reshape', 'Identity', 'Dropout', 'Mul', 'Div']);

export function placeQuantizers(g: GraphView, units: readonly Unit[], o: PlacementOptions): Placement {
  const consumers = new Map<string, OnnxNode[]>();
  const producer = new Map<string, OnnxNode>();
  for (const n of g.nodes) {
    n.inputs.forEach((i) => consumers.set(i, [...(consumers.get(i) ?? []), n]));
    n.outputs.forEach((v) => producer.set(v, n));
  }
  const unitOf = new Map<OnnxNode, Unit>();
  for (const u of units) for (const n of u.nodes) unitOf.set(n, u);
  const layers = g.nodes.filter((n) => isWeightLayer(n) && g.constants.has(n.inputs[1] ?? ''));
  const head8 = o.eightBitHeadStem ?? true;
  const first = layers[0];
  const last = layers[layers.length - 1];

  const weights = layers.map((n) => ({
    node: n.name,
    weight: n.inputs[1]!,
    bits: head8 && (n === first || n === last) ? Math.max(o.wBits, 8) : o.wBits, // float weights stay float
    unit: unitOf.get(n)?.name ?? '',
  }));

  const acts = new Map<string, ActSite>();
  /** The nodes a bit rule may name to reach an activation quantizer. */
  const actNodes = new Map<string, string[]>();
  const isResidualAdd = (n: OnnxNode) => n.opType === 'Add' && n.inputs.every((i) => !g.constants.has(i));
  /** Where v leads through ops that only move or scale it, each its only reader (v itself when there are none). */
  const branchEnd = (v: string): string => {
    for (;;) {
      const next = consumers.get(v) ?? [];
      const n = next[0];
      const computed = n?.inputs.filter((i) => i !== '' && !g.constants.has(i)) ?? [];
      if (next.length !== 1 || !BRANCH_PASSING.has(n!.opType) || computed.length !== 1 || n!.outputs.length !== 1) return v;
      v = n!.outputs[0]!;
    }
  };
  for (const layer of layers) {
    if (layer === last) continue;
    // The value after the layer's activation (the layer output itself when it has none).
    const act = activationAfter(layer.outputs[0]!, (x) => consumers.get(x) ?? []);
    const v = act.length ? act[act.length - 1]!.outputs[0]! : layer.outputs[0]!;
    const unit = unitOf.get(layer);
    if (!unit) continue;
    // Inside a block, a branch that ends in the block's addition is quantized after the addition instead, also when it
    // gets there through a layout change or a per-channel scale (ConvNeXt's permute and layer scale).
    if (v !== unit.output && (consumers.get(branchEnd(v)) ?? []).some((c) => isResidualAdd(c) && unitOf.get(c) === unit)) continue;
    acts.set(v, { value: v, bits: o.aBits, unit: unit.name, role: unit.kind === 'block' && v === unit.output ? 'block output' : 'layer output' });
    actNodes.set(v, [layer.name, ...act.map((n) => n.name)]);
  }
  for (const u of units) {
    if (u.kind === 'block' && u.output !== g.output.name) {
      acts.set(u.output, { value: u.output, bits: o.aBits, unit: u.name, role: 'block output' });
      actNodes.set(u.output, [...(actNodes.get(u.output) ?? []), producer.get(u.output)!.name]);
    }
  }
  // Beyond §3's models, a layer can read values that no quantizer made: squeeze-and-excitation's product of two
  // activations, or a BN + activation that no layer precedes (pre-activation ResNets, DenseNet), which stays a float
  // op. Such a layer gets a quantizer on its input, so it computes on integers as deployed.
  const afterLayer = new Set<string>();
  for (const n of g.nodes) if (isWeightLayer(n) || n.inputs.some((i) => afterLayer.has(i))) n.outputs.forEach((v) => afterLayer.add(v));
  const onGrid = new Map<string, boolean>();
  const readsQuantized = (v: string): boolean => {
    if (acts.has(v) || g.constants.has(v)) return true; // a quantizer's output, a constant
    if (!afterLayer.has(v)) return !o.int8Kernels; // the image (or what is computed from it alone)
    if (!onGrid.has(v)) {
      const p = producer.get(v);
      onGrid.set(v, !!p && GRID_KEEPING.has(p.opType) && p.inputs.every((i) => i === '' || readsQuantized(i)));
    }
    return onGrid.get(v)!;
  };
  const unitIndex = new Map(units.map((u, i) => [u, i]));
  if (o.int8Kernels) {
    for (const add of g.nodes.filter(isResidualAdd)) {
      for (const v of add.inputs) {
        if (readsQuantized(v)) continue;
        const p = producer.get(v);
        const owner = (p && unitOf.get(p)) ?? unitOf.get(add);
        if (owner) acts.set(v, { value: v, bits: o.aBits, unit: owner.name, role: 'add input' });
        actNodes.set(v, [(p ?? add).name]);
      }
    }
    onGrid.clear(); // values downstream of the new quantizers may read quantized now
  }
  for (const layer of layers) {
    const v = layer.inputs[0]!;
    if (acts.get(v)?.role === 'layer input') actNodes.get(v)!.push(layer.name);
    if (acts.has(v) || readsQuantized(v)) continue;
    // Calibrated by the unit that computes it, else by the first unit that reads it (as its input).
    const p = producer.get(v);
    const readers = (consumers.get(v) ?? []).map((c) => unitOf.get(c)).filter((u): u is Unit => !!u && u.input === v);
    const owner = (p && unitOf.get(p)) ?? readers.sort((a, b) => unitIndex.get(a)! - unitIndex.get(b)!)[0];
    if (owner) acts.set(v, { value: v, bits: o.aBits, unit: owner.name, role: 'layer input' });
    actNodes.set(v, [...(actNodes.get(v) ?? []), layer.name]);
  }
  // The classifier's input at 8 bits: every quantizer from the last layer's input back through ops with one computed
  // input that are not weight layers (pooling, flatten, dropout; a pre-activation network's final BN and ReLU).
  if (head8 && last) {
    for (let v: string | undefined = last.inputs[0]; v !== undefined; ) {
      const site = acts.get(v);
      if (site) site.bits = Math.max(site.bits, 8); // float activations (weight-only) stay float
      const p = producer.get(v);
      const computed = p && !isWeightLayer(p) ? p.inputs.filter((i) => i !== '' && !g.constants.has(i)) : [];
      v = computed.length === 1 ? computed[0] : undefined;
    }
  }
  for (const rule of o.bitRules ?? []) {
    const test = namePattern(`bit rule ${rule.match}=${rule.wBits}/${rule.aBits}`, rule.match);
    const ws = weights.filter((w) => test(w.node));
    const as = [...acts.values()].filter((a) => (actNodes.get(a.value) ?? []).some(test));
    if (ws.length === 0 && as.length === 0)
      throw new Error(`bit rule ${rule.match}=${rule.wBits}/${rule.aBits} matches no weight layer or activation quantizer (node names look like ${layers.slice(0, 2).map((n) => `'${n.name}'`).join(', ')}; pdquant inspect --quant lists them)`);
    for (const w of ws) w.bits = rule.wBits;
    for (const a of as) a.bits = rule.aBits;
  }
  const order = new Map<string, number>();
  g.nodes.forEach((n, i) => n.outputs.forEach((v) => order.set(v, i)));
  return { weights: weights.filter((w) => w.bits !== FLOAT_WEIGHTS), acts: [...acts.values()].filter((a) => a.bits !== FLOAT_ACTIVATIONS).sort((a, b) => (order.get(a.value) ?? -1) - (order.get(b.value) ?? -1)) };
}
