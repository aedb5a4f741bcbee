// Fully connected layers in one form, Gemm with its weight as [out, in] (transB=1), so weights are quantized per
// output channel along axis 0 like convolutions' (PDQUANT.md §3), whichever form the exporter chose.
import { attrInt } from './attrs.js';
import type { OnnxModel, OnnxNode, OnnxTensor } from './ir.js';
import type { QdqSpec, QdqWeight } from './qdq.js';
import { inferShapes } from './shapes.js';
import { freshName, namesInUse } from './names.js';

/** A 2-D float weight [in, out] as [out, in] (and back). */
export function transposed(t: OnnxTensor, name: string): OnnxTensor {
  const [rows, cols] = t.dims as [number, number];
  const src = t.data as Float32Array;
  const data = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) data[c * rows + r] = src[r * cols + c]!;
  return { name, dataType: t.dataType, dims: [cols, rows], data };
}

/**
 * Gemm with transB=0 gets its weight transposed and transB=1; MatMul of an activation by a 2-D float weight
 * becomes such a Gemm, taking along a following Add of a per-output bias. Other nodes stay as they are.
 *
 * A MatMul on an activation of rank > 2 (a linear layer on [N, H, W, C], as ConvNeXt applies it, or on tokens) becomes
 * a Gemm on that rank too: pdquant's own form, which its executor and shape rules accept (the product over the last
 * dim, as torch's linear). linearAsMatMul turns it back into ONNX's MatMul + Add for the export.
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
    if ((shapes.get(node.inputs[0] ?? '')?.length ?? 0) < 2) return node;
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
  return withInitializersInUse(model, nodes.filter((n) => !removed.has(n)), initializers);
}

/** The model with these nodes and, of these initializers, those a node reads or the graph outputs. */
function withInitializersInUse(model: OnnxModel, nodes: OnnxNode[], initializers: Map<string, OnnxTensor>): OnnxModel {
  const used = new Set(nodes.flatMap((n) => n.inputs));
  const graphOutputs = new Set(model.outputs.map((v) => v.name));
  return { ...model, nodes, initializers: new Map([...initializers].filter(([name]) => used.has(name) || graphOutputs.has(name))) };
}

/** A Gemm in pdquant's own form on an activation of rank > 2 (see canonicalLinear). */
function isNdGemm(node: OnnxNode, shapes: ReadonlyMap<string, number[]>): boolean {
  return node.opType === 'Gemm' && (shapes.get(node.inputs[0] ?? '')?.length ?? 2) > 2;
}

/** Codes [out, in] (channels on axis 0) as [in, out] (channels on axis 1). */
function transposedCodes(w: QdqWeight, out: number): QdqWeight {
  const inner = w.codes.length / out;
  const codes = new Uint8Array(w.codes.length);
  for (let o = 0; o < out; o++) for (let i = 0; i < inner; i++) codes[i * out + o] = w.codes[o * inner + i]!;
  return { ...w, axis: 1, codes };
}

/**
 * The ONNX form of canonicalLinear's Gemms on activations of rank > 2: MatMul by the weight [in, out], then an Add of
 * the bias, with their quantized weights transposed to match (channels on axis 1). A bias that the simulation rounds
 * to the integer grid (integer kernels) is written with the rounded values.
 */
export function linearAsMatMul(model: OnnxModel, spec: QdqSpec): { model: OnnxModel; spec: QdqSpec } {
  const shapes = inferShapes(model);
  const nd = new Set(model.nodes.filter((n) => isNdGemm(n, shapes)).map((n) => n.name));
  if (nd.size === 0) return { model, spec };
  const initializers = new Map(model.initializers);
  const taken = namesInUse(model);
  const fresh = (base: string): string => freshName(taken, base);
  const weights = new Map(spec.weights.map((w) => [w.node, w]));
  const nodes = model.nodes.flatMap((node): OnnxNode[] => {
    if (!nd.has(node.name)) return [node];
    const w = initializers.get(node.inputs[1]!)!;
    const [out] = w.dims as [number, number];
    const name = fresh(`${w.name}_in_out`);
    initializers.set(name, transposed(w, name));
    const q = weights.get(node.name);
    if (q) weights.set(node.name, { ...transposedCodes(q, out), bias: undefined });
    const matmul: OnnxNode = { ...node, opType: 'MatMul', inputs: [node.inputs[0]!, name], attrs: {} };
    const biasName = node.inputs[2] ?? '';
    const bias = initializers.get(biasName);
    if (!bias) return [matmul];
    let b = biasName;
    if (q?.bias) {
      const rounded = Float32Array.from(q.bias.codes, (c, k) => c * q.bias!.scale[k]!);
      b = fresh(`${biasName}_rounded`);
      initializers.set(b, { name: b, dataType: 'float32', dims: [out], data: rounded });
    }
    const product = fresh(`${node.outputs[0]}_matmul`);
    return [
      { ...matmul, outputs: [product] },
      { name: fresh(`${node.name}_bias_Add`), opType: 'Add', domain: '', inputs: [product, b], outputs: [node.outputs[0]!], attrs: {}, ...(node.scope ? { scope: node.scope } : {}) },
    ];
  });
  return { model: withInitializersInUse(model, nodes, initializers), spec: { ...spec, weights: spec.weights.map((w) => weights.get(w.node) ?? w) } };
}
