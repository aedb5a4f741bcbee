// Test helpers: small ONNX models built straight from onnx-proto (independent of pdquant's writer), run in onnxruntime-node.
import * as ort from 'onnxruntime-node';
import protobuf from 'protobufjs/minimal.js';
import { onnx, type proto } from '../../src/onnx/proto.js';

const T = onnx.TensorProto.DataType;
type ElemType = 'float' | 'int64' | 'int32' | 'int8' | 'bool';
const CODE: Record<ElemType, number> = { float: T.FLOAT, int64: T.INT64, int32: T.INT32, int8: T.INT8, bool: T.BOOL };

/** A TensorProto; `raw` stores the elements as raw_data instead of the typed field. */
export function tensor(name: string, type: ElemType, dims: number[], values: (number | bigint)[], raw = false): proto.ITensorProto {
  const t: proto.ITensorProto = { name, dataType: CODE[type], dims };
  if (raw) {
    const arrays = { float: Float32Array, int32: Int32Array, int8: Int8Array, bool: Uint8Array } as const;
    const data = type === 'int64' ? BigInt64Array.from(values, BigInt) : new arrays[type](values.map(Number));
    t.rawData = new Uint8Array(data.buffer);
  } else if (type === 'float') t.floatData = values.map(Number);
  else if (type === 'int64') t.int64Data = values.map((v) => (typeof v === 'bigint' ? v.toString() : v) as number);
  else t.int32Data = values.map(Number);
  return t;
}

const A = onnx.AttributeProto.AttributeType;
/** Attribute constructors: attr.int(1), attr.floats([..]), ... */
export const attr = {
  int: (i: number): proto.IAttributeProto => ({ type: A.INT, i }),
  ints: (ints: number[]): proto.IAttributeProto => ({ type: A.INTS, ints }),
  float: (f: number): proto.IAttributeProto => ({ type: A.FLOAT, f }),
  floats: (floats: number[]): proto.IAttributeProto => ({ type: A.FLOATS, floats }),
  string: (s: string): proto.IAttributeProto => ({ type: A.STRING, s: new TextEncoder().encode(s) }),
  tensor: (t: proto.ITensorProto): proto.IAttributeProto => ({ type: A.TENSOR, t }),
};

export interface NodeSpec {
  op: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  domain?: string;
  attrs?: Record<string, proto.IAttributeProto>;
}

export interface ValueSpec {
  name: string;
  dims?: (number | string)[];
  type?: ElemType;
}

export interface ModelSpec {
  opset?: number;
  inputs: ValueSpec[];
  outputs: ValueSpec[];
  nodes: NodeSpec[];
  initializers?: proto.ITensorProto[];
  metadata?: Record<string, string>;
}

const valueInfo = (v: ValueSpec): proto.IValueInfoProto => ({
  name: v.name,
  type: {
    tensorType: {
      elemType: CODE[v.type ?? 'float'],
      ...(v.dims && { shape: { dim: v.dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } }),
    },
  },
});

/** A ModelProto, encoded; nodes are named after their first output unless named. */
export function buildModel(spec: ModelSpec): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'pdquant-test',
    producerVersion: '1',
    opsetImport: [{ domain: '', version: spec.opset ?? 13 }],
    metadataProps: Object.entries(spec.metadata ?? {}).map(([key, value]) => ({ key, value })),
    graph: {
      name: 'test',
      input: spec.inputs.map(valueInfo),
      output: spec.outputs.map(valueInfo),
      initializer: spec.initializers ?? [],
      node: spec.nodes.map((n) => ({
        name: n.name ?? n.outputs[0],
        opType: n.op,
        domain: n.domain ?? '',
        input: n.inputs,
        output: n.outputs,
        attribute: Object.entries(n.attrs ?? {}).map(([name, a]) => ({ ...a, name })),
      })),
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

/** Deterministic pseudo-random floats in [-1, 1). */
export function randomFloats(n: number, seed = 1): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return (s / 2147483648) * 2 - 1;
  });
}

/** Runs model bytes in onnxruntime-node on float32 inputs (with extra session options); returns every output as [dims, data]. */
export async function runOrt(
  bytes: Uint8Array,
  feeds: Record<string, { dims: number[]; data: Float32Array }>,
  options: ort.InferenceSession.SessionOptions = {},
): Promise<Record<string, { dims: number[]; data: Float32Array }>> {
  const session = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3, ...options });
  try {
    const inputs = Object.fromEntries(Object.entries(feeds).map(([name, f]) => [name, new ort.Tensor('float32', f.data, f.dims)]));
    const outputs = await session.run(inputs);
    return Object.fromEntries(Object.entries(outputs).map(([name, t]) => [name, { dims: [...t.dims], data: t.data as Float32Array }]));
  } finally {
    await session.release();
  }
}

/**
 * The model as torch.onnx.export writes it without dynamic axes: inputs and outputs fixed to `batch`, and each
 * Flatten replaced by a Reshape to the constant [batch, -1] (what a traced x.view(x.size(0), -1) becomes).
 */
export function withFixedBatch(bytes: Uint8Array, batch: number): Uint8Array {
  const m = onnx.ModelProto.decode(bytes);
  const g = m.graph!;
  for (const v of [...(g.input ?? []), ...(g.output ?? [])]) {
    const dims = v.type?.tensorType?.shape?.dim;
    if (dims?.[0]) dims[0] = { dimValue: batch };
  }
  for (const [i, n] of (g.node ?? []).entries()) {
    if (n.opType !== 'Flatten') continue;
    const target = `flatten_target_${i}`;
    g.initializer!.push(tensor(target, 'int64', [2], [batch, -1], true));
    Object.assign(n, { opType: 'Reshape', input: [n.input![0]!, target], attribute: [] });
  }
  return onnx.ModelProto.encode(m).finish();
}

/**
 * The model with its initializers' bytes moved to an external data file `location` (as torch.onnx.export with
 * dynamo=True saves model.onnx + model.onnx.data), each at an offset aligned to `align` bytes.
 */
export function withExternalData(bytes: Uint8Array, location: string, align = 64): { model: Uint8Array; data: Buffer } {
  const m = onnx.ModelProto.decode(bytes);
  const parts: Buffer[] = [];
  let offset = 0;
  for (const t of m.graph!.initializer ?? []) {
    const raw = t.rawData && t.rawData.length > 0 ? t.rawData : t.dataType === T.FLOAT ? new Uint8Array(Float32Array.from(t.floatData ?? []).buffer) : null;
    if (!raw) continue;
    const pad = (align - (offset % align)) % align;
    parts.push(Buffer.alloc(pad), Buffer.from(raw));
    offset += pad;
    t.externalData = [{ key: 'location', value: location }, { key: 'offset', value: String(offset) }, { key: 'length', value: String(raw.length) }];
    t.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
    t.rawData = new Uint8Array();
    t.floatData = [];
    offset += raw.length;
  }
  return { model: onnx.ModelProto.encode(m).finish(), data: Buffer.concat(parts) };
}

/**
 * The model with metadata_props (NodeProto field 9, newer than the onnx-proto schema) on its nodes, written straight
 * in the wire format, as torch.onnx.export(dynamo=True) records pkg.torch.onnx.name_scopes.
 */
export function withNodeMetadata(bytes: Uint8Array, props: (node: proto.INodeProto, index: number) => Record<string, string>): Uint8Array {
  const field = (n: number, value: Uint8Array) => protobuf.Writer.create().uint32((n << 3) | 2).bytes(value).finish();
  const entry = (key: string, value: string) => protobuf.Writer.create().uint32(10).string(key).uint32(18).string(value).finish();
  const m = onnx.ModelProto.decode(bytes);
  const g = m.graph!;
  const nodes = (g.node ?? []).map((n, i) =>
    Buffer.concat([onnx.NodeProto.encode(n).finish(), ...Object.entries(props(n, i)).map(([k, v]) => field(9, entry(k, v)))]),
  );
  const graph = Buffer.concat([onnx.GraphProto.encode({ ...g, node: [] }).finish(), ...nodes.map((n) => field(1, n))]);
  return Buffer.concat([onnx.ModelProto.encode({ ...m, graph: null }).finish(), field(7, graph)]);
}
