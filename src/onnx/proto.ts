// The one module that imports the generated ONNX protobuf schema (onnx-proto, protobufjs static code).
import onnxProto from 'onnx-proto';

export const onnx = onnxProto.onnx;
export type { onnx as proto } from 'onnx-proto';
