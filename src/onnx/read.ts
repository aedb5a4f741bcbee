// ONNX protobuf → OnnxModel: decoding, validation, topological sort.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { endianness } from 'node:os';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { OnnxError } from './errors.js';
import type { AttrValue, DataType, Dim, OnnxModel, OnnxNode, OnnxTensor, ValueInfo } from './ir.js';
import { onnx, type proto } from './proto.js';
import { DTYPES, dataTypeOf, isPacked4, numel, unpack4 } from './tensor.js';
import { halvesToFloat32 } from './half.js';
import { toposort } from './toposort.js';
import { nodeScopes } from './node-scopes.js';
import { freshName } from './names.js';

/** Opsets of the default domain that pdquant reads. */
export const MIN_OPSET = 11;
export const MAX_OPSET = 26;

type Int64 = number | { toNumber(): number; low: number; high: number } | null | undefined;

const toNumber = (v: Int64): number => (v == null ? 0 : typeof v === 'number' ? v : v.toNumber());
const toBigInt = (v: Int64): bigint =>
  v == null ? 0n : typeof v === 'number' ? BigInt(v) : BigInt.asIntN(64, (BigInt(v.high) << 32n) | BigInt(v.low >>> 0));

/** Typed field of TensorProto that holds each element type when raw_data is not used. */
const TYPED_FIELD: Record<DataType, 'floatData' | 'int32Data' | 'int64Data' | 'doubleData' | 'uint64Data'> = {
  float32: 'floatData', float64: 'doubleData', int64: 'int64Data', uint32: 'uint64Data', uint64: 'uint64Data',
  int8: 'int32Data', uint8: 'int32Data', int16: 'int32Data', uint16: 'int32Data', int32: 'int32Data', bool: 'int32Data',
  uint4: 'int32Data', int4: 'int32Data', // packed: one byte (two elements) per int32_data entry
};

/**
 * Bytes of tensors stored outside the .onnx file (torch.onnx.export with dynamo=True writes model.onnx.data),
 * read from files beside the model; each file is read once.
 */
class ExternalData {
  private readonly files = new Map<string, Buffer>();
  /** Every data file read, in the order first used. */
  readonly paths: string[] = [];
  constructor(private readonly folder: string | null) {}

  bytes(t: proto.ITensorProto, what: string): Uint8Array {
    const entries = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
    const location = entries.get('location');
    if (!location) throw new OnnxError(`${what}: its data is marked external but names no location`);
    if (this.folder === null) throw new OnnxError(`${what}: its data is in the external file '${location}'; give the model as a file path so the file beside it can be read`);
    const path = resolve(this.folder, location);
    const rel = relative(this.folder, path);
    if (isAbsolute(location) || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
      throw new OnnxError(`${what}: external data location '${location}' lies outside the model's folder ${this.folder}`);
    }
    let file = this.files.get(path);
    if (!file) {
      if (!existsSync(path) || statSync(path).isDirectory()) throw new OnnxError(`${what}: external data file ${join(this.folder, location)} not found (it must sit beside the model)`);
      file = readFileSync(path);
      this.files.set(path, file);
      this.paths.push(path);
    }
    const offset = Number(entries.get('offset') ?? 0);
    const length = entries.has('length') ? Number(entries.get('length')) : file.length - offset;
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > file.length) {
      throw new OnnxError(`${what}: bytes ${entries.get('offset') ?? 0}+${entries.get('length') ?? '?'} lie outside ${location} (${file.length} bytes)`);
    }
    return file.subarray(offset, offset + length);
  }
}

const FLOAT16 = onnx.TensorProto.DataType.FLOAT16;
const FLOAT = onnx.TensorProto.DataType.FLOAT;

/**
 * A float16 model is read as float32, which holds every float16 value exactly: its tensors, its inputs' and outputs'
 * types, and its casts to float16. This notes that something was converted, for the warning that the model computes
 * and is exported in float32.
 */
interface Float16Reads {
  found: boolean;
}

/**
 * Decodes a TensorProto (raw_data little-endian, external data in the same layout, or the typed repeated field). A
 * float16 one is stored as uint16 would be (2 bytes each, or one int32_data entry each) and is read as float32.
 */
function decodeTensor(t: proto.ITensorProto, what: string, external: ExternalData, float16: Float16Reads): OnnxTensor {
  if (t.dataType !== FLOAT16) return decodeStored(t, what, external, dataTypeOf(t.dataType ?? 0, what));
  float16.found = true;
  const bits = decodeStored(t, what, external, 'uint16', 'float16');
  return { ...bits, dataType: 'float32', data: halvesToFloat32(bits.data as Uint16Array) };
}

/** The tensor's elements as stored for `dataType` (`typeName` names the file's type in errors). */
function decodeStored(t: proto.ITensorProto, what: string, external: ExternalData, dataType: DataType, typeName: string = dataType): OnnxTensor {
  const name = t.name ?? '';
  const isExternal = t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL;
  if (!isExternal && (t.externalData?.length ?? 0) > 0) throw new OnnxError(`${what}: has external data entries but is not marked external`);
  const dims = (t.dims ?? []).map(toNumber);
  const n = numel(dims);
  const ArrayType = DTYPES[dataType].array;
  const raw = isExternal ? external.bytes(t, what) : t.rawData;
  if (isPacked4(dataType)) {
    // Two elements per byte, low nibble first, in raw_data or one byte per int32_data entry.
    const bytes = raw && raw.length > 0 ? raw : ((t.int32Data ?? []) as Int64[]).map(toNumber);
    const where = isExternal ? 'external data has' : raw && raw.length > 0 ? 'raw_data has' : 'int32_data has';
    if (bytes.length !== Math.ceil(n / 2)) {
      throw new OnnxError(`${what}: ${where} ${bytes.length} bytes, shape [${dims}] of ${typeName} needs ${Math.ceil(n / 2)}`);
    }
    return { name, dataType, dims, data: unpack4(bytes, n, dataType as 'uint4' | 'int4') };
  }
  if (isExternal || (raw && raw.length > 0)) {
    const field = isExternal ? 'external data' : 'raw_data';
    if (endianness() !== 'LE') throw new OnnxError(`${what}: ${field} needs a little-endian host`);
    if (raw!.length !== n * ArrayType.BYTES_PER_ELEMENT) {
      throw new OnnxError(`${what}: ${field} has ${raw!.length} bytes, shape [${dims}] of ${typeName} needs ${n * ArrayType.BYTES_PER_ELEMENT}`);
    }
    const buffer = new ArrayBuffer(raw!.length); // copy: the bytes may be unaligned inside the file buffer
    new Uint8Array(buffer).set(raw!);
    return { name, dataType, dims, data: new ArrayType(buffer) };
  }
  const values = (t[TYPED_FIELD[dataType]] ?? []) as Int64[];
  if (values.length !== n) throw new OnnxError(`${what}: has ${values.length} elements, shape [${dims}] needs ${n}`);
  const data = new ArrayType(n);
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) values.forEach((v, i) => (data[i] = toBigInt(v)));
  else values.forEach((v, i) => (data[i] = toNumber(v)));
  return { name, dataType, dims, data };
}

const utf8 = new TextDecoder();

/** Decodes one attribute; graph-valued ones (If/Loop bodies) return undefined: pdquant runs no control flow. */
function decodeAttr(a: proto.IAttributeProto, where: string, external: ExternalData, float16: Float16Reads): AttrValue | undefined {
  const T = onnx.AttributeProto.AttributeType;
  const what = `${where}, attribute ${a.name}`;
  switch (a.type) {
    case T.INT: return { type: 'int', value: toNumber(a.i) };
    case T.INTS: return { type: 'ints', value: (a.ints ?? []).map(toNumber) };
    case T.FLOAT: return { type: 'float', value: a.f ?? 0 };
    case T.FLOATS: return { type: 'floats', value: [...(a.floats ?? [])] };
    case T.STRING: return { type: 'string', value: utf8.decode(a.s ?? new Uint8Array()) };
    case T.STRINGS: return { type: 'strings', value: (a.strings ?? []).map((s) => utf8.decode(s)) };
    case T.TENSOR: return { type: 'tensor', value: decodeTensor(a.t ?? {}, what, external, float16) };
    case T.TENSORS: return { type: 'tensors', value: (a.tensors ?? []).map((t) => decodeTensor(t, what, external, float16)) };
    default: return undefined;
  }
}

function decodeNode(n: proto.INodeProto, external: ExternalData, float16: Float16Reads, scope: string[] | undefined): OnnxNode {
  const node: OnnxNode = {
    name: n.name ?? '', opType: n.opType ?? '', domain: n.domain ?? '',
    inputs: [...(n.input ?? [])], outputs: [...(n.output ?? [])], attrs: {},
    ...(scope && scope.length > 0 ? { scope } : {}),
  };
  const where = `node ${node.name || node.outputs[0]} (${node.opType})`;
  for (const a of n.attribute ?? []) {
    const value = decodeAttr(a, where, external, float16);
    if (value !== undefined) node.attrs[a.name ?? ''] = value;
  }
  const to = node.attrs.to;
  if (node.opType === 'Cast' && (node.domain === '' || node.domain === 'ai.onnx') && to?.type === 'int' && to.value === FLOAT16) {
    float16.found = true;
    node.attrs.to = { type: 'int', value: FLOAT };
  }
  return node;
}

/**
 * Node names are optional in ONNX and need not be unique, but pdquant keys weights, units and checkpoints by them:
 * an unnamed node takes its first output's name, and a repeated name gets _1, _2, ...
 */
function withUniqueNames(nodes: OnnxNode[]): OnnxNode[] {
  const taken = new Set<string>();
  for (const node of nodes) {
    node.name = freshName(taken, node.name || node.outputs.find((o) => o !== '') || node.opType);
  }
  return nodes;
}

function decodeValueInfo(v: proto.IValueInfoProto, role: string, float16: Float16Reads): ValueInfo {
  const name = v.name ?? '';
  const tensorType = v.type?.tensorType;
  if (!tensorType) throw new OnnxError(`graph ${role} '${name}' is not a tensor`);
  if (tensorType.elemType === FLOAT16) float16.found = true;
  const elemType = tensorType.elemType === FLOAT16 ? 'float32' : dataTypeOf(tensorType.elemType ?? 0, `graph ${role} '${name}'`);
  const shape = tensorType.shape;
  const dims = shape
    ? (shape.dim ?? []).map((d): Dim => (d.dimParam ? d.dimParam : Object.hasOwn(d, 'dimValue') ? toNumber(d.dimValue) : null))
    : null;
  return { name, elemType, dims };
}

function loadBytes(source: string | Uint8Array): Uint8Array {
  if (typeof source !== 'string') return source;
  if (!existsSync(source)) throw new OnnxError(`No such file: ${source}`);
  if (statSync(source).isDirectory()) throw new OnnxError(`${source} is a directory, not an ONNX file`);
  return readFileSync(source);
}

/** Reads an ONNX model from a file path or bytes into an OnnxModel with topologically sorted nodes. */
export function readOnnx(source: string | Uint8Array): OnnxModel {
  const label = typeof source === 'string' ? source : 'the given bytes';
  const bytes = loadBytes(source);
  let m: proto.ModelProto;
  try {
    m = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new OnnxError(`${label} is not a valid ONNX model: ${(e as Error).message}`);
  }
  const g = m.graph;
  if (!g) throw new OnnxError(`${label} is not a valid ONNX model: it has no graph`);
  const opset = (m.opsetImport ?? []).find((o) => o.domain === '' || o.domain === 'ai.onnx' || o.domain == null);
  if (!opset) throw new OnnxError(`${label} is not a valid ONNX model: it imports no opset of the default ONNX domain`);
  const opsetVersion = toNumber(opset.version);
  if (opsetVersion < MIN_OPSET || opsetVersion > MAX_OPSET) {
    throw new OnnxError(`${label}: opset ${opsetVersion} not supported; pdquant reads opset ${MIN_OPSET}–${MAX_OPSET}`);
  }
  if ((g.sparseInitializer ?? []).length > 0) throw new OnnxError(`${label}: sparse initializers not supported`);

  const external = new ExternalData(typeof source === 'string' ? dirname(resolve(source)) : null);
  const float16: Float16Reads = { found: false };
  const initializers = new Map<string, OnnxTensor>();
  for (const t of g.initializer ?? []) initializers.set(t.name ?? '', decodeTensor(t, `initializer ${t.name}`, external, float16));
  const inputs = (g.input ?? []).filter((v) => !initializers.has(v.name ?? '')).map((v) => decodeValueInfo(v, 'input', float16));
  if (inputs.length === 0) throw new OnnxError(`${label}: the graph has no inputs (besides initializers)`);
  const shapeless = inputs.find((v) => v.dims === null);
  if (shapeless) throw new OnnxError(`${label}: graph input '${shapeless.name}' has no shape`);
  const outputs = (g.output ?? []).map((v) => decodeValueInfo(v, 'output', float16));
  if (outputs.length === 0) throw new OnnxError(`${label}: the graph has no outputs`);

  const available = new Set([...initializers.keys(), ...inputs.map((v) => v.name)]);
  let nodes: OnnxNode[];
  try {
    const scopes = nodeScopes(bytes);
    nodes = toposort(withUniqueNames((g.node ?? []).map((n, i) => decodeNode(n, external, float16, scopes[i]))), available);
  } catch (e) {
    throw e instanceof OnnxError ? new OnnxError(`${label}: ${e.message}`) : e;
  }
  const produced = new Set([...available, ...nodes.flatMap((n) => n.outputs)]);
  const missing = outputs.find((v) => !produced.has(v.name));
  if (missing) throw new OnnxError(`${label}: graph output '${missing.name}' is produced by no node`);

  return {
    irVersion: toNumber(m.irVersion),
    opsetVersion,
    producer: m.producerName ?? '',
    producerVersion: m.producerVersion ?? '',
    graphName: g.name ?? '',
    inputs,
    outputs,
    initializers,
    nodes,
    metadata: Object.fromEntries((m.metadataProps ?? []).map((p) => [p.key ?? '', p.value ?? ''])),
    ...(float16.found ? { readFromFloat16: true as const } : {}),
    ...(typeof source === 'string' ? { files: [source, ...external.paths] } : {}),
  };
}
