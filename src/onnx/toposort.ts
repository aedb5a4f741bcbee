// Topological order of graph nodes, with errors that name a cycle or a missing input.
import { describeNode } from './attrs.js';
import { OnnxError } from './errors.js';
import type { OnnxNode } from './ir.js';

/** Nodes ordered so each comes after the producers of its inputs; `available` = graph inputs and initializers. */
export function toposort(nodes: readonly OnnxNode[], available: ReadonlySet<string>): OnnxNode[] {
  const producer = new Map<string, number>();
  nodes.forEach((node, i) => {
    for (const out of node.outputs) {
      if (out === '') continue;
      const other = producer.get(out);
      if (other !== undefined) throw new OnnxError(`'${out}' is produced by both ${describeNode(nodes[other])} and ${describeNode(node)}`);
      producer.set(out, i);
    }
  });
  for (const node of nodes) {
    for (const name of node.inputs) {
      if (name !== '' && !available.has(name) && !producer.has(name)) {
        throw new OnnxError(`${describeNode(node)} reads '${name}', which no node, initializer or graph input provides`);
      }
    }
  }
  // Iterative depth-first search from each node in file order: producers first, so sorted files keep their order.
  const state = new Uint8Array(nodes.length); // 0 unvisited, 1 on the stack, 2 done
  const order: OnnxNode[] = [];
  for (let root = 0; root < nodes.length; root++) {
    if (state[root] !== 0) continue;
    const stack = [{ i: root, k: 0 }];
    state[root] = 1;
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const node = nodes[top.i];
      if (top.k === node.inputs.length) {
        state[top.i] = 2;
        order.push(node);
        stack.pop();
        continue;
      }
      const p = producer.get(node.inputs[top.k++]);
      if (p === undefined || state[p] === 2) continue;
      if (state[p] === 1) {
        const from = stack.findIndex((s) => s.i === p);
        const cycle = [p, ...stack.slice(from).map((s) => s.i).reverse()].map((i) => describeNode(nodes[i]));
        throw new OnnxError(`the graph has a cycle: ${cycle.join(' -> ')}`);
      }
      state[p] = 1;
      stack.push({ i: p, k: 0 });
    }
  }
  return order;
}
