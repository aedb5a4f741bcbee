/**
 * Splits a graph into reconstruction units (PDQUANT.md §4): a residual or inverted-residual block is
 * one unit, every other conv/linear (with its BN and activation) is a layer unit. Blocks are found from
 * the module paths PyTorch records, in node names ("/layer1/layer1.0/conv1/Conv") or node metadata (dynamo);
 * without them, from the residual additions of the graph and from chains that end in a linear bottleneck.
 */
import type { OnnxNode } from '../onnx/ir.js';
import { isWeightLayer } from './executor.js';
import { ACTIVATIONS, activationAfter } from './activation.js';

export interface Unit {
  name: string;
  kind: 'layer' | 'block';
  /** Nodes of the unit in topological order. */
  nodes: OnnxNode[];
  /** The one value the unit reads. */
  input: string;
  /** The one value it hands on (after its activation; after the addition for blocks). */
  output: string;
}

/** A user-given grouping: unit name → node-name prefixes, or regular expressions written "re:<pattern>". */
export type UnitOverride = { name: string; kind?: 'layer' | 'block'; match: string[] }[];

interface GraphView {
  nodes: readonly OnnxNode[];
  constants: ReadonlyMap<string, unknown>;
}

/**
 * What a weight layer's unit takes along after it: BN nodes and its activation (one op, or SiLU's Sigmoid and Mul),
 * none of them in `taken`.
 */
function followers(layer: OnnxNode, readers: (v: string) => readonly OnnxNode[], taken: { has(n: OnnxNode): boolean }): OnnxNode[] {
  const chain: OnnxNode[] = [];
  for (let v = layer.outputs[0]!; ; ) {
    const next = readers(v);
    if (next.length === 1 && next[0]!.opType === 'BatchNormalization' && !taken.has(next[0]!)) {
      chain.push(next[0]!);
      v = next[0]!.outputs[0]!;
      continue;
    }
    const act = activationAfter(v, readers);
    if (act.length && act.every((n) => !taken.has(n))) chain.push(...act);
    return chain;
  }
}

/**
 * The node's module path: the one its exporter recorded (dynamo=True), else from its name as the TorchScript exporter
 * writes it, "/layer1/layer1.0/conv1/Conv" → ["layer1", "layer1.0", "conv1"]; [] when there is neither.
 */
export function modulePath(node: OnnxNode): string[] {
  if (node.scope) return node.scope;
  if (!node.name.startsWith('/')) return [];
  const parts = node.name.split('/').filter(Boolean);
  return parts.slice(0, -1);
}

function isResidualAdd(g: GraphView, n: OnnxNode): boolean {
  return n.opType === 'Add' && n.inputs.length === 2 && n.inputs.every((i) => !g.constants.has(i));
}

/** Module prefixes (as joined paths) that are blocks. */
function blockPrefixes(g: GraphView): Set<string> | null {
  const adds = g.nodes.filter((n) => isResidualAdd(g, n));
  if (adds.length === 0) return new Set();
  const depth = modulePath(adds[0]!).length;
  if (depth === 0 || adds.some((a) => modulePath(a).length !== depth)) return null;
  const prefixes = new Set<string>();
  const weightCount = new Map<string, number>();
  for (const n of g.nodes) {
    const p = modulePath(n);
    if (p.length > depth && isWeightLayer(n)) {
      const key = p.slice(0, depth).join('/');
      weightCount.set(key, (weightCount.get(key) ?? 0) + 1);
    }
  }
  for (const a of adds) prefixes.add(modulePath(a).join('/'));
  // Siblings without a skip connection (MobileNetV2/MNasNet inverted residuals) are blocks too.
  for (const [key, count] of weightCount) if (count >= 2) prefixes.add(key);
  return prefixes;
}

function blockOf(n: OnnxNode, prefixes: Set<string>): string | undefined {
  const p = modulePath(n);
  for (let d = p.length; d > 0; d--) {
    const key = p.slice(0, d).join('/');
    if (prefixes.has(key)) return key;
  }
  return undefined;
}

/** Groups from the graph alone: each residual Add with everything between its fork and itself. */
function structuralBlocks(g: GraphView): Map<OnnxNode, string> {
  const producer = new Map<string, OnnxNode>();
  g.nodes.forEach((n) => n.outputs.forEach((o) => producer.set(o, n)));
  const index = new Map(g.nodes.map((n, i) => [n, i]));
  const owner = new Map<OnnxNode, string>();
  g.nodes.forEach((add, k) => {
    if (!isResidualAdd(g, add)) return;
    // The block starts after the earliest producer among the Add's two branches' sources.
    const ancestors = (start: string) => {
      const seen = new Set<OnnxNode>();
      const stack = [start];
      while (stack.length) {
        const p = producer.get(stack.pop()!);
        if (p && !seen.has(p)) {
          seen.add(p);
          stack.push(...p.inputs.filter((i) => !g.constants.has(i)));
        }
      }
      return seen;
    };
    const a = ancestors(add.inputs[0]!), b = ancestors(add.inputs[1]!);
    const common = [...a].filter((n) => b.has(n));
    const fork = common.reduce((best, n) => (index.get(n)! > index.get(best)! ? n : best), common[0]!);
    const from = fork ? index.get(fork)! + 1 : 0;
    const name = `block${owner.size === 0 ? 0 : new Set(owner.values()).size}`;
    for (let i = from; i <= k; i++) if (!owner.has(g.nodes[i]!)) owner.set(g.nodes[i]!, name);
  });
  return owner;
}

/**
 * Without module paths, inverted-residual blocks that have no skip connection (MobileNetV2, MNasNet) show no
 * residual addition; they are found as chains of weight layers, each feeding only the next, that end in a layer
 * without activation (the linear bottleneck). The first and last weight layers of the network stay layers, as the
 * reference keeps the stem and the classifier.
 */
function bottleneckBlocks(g: GraphView, taken: Map<OnnxNode, string>): Map<OnnxNode, string> {
  const consumers = new Map<string, OnnxNode[]>();
  g.nodes.forEach((n) => n.inputs.forEach((i) => consumers.set(i, [...(consumers.get(i) ?? []), n])));
  /** The layer with its BN/activation followers, as a layer unit would take it. */
  const chainOf = (layer: OnnxNode): OnnxNode[] => [layer, ...followers(layer, (v) => consumers.get(v) ?? [], taken)];
  const layers = g.nodes.filter(isWeightLayer);
  const found = new Map<OnnxNode, string>();
  let run: OnnxNode[][] = [];
  const close = () => {
    const name = `bottleneck${new Set(found.values()).size}`;
    if (run.length >= 2) for (const n of run.flat()) found.set(n, name);
    run = [];
  };
  for (const layer of layers.slice(1, -1)) {
    if (taken.has(layer)) {
      run = [];
      continue;
    }
    const chain = chainOf(layer);
    const previous = run[run.length - 1];
    const last = previous?.[previous.length - 1];
    const follows = last !== undefined && (consumers.get(last.outputs[0]!) ?? []).length === 1 && layer.inputs[0] === last.outputs[0];
    if (!follows) run = [];
    run.push(chain);
    if (!chain.some((n) => ACTIVATIONS.has(n.opType))) close();
  }
  return found;
}

/** One unit per weight layer with its BN/activation chain (AdaRound's layer-wise reconstruction). */
export function partitionLayers(g: GraphView): Unit[] {
  return partition(g, []);
}

/** A node-name test for a user's pattern: a name prefix, or a regular expression after 're:'. `what` names it in errors. */
export function namePattern(what: string, pattern: string): (name: string) => boolean {
  if (!pattern.startsWith('re:')) return (name) => name.startsWith(pattern);
  try {
    const re = new RegExp(pattern.slice(3));
    return (name) => re.test(name);
  } catch (e) {
    throw new Error(`${what}: '${pattern}' is not a regular expression (${(e as Error).message})`);
  }
}

/** The units of a graph in network order (an empty override gives layer units only). */
export function partition(g: GraphView, override?: UnitOverride): Unit[] {
  const owner = new Map<OnnxNode, { name: string; kind: 'layer' | 'block' }>();
  const groups = new Map<string, { name: string; kind: 'layer' | 'block' }>();
  const group = (name: string, kind: 'layer' | 'block') => {
    if (!groups.has(name)) groups.set(name, { name, kind });
    return groups.get(name)!;
  };
  if (override) {
    const tests = new Map(override.flatMap((o) => o.match.map((pat) => [pat, namePattern(`unit ${o.name}`, pat)] as const)));
    for (const n of g.nodes) {
      const u = override.find((o) => o.match.some((p) => tests.get(p)!(n.name)));
      if (u) owner.set(n, group(u.name, u.kind ?? 'block'));
    }
    // A pattern that matches nothing is a typo or another model's names, not a wish for an empty unit.
    for (const o of override)
      for (const pat of o.match)
        if (!g.nodes.some((n) => tests.get(pat)!(n.name)))
          throw new Error(`unit ${o.name}: '${pat}' matches no node of the model (its node names look like ${g.nodes.slice(0, 2).map((n) => `'${n.name}'`).join(', ')}; pdquant inspect lists them)`);
  } else {
    const prefixes = blockPrefixes(g);
    const named = g.nodes.some((n) => modulePath(n).length > 0);
    if (prefixes && (prefixes.size > 0 || named)) {
      for (const n of g.nodes) {
        const b = blockOf(n, prefixes);
        if (b) owner.set(n, group(b, 'block'));
      }
    } else {
      const structural = structuralBlocks(g);
      for (const [n, name] of bottleneckBlocks(g, structural)) structural.set(n, name);
      // Named in network order, whichever rule found them.
      const order = new Map<string, string>();
      for (const n of g.nodes) {
        const name = structural.get(n);
        if (name !== undefined && !order.has(name)) order.set(name, `block${order.size}`);
      }
      for (const [n, name] of structural) owner.set(n, group(order.get(name)!, 'block'));
    }
    // A block's trailing activation (after the Add) belongs to it even when named outside its module.
    extendWithFollowers(g, owner);
  }
  // Every other weight layer is a layer unit with its BN/activation chain.
  const consumers = new Map<string, OnnxNode[]>();
  g.nodes.forEach((n) => n.inputs.forEach((i) => consumers.set(i, [...(consumers.get(i) ?? []), n])));
  for (const n of g.nodes) {
    if (owner.has(n) || !isWeightLayer(n)) continue;
    const p = modulePath(n);
    const u = group(`layer:${n.name}`, 'layer');
    u.name = p.length ? p[p.length - 1]! : n.name;
    owner.set(n, u);
    for (const f of followers(n, (v) => consumers.get(v) ?? [], owner)) owner.set(f, u);
  }
  return collectUnits(g, owner);
}

function extendWithFollowers(g: GraphView, owner: Map<OnnxNode, { name: string; kind: 'layer' | 'block' }>): void {
  const consumers = new Map<string, OnnxNode[]>();
  g.nodes.forEach((n) => n.inputs.forEach((i) => consumers.set(i, [...(consumers.get(i) ?? []), n])));
  for (const n of g.nodes) {
    if (!isResidualAdd(g, n) || !owner.has(n)) continue;
    const next = consumers.get(n.outputs[0]!) ?? [];
    if (next.length === 1 && (next[0]!.opType === 'Relu' || next[0]!.opType === 'Clip') && !owner.has(next[0]!)) owner.set(next[0]!, owner.get(n)!);
  }
}

function collectUnits(g: GraphView, owner: Map<OnnxNode, { name: string; kind: 'layer' | 'block' }>): Unit[] {
  const groups = new Map<object, OnnxNode[]>();
  for (const n of g.nodes) {
    const u = owner.get(n);
    if (u) groups.set(u, [...(groups.get(u) ?? []), n]);
  }
  const units: Unit[] = [];
  const names = new Set<string>();
  const shortCount = new Map<string, number>();
  for (const u of groups.keys()) {
    const short = (u as { name: string }).name.split('/').pop()!;
    shortCount.set(short, (shortCount.get(short) ?? 0) + 1);
  }
  for (const [u, nodes] of groups) {
    const { kind } = u as { name: string; kind: 'layer' | 'block' };
    // The module's own name ("layer1.0"), or its whole path ("stage2.block0") where that is ambiguous.
    const path = (u as { name: string }).name;
    const short = path.split('/').pop()!;
    const name = shortCount.get(short)! > 1 ? path.replaceAll('/', '.') : short;
    const inside = new Set(nodes.flatMap((n) => n.outputs));
    const inputs = [...new Set(nodes.flatMap((n) => n.inputs).filter((i) => i && !inside.has(i) && !g.constants.has(i)))];
    const outsideUse = new Set(g.nodes.filter((n) => !nodes.includes(n)).flatMap((n) => n.inputs));
    const outputs = [...inside].filter((o) => outsideUse.has(o) || !g.nodes.some((n) => n.inputs.includes(o)));
    if (inputs.length !== 1 || outputs.length !== 1)
      throw new Error(`unit ${name} must read one value and hand on one value, but reads [${inputs.join(', ')}] and hands on [${outputs.join(', ')}]; override the grouping with --units`);
    let unique = name;
    for (let k = 1; names.has(unique); k++) unique = `${name}_${k}`;
    names.add(unique);
    units.push({ name: unique, kind, nodes, input: inputs[0]!, output: outputs[0]! });
  }
  return units;
}
