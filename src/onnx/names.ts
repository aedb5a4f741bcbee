// Names for tensors and nodes added to a model: free ones, so that nothing added collides with what is there.
import type { OnnxModel } from './ir.js';

/** Every name a model uses: initializers, graph inputs and outputs, node names and node outputs. */
export function namesInUse(model: Pick<OnnxModel, 'initializers' | 'inputs' | 'outputs' | 'nodes'>): Set<string> {
  const taken = new Set<string>([...model.initializers.keys(), ...model.inputs.map((v) => v.name), ...model.outputs.map((v) => v.name)]);
  for (const n of model.nodes) {
    if (n.name) taken.add(n.name);
    for (const o of n.outputs) if (o) taken.add(o);
  }
  return taken;
}

/** `base`, or `base_1`, `base_2`, ... whichever is not in `taken`; it is added there. */
export function freshName(taken: Set<string>, base: string): string {
  let name = base;
  for (let k = 1; taken.has(name); k++) name = `${base}_${k}`;
  taken.add(name);
  return name;
}
