/** Float32 batches through onnxruntime-node, cut to the batch size a model fixes when its file fixes one. */
import type { InferenceSession } from 'onnxruntime-node';

export interface OrtOutput {
  dims: number[];
  data: Float32Array;
}

/** An onnxruntime session on a file (so external data next to it is found) or on bytes. */
export async function openOrt(model: string | Uint8Array): Promise<InferenceSession> {
  const ort = await import('onnxruntime-node');
  return typeof model === 'string'
    ? ort.InferenceSession.create(model, { logSeverityLevel: 3 })
    : ort.InferenceSession.create(model, { logSeverityLevel: 3 });
}

/** The batch size the session's first input fixes, or null when its batch dim is symbolic. */
function fixedBatch(session: InferenceSession): number | null {
  const meta = session.inputMetadata[0];
  const d = meta?.isTensor ? meta.shape[0] : undefined;
  return typeof d === 'number' ? d : null;
}

/**
 * Runs a batch [n, ...] through the session's first input and returns the wanted outputs (default: all) as float32.
 * A model fixed to batch b gets the samples b at a time, the last group padded with zeros and the padding dropped.
 */
export async function runOrt(session: InferenceSession, x: Float32Array, shape: readonly number[], outputs?: string[]): Promise<Record<string, OrtOutput>> {
  const ort = await import('onnxruntime-node');
  const n = shape[0]!;
  const b = fixedBatch(session) ?? n;
  const sample = x.length / n;
  const names = outputs ?? [...session.outputNames];
  const parts: Record<string, Float32Array[]> = Object.fromEntries(names.map((k) => [k, []]));
  const rest: Record<string, number[]> = {};
  for (let start = 0; start < n; start += b) {
    const take = Math.min(b, n - start);
    const chunk = new Float32Array(b * sample);
    chunk.set(x.subarray(start * sample, (start + take) * sample));
    const out = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', chunk, [b, ...shape.slice(1)]) }, names);
    for (const k of names) {
      const t = out[k]!;
      const data = t.data as Float32Array;
      const per = data.length / b;
      rest[k] = [...t.dims.slice(1)];
      parts[k]!.push(take === b ? data : data.subarray(0, take * per));
    }
  }
  return Object.fromEntries(names.map((k) => {
    const chunks = parts[k]!;
    const data = chunks.length === 1 ? chunks[0]! : new Float32Array(chunks.reduce((s, c) => s + c.length, 0));
    if (chunks.length > 1) chunks.reduce((off, c) => (data.set(c, off), off + c.length), 0);
    return [k, { dims: [n, ...rest[k]!], data }];
  }));
}
