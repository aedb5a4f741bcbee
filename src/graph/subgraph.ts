/** Node slices of a graph: what computes one value from another. */
import type { OnnxNode } from '../onnx/ir.js';

interface GraphView {
  nodes: readonly OnnxNode[];
  producer: ReadonlyMap<string, OnnxNode>;
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
