// Public face of src/onnx: read, fold, check, summarize and write ONNX models.
export { OnnxError } from './errors.js';
export type { AttrValue, DataType, Dim, OnnxModel, OnnxNode, OnnxTensor, TensorData, ValueInfo } from './ir.js';
export { attrFloat, attrInt, attrInts, attrString, attrTensor } from './attrs.js';
export { MAX_OPSET, MIN_OPSET, readOnnx } from './read.js';
export { concreteInputShapes, inferShapes } from './shapes.js';
export { foldConstants, type FoldOptions } from './fold.js';
export { SUPPORTED_OPS, checkSupported } from './supported.js';
export { summarize, type ModelSummary } from './summarize.js';
export { encodeOnnx, writeOnnx } from './write.js';
