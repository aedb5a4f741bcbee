/** The quantized model as a deployable QDQ ONNX file: quantizer parameters → QdqSpec → src/onnx's writer. */
import * as E from '../engine/index.js';
import type { OnnxModel } from '../onnx/ir.js';
import { attrInt } from '../onnx/attrs.js';
import { toQdq, type QdqSpec } from '../onnx/qdq.js';
import { linearAsMatMul } from '../onnx/linear.js';
import { writeOnnx, encodeOnnx } from '../onnx/write.js';
import type { QuantizedModel } from '../quant/qmodel.js';
import { isWeightLayer } from '../graph/index.js';

const u8 = (t: E.Tensor) => Uint8Array.from(t.data() as Float32Array);

/** Integer codes, scales and zero points of every quantizer, as the ONNX writer wants them. */
export function qdqSpec(qmodel: QuantizedModel, metadata: Record<string, string>, int4Storage = false): QdqSpec {
  const graph = qmodel.graph;
  const weights = [...qmodel.weights.values()].map((w) => {
    const node = graph.node(w.site.node);
    const axis = node.opType === 'Conv' || (node.opType === 'Gemm' && attrInt(node, 'transB', 0) === 1) ? 0 : 1;
    if (axis !== 0) throw new Error(`export: ${node.name} (${node.opType}) has its output channels on axis 1, which per-channel export does not handle yet`);
    const codes = w.hard ? u8(w.hard.intWeights) : E.tidy(() => u8(w.q.quantizeInt(qmodel.fpWeight(w.site.node))));
    // The bias codes the simulation rounds to (QuantizedModel.quantizedBias).
    const b = graph.params.get(node.inputs[2] ?? '');
    const bias = b && E.tidy(() => {
      const q = qmodel.quantizedBias(w.site.node, b);
      return q && { codes: Int32Array.from(q.codes.data() as Float32Array), scale: Float32Array.from(q.grid.data() as Float32Array) };
    });
    return {
      node: w.site.node,
      bits: w.q.bits,
      axis,
      scale: Float32Array.from(w.q.delta.data() as Float32Array),
      zeroPoint: u8(w.q.zeroPoint),
      codes,
      ...(bias ? { bias } : {}),
    };
  });
  const acts = [...qmodel.acts.values()].map((a) => ({
    value: a.site.value,
    bits: a.q.bits,
    scale: a.q.delta.item(),
    zeroPoint: a.q.zeroPoint.item(),
  }));
  // Float weights matter to onnxruntime only where activations are quantized (QdqSpec.floatWeights).
  const floatWeights = acts.length === 0 ? [] : graph.nodes.filter((n) => isWeightLayer(n) && graph.params.has(n.inputs[1] ?? '') && !qmodel.weights.has(n.name)).map((n) => n.name);
  return { weights, acts, ...(floatWeights.length ? { floatWeights } : {}), int4Storage, integerKernels: qmodel.options.int8Kernels, metadata };
}

/** The QDQ model for a BN-folded ONNX model (the one the quantized graph was built from). */
export function qdqModel(folded: OnnxModel, spec: QdqSpec): OnnxModel {
  const onnx = linearAsMatMul(folded, spec);
  return toQdq(onnx.model, onnx.spec);
}

/** Where an export waits for its check against the simulation: model.q.onnx → model.q.unverified.onnx. */
export function unverifiedPath(output: string): string {
  return output.endsWith('.onnx') ? `${output.slice(0, -'.onnx'.length)}.unverified.onnx` : `${output}.unverified`;
}

/** Writes the QDQ model atomically; returns its bytes for verification. */
export function writeQdq(model: OnnxModel, path: string): Uint8Array {
  writeOnnx(model, path);
  return encodeOnnx(model);
}
