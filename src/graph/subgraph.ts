/** Node slices of a graph: what computes one value from another. */
import type { OnnxNode } from '../onnx/ir.js';

interface GraphView {
  nodes: readonly OnnxNode[];
  producer: ReadonlyMap<string, OnnxNode>;
}

interface FullGraphView extends GraphView {
  consumers: ReadonlyMap<string, readonly OnnxNode[]>;
  constants: ReadonlyMap<string, unknown>;
}

/** The nodes (in graph order) that compute `output` from the values in `from` (and constants). */
export function nodesBetween(g: GraphView, from: readonly string[], output: string): OnnxNode[] {
  const stop = new Set(from);
  const needed = new Set<OnnxNode>();
  const stack = [output];
  while (stack.length) {
    const v = stack.pop()!;
    if (stop.has(v)) continue;
    const p = g.producer.get(v);
    if (!p || needed.has(p)) continue;
    needed.add(p);
    stack.push(...p.inputs.filter(Boolean));
  }
  return g.nodes.filter((n) => needed.has(n));
}

/** What computes `output` onwards from the value `from`: the nodes after it, and the values computed before it that they read too. */
export interface Tail {
  nodes: OnnxNode[];
  /** Values the tail reads besides `from` and constants: connections that go around it (DenseNet's concatenations). */
  sideInputs: string[];
}

/** The part of the graph downstream of `from` that `output` needs; values from elsewhere become side inputs. */
export function tailFrom(g: FullGraphView, from: string, output: string): Tail {
  const downstream = new Set<OnnxNode>();
  const stack = [from];
  while (stack.length) {
    for (const c of g.consumers.get(stack.pop()!) ?? []) {
      if (downstream.has(c)) continue;
      downstream.add(c);
      stack.push(...c.outputs);
    }
  }
  const nodes = nodesBetween(g, [from], output).filter((n) => downstream.has(n));
  const produced = new Set(nodes.flatMap((n) => n.outputs));
  const sideInputs = [...new Set(nodes.flatMap((n) => n.inputs))].filter((v) => v !== '' && v !== from && !produced.has(v) && !g.constants.has(v));
  return { nodes, sideInputs };
}
