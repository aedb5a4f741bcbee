/** Error raised for any problem with an ONNX model: unreadable file, unsupported content, inconsistent graph. */
export class OnnxError extends Error {
  override name = 'OnnxError';
}
