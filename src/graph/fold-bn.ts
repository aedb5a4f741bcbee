/** Folds BatchNormalization into the preceding Conv/Gemm (PDQUANT.md §3), keeping the BN statistics. */
import type { OnnxModel, OnnxNode, OnnxTensor } from '../onnx/ir.js';
import { toNumbers } from '../onnx/tensor.js';
import { attrFloat, attrInt } from '../onnx/attrs.js';

/** The statistics of a folded BN, for distribution correction. */
export interface BnStats {
  bnNode: string;
  /** The BN's input in the unfolded model (the conv output): DC measures statistics there. */
  bnInput: string;
  mean: Float32Array;
  variance: Float32Array;
  gamma: Float32Array;
  beta: Float32Array;
  eps: number;
}

export interface FoldedModel {
  model: OnnxModel;
  /** Conv/Gemm node name → the BN folded into it. */
  bn: Map<string, BnStats>;
}

const f32 = (t: OnnxTensor) => Float32Array.from(toNumbers(t));

/**
 * w' = w·γ/√(var+ε) per output channel, b' = β − μ·γ/√(var+ε) (+ γ·b/√(var+ε) for a conv bias), in float32
 * as the reference computes it. The folded layer takes over the BN's output name so that value names match
 * between the FP (unfolded) and the quantized (folded) graphs.
 */
export function foldBatchNorm(model: OnnxModel): FoldedModel {
  const inits = new Map(model.initializers);
  const consumers = new Map<string, OnnxNode[]>();
  for (const n of model.nodes) for (const i of n.inputs) if (i) consumers.set(i, [...(consumers.get(i) ?? []), n]);
  const producer = new Map<string, OnnxNode>();
  for (const n of model.nodes) for (const o of n.outputs) producer.set(o, n);
  const removed = new Set<OnnxNode>();
  const replaced = new Map<OnnxNode, OnnxNode>();
  const bn = new Map<string, BnStats>();

  for (const node of model.nodes) {
    if (node.opType !== 'BatchNormalization') continue;
    const layer = producer.get(node.inputs[0]!);
    if (!layer || !(layer.opType === 'Conv' || (layer.opType === 'Gemm' && attrInt(layer, 'transB', 0) === 1))) continue;
    if ((consumers.get(layer.outputs[0]!) ?? []).length !== 1 || replaced.has(layer)) continue;
    const w = inits.get(layer.inputs[1]!);
    const [gamma, beta, mean, variance] = [1, 2, 3, 4].map((i) => inits.get(node.inputs[i]!));
    if (!w || !gamma || !beta || !mean || !variance) continue;
    const eps = attrFloat(node, 'epsilon', 1e-5);
    const g = f32(gamma), b = f32(beta), mu = f32(mean), v = f32(variance);
    const cout = w.dims[0]!;
    const per = w.data.length / cout;
    const scale = new Float32Array(cout);
    for (let c = 0; c < cout; c++) scale[c] = g[c]! / Math.fround(Math.sqrt(Math.fround(v[c]! + eps)));
    const wd = f32(w);
    const nw = new Float32Array(wd.length);
    for (let k = 0; k < wd.length; k++) nw[k] = wd[k]! * scale[Math.floor(k / per)]!;
    const oldBias = layer.inputs[2] ? f32(inits.get(layer.inputs[2])!) : undefined;
    const nb = new Float32Array(cout);
    for (let c = 0; c < cout; c++) {
      const safeStd = Math.fround(Math.sqrt(Math.fround(v[c]! + eps)));
      const shift = Math.fround(b[c]! - Math.fround(Math.fround(g[c]! * mu[c]!) / safeStd));
      nb[c] = oldBias ? Math.fround(Math.fround(Math.fround(g[c]! * oldBias[c]!) / safeStd) + shift) : shift;
    }
    const wName = `${layer.inputs[1]}_bnfolded`;
    const bName = `${layer.name || layer.outputs[0]}.bias_bnfolded`;
    inits.set(wName, { name: wName, dataType: 'float32', dims: w.dims, data: nw });
    inits.set(bName, { name: bName, dataType: 'float32', dims: [cout], data: nb });
    replaced.set(layer, { ...layer, inputs: [layer.inputs[0]!, wName, bName], outputs: [node.outputs[0]!] });
    removed.add(node);
    bn.set(layer.name, { bnNode: node.name, bnInput: node.inputs[0]!, mean: mu, variance: v, gamma: g, beta: b, eps });
  }
  const nodes = model.nodes.filter((n) => !removed.has(n)).map((n) => replaced.get(n) ?? n);
  const used = new Set(nodes.flatMap((n) => n.inputs));
  const initializers = new Map([...inits].filter(([name]) => used.has(name)));
  return { model: { ...model, nodes, initializers }, bn };
}

/** How to export a PyTorch model with its BatchNormalization nodes kept (both exporters fold them by default). */
export const KEEP_BN_EXPORT =
  'torch.onnx.export(model.eval(), ..., dynamo=False, training=torch.onnx.TrainingMode.PRESERVE), or with dynamo=True, optimize=False';
