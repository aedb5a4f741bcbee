// Opsets after 21 (current exporters write up to 26; onnxruntime-node 1.30 runs up to 26): the ops pdquant runs changed
// only in the types they allow there, so models read, compute what onnxruntime computes, and quantize and export.
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as E from '../src/engine/index.js';
import { execute } from '../src/graph/index.js';
import { loadModel } from '../src/graph/load.js';
import { MAX_OPSET } from '../src/onnx/index.js';
import { onnx } from '../src/onnx/proto.js';
import { randomFloats, runOrt } from './helpers/onnx-builder.js';
import { tinyDenseNet } from './helpers/tiny-densenet.js';
import { tinyEfficientNet } from './helpers/tiny-efficientnet.js';
import { tinyResNet, tinyWorkspace } from './helpers/tiny-resnet.js';

/** The same model declaring another default-domain opset. */
function atOpset(bytes: Uint8Array, opset: number): Uint8Array {
  const m = onnx.ModelProto.decode(bytes);
  m.opsetImport = [{ domain: '', version: opset }];
  m.irVersion = 10;
  return onnx.ModelProto.encode(m).finish();
}

const models = { resnet: tinyResNet, densenet: () => tinyDenseNet(), efficientnet: () => tinyEfficientNet() };
const x = { dims: [2, 3, 8, 8], data: randomFloats(2 * 3 * 64, 12) };

test(`models at opsets 22 to ${MAX_OPSET} run as onnxruntime runs them`, async () => {
  assert.equal(MAX_OPSET, 26);
  for (let opset = 22; opset <= MAX_OPSET; opset++)
    for (const [name, make] of Object.entries(models)) {
      const bytes = atOpset(make(), opset);
      const expected = Object.values(await runOrt(bytes, { input: x }))[0]!.data;
      const m = loadModel(bytes);
      const got = E.tidy(() => Float32Array.from(execute(m.fp, { feeds: new Map([['input', E.tensor(x.data, x.dims)]]), outputs: [m.fp.output.name] }).get(m.fp.output.name)!.data() as Float32Array));
      const diff = got.reduce((d, v, i) => Math.max(d, Math.abs(v - expected[i]!)), 0);
      assert.ok(diff <= 1e-4, `${name} at opset ${opset}: max |Δ| ${diff}`);
    }
});

test(`a model at opset ${MAX_OPSET} quantizes and its export (kept at that opset, int4 storage too) verifies in onnxruntime`, async () => {
  const { quantizeModel } = await import('../src/index.js');
  const { readOnnx } = await import('../src/onnx/index.js');
  const ws = await tinyWorkspace(2);
  try {
    const model = join(ws.dir, 'resnet26.onnx');
    writeFileSync(model, atOpset(tinyResNet(), MAX_OPSET));
    for (const int4Storage of [false, true]) {
      const output = join(ws.dir, `q${int4Storage}.onnx`);
      const { record } = await quantizeModel({ model, calib: ws.images, wBits: 4, aBits: 4, method: 'mse', preset: 'cifar', eval: ws.images, output, int4Storage });
      assert.equal(record.export!.ort_top1, record.top1);
      assert.equal(readOnnx(output).opsetVersion, MAX_OPSET);
    }
    writeFileSync(join(ws.dir, 'too-new.onnx'), atOpset(tinyResNet(), MAX_OPSET + 1));
    assert.throws(() => loadModel(join(ws.dir, 'too-new.onnx')), new RegExp(`opset ${MAX_OPSET + 1} not supported; pdquant reads opset 11–${MAX_OPSET}`));
  } finally {
    rmSync(ws.dir, { recursive: true, force: true });
  }
});
