/** A float16 copy of a float32 ONNX model, as onnxconverter-common's float16 conversion writes one. */
import { onnx } from '../../src/onnx/proto.js';
import { float32ToHalves } from '../../src/onnx/half.js';

const { FLOAT, FLOAT16 } = onnx.TensorProto.DataType;

/**
 * Every float32 initializer becomes float16 (raw_data). With `keepIoTypes`, the input and output stay float32 and
 * Casts to and from float16 are put after and before them (keep_io_types=True); otherwise they become float16.
 */
export function toFloat16(bytes: Uint8Array, o: { keepIoTypes?: boolean } = {}): Uint8Array {
  const m = onnx.ModelProto.decode(bytes);
  const g = m.graph!;
  for (const t of g.initializer ?? []) {
    if (t.dataType !== FLOAT) continue;
    const values = t.rawData && t.rawData.length > 0
      ? new Float32Array(t.rawData.buffer.slice(t.rawData.byteOffset, t.rawData.byteOffset + t.rawData.length))
      : Float32Array.from(t.floatData ?? []);
    t.dataType = FLOAT16;
    t.floatData = [];
    t.rawData = new Uint8Array(float32ToHalves(values).buffer);
  }
  const inits = new Set((g.initializer ?? []).map((t) => t.name));
  const inputs = (g.input ?? []).filter((v) => !inits.has(v.name));
  if (!o.keepIoTypes) {
    for (const v of [...inputs, ...(g.output ?? [])]) v.type!.tensorType!.elemType = FLOAT16;
    return onnx.ModelProto.encode(m).finish();
  }
  const rename = new Map<string, string>();
  const casts: ReturnType<typeof onnx.NodeProto.create>[] = [];
  for (const v of inputs) {
    rename.set(v.name!, `${v.name}_fp16`);
    casts.push(onnx.NodeProto.create({ name: `${v.name}_to_fp16`, opType: 'Cast', input: [v.name!], output: [`${v.name}_fp16`], attribute: [{ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: FLOAT16 }] }));
  }
  const outputs = new Set((g.output ?? []).map((v) => v.name!));
  for (const n of g.node ?? []) {
    n.input = (n.input ?? []).map((i) => rename.get(i) ?? (outputs.has(i) ? `${i}_fp16` : i));
    n.output = (n.output ?? []).map((x) => (outputs.has(x) ? `${x}_fp16` : x));
  }
  const back = [...outputs].map((name) =>
    onnx.NodeProto.create({ name: `${name}_to_fp32`, opType: 'Cast', input: [`${name}_fp16`], output: [name], attribute: [{ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: FLOAT }] }));
  g.node = [...casts, ...(g.node ?? []), ...back];
  return onnx.ModelProto.encode(m).finish();
}
