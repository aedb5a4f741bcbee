// Fully connected layers in one form, Gemm with its weight as [out, in] (transB=1), so weights are quantized per
// output channel along axis 0 like convolutions' (PDQUANT.md §3), whichever form the exporter chose.
import { attrInt } from './attrs.js';
import type { OnnxModel, OnnxNode, OnnxTensor } from './ir.js';
import { inferShapes } from './shapes.js';

/** A 2-D float weight [in, out] as [out, in]. */
function transposed(t: OnnxTensor, name: string): OnnxTensor {
  const [rows, cols] = t.dims as [number, number];
  const src = t.data as Float32Array;
  const data = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) data[c * rows + r] = src[r * cols + c]!;
  return { name, dataType: t.dataType, dims: [cols, rows], data };
}

/**
 * Gemm with transB=0 gets its weight transposed and transB=1; MatMul of a 2-D activation by a 2-D float weight
 * becomes such a Gemm, taking along a following Add of a per-output bias. Other nodes stay as they are.
 */
export function canonicalLinear(model: OnnxModel): OnnxModel {
  const initializers = new Map(model.initializers);
  const users = new Map<string, OnnxNode[]>();
  model.nodes.forEach((n) => n.inputs.forEach((i) => users.set(i, [...(users.get(i) ?? []), n])));
  const graphOutputs = new Set(model.outputs.map((v) => v.name));
  const weightOf = (node: OnnxNode): OnnxTensor | undefined => {
    const w = initializers.get(node.inputs[1] ?? '');
    return w && w.dims.length === 2 && w.dataType === 'float32' ? w : undefined;
  };
  const transposedWeight = (node: OnnxNode, w: OnnxTensor): string => {
    // A weight read by other nodes too keeps its form for them.
    const name = (users.get(w.name) ?? []).length > 1 ? `${w.name}_transposed` : w.name;
    initializers.set(name, transposed(w, name));
    return name;
  };
  let shapes: Map<string, number[]> | undefined;
  const removed = new Set<OnnxNode>();
  const nodes = model.nodes.map((node): OnnxNode => {
    if (node.domain !== '' && node.domain !== 'ai.onnx') return node;
    const w = weightOf(node);
    if (!w) return node;
    if (node.opType === 'Gemm' && attrInt(node, 'transB', 0) === 0) {
      return { ...node, inputs: [node.inputs[0]!, transposedWeight(node, w), ...node.inputs.slice(2)], attrs: { ...node.attrs, transB: { type: 'int', value: 1 } } };
    }
    if (node.opType !== 'MatMul') return node;
    shapes ??= inferShapes(model);
    if (shapes.get(node.inputs[0] ?? '')?.length !== 2) return node;
    const out = w.dims[1]!;
    const next = users.get(node.outputs[0]!) ?? [];
    const add = next.length === 1 && next[0]!.opType === 'Add' && !graphOutputs.has(node.outputs[0]!) ? next[0]! : undefined;
    const biasName = add?.inputs.find((i) => i !== node.outputs[0]);
    const bias = biasName === undefined ? undefined : initializers.get(biasName);
    const fuse = add && bias && bias.dataType === 'float32' && bias.data.length === out && bias.dims.at(-1) === out;
    if (fuse) {
      removed.add(add);
      const c = bias.dims.length === 1 ? bias.name : `${bias.name}_1d`;
      if (c !== bias.name) initializers.set(c, { ...bias, name: c, dims: [out] });
      return { ...node, opType: 'Gemm', inputs: [node.inputs[0]!, transposedWeight(node, w), c], outputs: add.outputs, attrs: { transB: { type: 'int', value: 1 } } };
    }
    return { ...node, opType: 'Gemm', inputs: [node.inputs[0]!, transposedWeight(node, w)], attrs: { transB: { type: 'int', value: 1 } } };
  });
  const kept = nodes.filter((n) => !removed.has(n));
  const used = new Set(kept.flatMap((n) => n.inputs));
  return { ...model, nodes: kept, initializers: new Map([...initializers].filter(([name]) => used.has(name) || graphOutputs.has(name))) };
}
