// The engine-independent in-memory form of an ONNX model that pdquant reads, folds and writes.

/** Element types pdquant can hold in a tensor (FLOAT16 is read as float32; BFLOAT16, FLOAT8, STRING and complex are refused). */
export type DataType =
  | 'float32' | 'float64'
  | 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'int64' | 'uint64'
  | 'bool'
  | 'uint4' | 'int4';

/**
 * Storage of tensor elements: int64/uint64 as BigInt arrays, bool as 0/1 bytes,
 * uint4/int4 unpacked, one element per byte of a Uint8Array/Int8Array (packed two per byte only in the file).
 */
export type TensorData =
  | Float32Array | Float64Array
  | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array
  | BigInt64Array | BigUint64Array;

/** A dense tensor, row-major; `dims` [] is a scalar. */
export interface OnnxTensor {
  name: string;
  dataType: DataType;
  dims: number[];
  data: TensorData;
}

/** A decoded node attribute; the tag keeps ints and floats apart so the model can be written back. */
export type AttrValue =
  | { type: 'int'; value: number }
  | { type: 'ints'; value: number[] }
  | { type: 'float'; value: number }
  | { type: 'floats'; value: number[] }
  | { type: 'string'; value: string }
  | { type: 'strings'; value: string[] }
  | { type: 'tensor'; value: OnnxTensor }
  | { type: 'tensors'; value: OnnxTensor[] };

/** One graph node; an absent optional input is the empty string, as in ONNX. */
export interface OnnxNode {
  name: string;
  opType: string;
  /** '' for the default ONNX domain. */
  domain: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, AttrValue>;
  /** The module path the exporter recorded for the node (dynamo=True: metadata), outermost first; absent if none. */
  scope?: string[];
}

/** A dimension: a size, a symbolic name (e.g. 'batch'), or null when unnamed and unknown. */
export type Dim = number | string | null;

/** Name, element type and shape of a graph input or output. */
export interface ValueInfo {
  name: string;
  elemType: DataType;
  /** null when the file gives no shape (outputs only: readOnnx refuses inputs without one). */
  dims: Dim[] | null;
}

/** A whole model: nodes in topological order, initializers kept apart from the inputs. */
export interface OnnxModel {
  irVersion: number;
  /** Opset of the default ONNX domain. */
  opsetVersion: number;
  producer: string;
  producerVersion: string;
  graphName: string;
  /** Graph inputs that are not initializers. */
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  initializers: Map<string, OnnxTensor>;
  nodes: OnnxNode[];
  metadata: Record<string, string>;
  /** When read from a file: that file, then the external data files its tensors came from. */
  files?: string[];
  /** The file held float16 tensors, inputs, outputs or casts, read as float32 (which holds every float16 exactly). */
  readFromFloat16?: true;
}
