// Element types and small helpers to make, read and compare OnnxTensors.
import { OnnxError } from './errors.js';
import type { DataType, OnnxTensor, TensorData } from './ir.js';

type ArrayCtor = { new (length: number): TensorData; new (buffer: ArrayBuffer): TensorData; BYTES_PER_ELEMENT: number };

/** ONNX TensorProto.DataType code and storage of each supported element type. */
export const DTYPES: Readonly<Record<DataType, { code: number; array: ArrayCtor }>> = {
  float32: { code: 1, array: Float32Array },
  uint8: { code: 2, array: Uint8Array },
  int8: { code: 3, array: Int8Array },
  uint16: { code: 4, array: Uint16Array },
  int16: { code: 5, array: Int16Array },
  int32: { code: 6, array: Int32Array },
  int64: { code: 7, array: BigInt64Array },
  bool: { code: 9, array: Uint8Array },
  float64: { code: 11, array: Float64Array },
  uint32: { code: 12, array: Uint32Array },
  uint64: { code: 13, array: BigUint64Array },
  // 4-bit types: held one element per byte; encodeOnnx/readOnnx pack and unpack them (see pack4/unpack4).
  uint4: { code: 21, array: Uint8Array },
  int4: { code: 22, array: Int8Array },
};

const ONNX_TYPE_NAMES = ['UNDEFINED', 'FLOAT', 'UINT8', 'INT8', 'UINT16', 'INT16', 'INT32', 'INT64', 'STRING',
  'BOOL', 'FLOAT16', 'DOUBLE', 'UINT32', 'UINT64', 'COMPLEX64', 'COMPLEX128', 'BFLOAT16',
  'FLOAT8E4M3FN', 'FLOAT8E4M3FNUZ', 'FLOAT8E5M2', 'FLOAT8E5M2FNUZ', 'UINT4', 'INT4', 'FLOAT4E2M1'];

/** The DataType of an ONNX element-type code; `what` names the tensor or value for the error. */
export function dataTypeOf(code: number, what: string): DataType {
  for (const [name, info] of Object.entries(DTYPES)) if (info.code === code) return name as DataType;
  const onnxName = ONNX_TYPE_NAMES[code] ?? `code ${code}`;
  // bfloat16 models: quantization starts from the float32 model they were converted from (float16 is read as float32).
  const half = onnxName === 'BFLOAT16'
    ? '; pdquant quantizes float32 and float16 models: give it the model exported in float32 (before any conversion to bfloat16)' : '';
  throw new OnnxError(`${what}: element type ${onnxName} not supported (pdquant holds ${Object.keys(DTYPES).join(', ')})${half}`);
}

/** Number of elements of a shape (1 for a scalar). */
export function numel(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** The channel of each element of a tensor of `dims` with `channels` channels along `axis` (one channel: all 0). */
export function channelOf(dims: readonly number[], axis: number, channels: number): (i: number) => number {
  const inner = numel(dims.slice(axis + 1));
  return channels === 1 ? () => 0 : (i) => Math.floor(i / inner) % channels;
}

export const isFloatType = (t: DataType): boolean => t === 'float32' || t === 'float64';

const INT64_MAX = 2n ** 63n - 1n;
const INT64_MIN = -(2n ** 63n);

/** Converts a JS number to int64, saturating (ONNX uses INT64_MAX/MIN as "to the end" sentinels). */
function toInt64(x: number): bigint {
  if (Number.isNaN(x)) return 0n;
  if (x >= 2 ** 63) return INT64_MAX;
  if (x <= -(2 ** 63)) return INT64_MIN;
  return BigInt(Math.trunc(x));
}

/** A tensor of `dataType` from plain numbers (floats truncated toward zero for integer types, bool = x != 0). */
export function makeTensor(name: string, dataType: DataType, dims: number[], values: ArrayLike<number>): OnnxTensor {
  const n = numel(dims);
  if (values.length !== n) throw new OnnxError(`tensor ${name}: ${values.length} values for shape [${dims}]`);
  const data = new DTYPES[dataType].array(n);
  if (data instanceof BigInt64Array) for (let i = 0; i < n; i++) data[i] = toInt64(values[i]);
  else if (data instanceof BigUint64Array) for (let i = 0; i < n; i++) data[i] = BigInt.asUintN(64, toInt64(values[i]));
  else if (dataType === 'bool') for (let i = 0; i < n; i++) data[i] = values[i] !== 0 ? 1 : 0;
  else if (isFloatType(dataType)) (data as Float32Array).set(values);
  else for (let i = 0; i < n; i++) (data as Int32Array)[i] = Math.trunc(values[i]);
  return { name, dataType, dims, data };
}

/** The elements of a tensor as plain numbers (int64 beyond 2^53 lose precision, which shape arithmetic tolerates). */
export function toNumbers(t: OnnxTensor): number[] {
  return Array.from(t.data as ArrayLike<number | bigint>, Number);
}

/** Whether two tensors have the same type, shape and elements (NaN equal to NaN). */
export function tensorsEqual(a: OnnxTensor, b: OnnxTensor): boolean {
  if (a.data === b.data) return a.dataType === b.dataType && a.dims.join() === b.dims.join();
  if (a.dataType !== b.dataType || a.dims.length !== b.dims.length) return false;
  if (a.dims.some((d, i) => d !== b.dims[i])) return false;
  const x = a.data, y = b.data;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i] && !(Number.isNaN(x[i]) && Number.isNaN(y[i]))) return false;
  return true;
}

/** A tensor with the same elements under a new name and shape (no copy). */
export function renamed(t: OnnxTensor, name: string, dims: number[] = t.dims): OnnxTensor {
  return { name, dataType: t.dataType, dims, data: t.data };
}

/** Whether an element type is stored two elements per byte in ONNX files (uint4, int4). */
export const isPacked4 = (t: DataType): boolean => t === 'uint4' || t === 'int4';

/** Range of the 4-bit types. */
const RANGE4: Record<'uint4' | 'int4', [number, number]> = { uint4: [0, 15], int4: [-8, 7] };

/**
 * Packs a uint4/int4 tensor's elements two per byte, as ONNX stores them: element 2i in the low nibble of byte i,
 * element 2i+1 in the high nibble (an odd count leaves the last high nibble 0). Out-of-range elements are refused.
 */
export function pack4(t: OnnxTensor): Uint8Array {
  const [lo, hi] = RANGE4[t.dataType as 'uint4' | 'int4'];
  const data = t.data as Uint8Array | Int8Array;
  const out = new Uint8Array(Math.ceil(data.length / 2));
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (!(v >= lo && v <= hi)) throw new OnnxError(`tensor ${t.name}: element ${i} = ${v} is outside the ${t.dataType} range ${lo}..${hi}`);
    out[i >> 1] |= (v & 0xf) << ((i & 1) * 4);
  }
  return out;
}

/** Unpacks `n` uint4/int4 elements from bytes packed as pack4 writes them (int4 sign-extended). */
export function unpack4(bytes: ArrayLike<number>, n: number, dataType: 'uint4' | 'int4'): Uint8Array | Int8Array {
  const out = dataType === 'int4' ? new Int8Array(n) : new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const nibble = (bytes[i >> 1] >> ((i & 1) * 4)) & 0xf;
    out[i] = dataType === 'int4' && nibble >= 8 ? nibble - 16 : nibble;
  }
  return out;
}
