// The exported files run in onnxruntime-web (the WebAssembly backend a browser uses) as they do in onnxruntime-node.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import * as web from 'onnxruntime-web';
import { quantizeModel } from '../src/index.js';
import { tinyWorkspace } from './helpers/tiny-resnet.js';

async function logits(file: string, x: Float32Array, shape: number[]): Promise<{ node: Float32Array; web: Float32Array }> {
  const n = await ort.InferenceSession.create(file, { logSeverityLevel: 3 });
  web.env.wasm.numThreads = 1;
  const w = await web.InferenceSession.create(readFileSync(file), { executionProviders: ['wasm'] });
  try {
    const a = Object.values(await n.run({ [n.inputNames[0]!]: new ort.Tensor('float32', x, shape) }))[0]!.data as Float32Array;
    const b = Object.values(await w.run({ [w.inputNames[0]!]: new web.Tensor('float32', x, shape) }))[0]!.data as Float32Array;
    return { node: a, web: b };
  } finally {
    await n.release();
    await w.release();
  }
}

for (const [wBits, aBits, int8Kernels] of [[4, 4, false], [4, 8, true]] as const) {
  test(`a W${wBits}A${aBits}${int8Kernels ? ' --int8-kernels' : ''} export gives in onnxruntime-web the logits it gives in onnxruntime-node`, async () => {
    const ws = await tinyWorkspace(2);
    const output = join(ws.dir, 'q.onnx');
    await quantizeModel({ model: ws.model, calib: ws.images, wBits, aBits, method: 'mse', preset: 'cifar', output, int8Kernels });
    const shape = [16, 3, 8, 8];
    const x = Float32Array.from({ length: 16 * 3 * 64 }, (_, i) => Math.sin(i * 0.61) * 1.8);
    const { node, web: w } = await logits(output, x, shape);
    assert.equal(w.length, node.length);
    const maxLogit = node.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const maxDiff = node.reduce((m, v, i) => Math.max(m, Math.abs(v - w[i]!)), 0);
    // Both run the same kernels (the web build is onnxruntime's CPU provider compiled to WebAssembly); what they may
    // differ in is float summation order, which can move a value near a rounding boundary by one step.
    assert.ok(maxDiff <= 1e-3 * maxLogit, `max |Δlogit| ${maxDiff} of ${maxLogit}`);
  });
}
