// OnnxModel → ONNX protobuf bytes, and an atomic file write.
import { writeFileAtomic } from '../util/atomic.js';
import { describeNode, isDefaultDomain } from './attrs.js';
import { OnnxError } from './errors.js';
import type { AttrValue, OnnxModel, OnnxNode, OnnxTensor, ValueInfo } from './ir.js';
import { onnx, type proto } from './proto.js';
import { DTYPES, isPacked4, pack4 } from './tensor.js';

/** An int64 field value; beyond 2^53 a decimal string (protobufjs parses it exactly) saturated to the int64 range. */
function int64(v: number): number {
  if (Math.abs(v) <= Number.MAX_SAFE_INTEGER) return v;
  return (v > 0 ? '9223372036854775807' : '-9223372036854775808') as unknown as number;
}

/** TensorProto with the elements as little-endian raw_data (uint4/int4 packed two per byte, low nibble first). */
function encodeTensor(t: OnnxTensor): proto.ITensorProto {
  return {
    name: t.name,
    dataType: DTYPES[t.dataType].code,
    dims: t.dims,
    rawData: isPacked4(t.dataType) ? pack4(t) : new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
  };
}

const utf8 = new TextEncoder();

function encodeAttr(name: string, a: AttrValue): proto.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  switch (a.type) {
    case 'int': return { name, type: T.INT, i: int64(a.value) };
    case 'ints': return { name, type: T.INTS, ints: a.value.map(int64) };
    case 'float': return { name, type: T.FLOAT, f: a.value };
    case 'floats': return { name, type: T.FLOATS, floats: a.value };
    case 'string': return { name, type: T.STRING, s: utf8.encode(a.value) };
    case 'strings': return { name, type: T.STRINGS, strings: a.value.map((s) => utf8.encode(s)) };
    case 'tensor': return { name, type: T.TENSOR, t: encodeTensor(a.value) };
    case 'tensors': return { name, type: T.TENSORS, tensors: a.value.map(encodeTensor) };
  }
}

function encodeNode(node: OnnxNode): proto.INodeProto {
  if (!isDefaultDomain(node)) {
    throw new OnnxError(`cannot write ${describeNode(node)}: domain '${node.domain}' (pdquant writes the default ONNX domain only)`);
  }
  return {
    name: node.name,
    opType: node.opType,
    input: node.inputs,
    output: node.outputs,
    attribute: Object.entries(node.attrs).map(([name, a]) => encodeAttr(name, a)),
  };
}

function encodeValueInfo(v: ValueInfo): proto.IValueInfoProto {
  const shape = v.dims && { dim: v.dims.map((d) => (typeof d === 'number' ? { dimValue: d } : d === null ? {} : { dimParam: d })) };
  return { name: v.name, type: { tensorType: { elemType: DTYPES[v.elemType].code, ...(shape && { shape }) } } };
}

/** Serialises a model to ONNX protobuf bytes (weights inline as raw_data; default domain only). */
export function encodeOnnx(model: OnnxModel): Uint8Array {
  const message = onnx.ModelProto.create({
    irVersion: model.irVersion,
    opsetImport: [{ domain: '', version: model.opsetVersion }],
    producerName: model.producer,
    producerVersion: model.producerVersion,
    metadataProps: Object.entries(model.metadata).map(([key, value]) => ({ key, value })),
    graph: {
      name: model.graphName,
      node: model.nodes.map(encodeNode),
      initializer: [...model.initializers.values()].map(encodeTensor),
      input: model.inputs.map(encodeValueInfo),
      output: model.outputs.map(encodeValueInfo),
    },
  });
  return onnx.ModelProto.encode(message).finish();
}

/** Writes a model to `path` atomically: a temporary file in the same folder, then a rename. */
export function writeOnnx(model: OnnxModel, path: string): void {
  writeFileAtomic(path, encodeOnnx(model));
}
