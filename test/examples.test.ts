// The bundled demo model (examples/fashion-cnn.onnx, made by examples/train-fashion-mnist.ts) stays loadable,
// partitions into stem + blocks + fc, and runs the same on pdquant's executor as in onnxruntime.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { openDataset, makeTransform } from '../src/data/index.js';
import { evaluateGraph, evaluateOrt } from '../src/eval/index.js';
import { loadModel } from '../src/graph/load.js';
import { readOnnx } from '../src/onnx/read.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const MODEL = join(root, 'examples/fashion-cnn.onnx');
const REPORT = join(root, 'examples/fashion-cnn.json');
const DATA = '/usr/share/datasets/fashion-mnist';

test('examples/fashion-cnn.onnx: opset 13, BN kept, exporter-style names, preprocessing in the metadata', () => {
  const m = readOnnx(MODEL);
  const report = JSON.parse(readFileSync(REPORT, 'utf8')) as { preprocessing: { mean: number; std: number } };
  assert.equal(m.opsetVersion, 13);
  assert.deepEqual(m.inputs, [{ name: 'input', elemType: 'float32', dims: ['N', 1, 28, 28] }]);
  assert.deepEqual(m.outputs, [{ name: 'logits', elemType: 'float32', dims: ['N', 10] }]);
  assert.equal(Number(m.metadata.preprocess_mean), report.preprocessing.mean);
  assert.equal(Number(m.metadata.preprocess_std), report.preprocessing.std);
  const names = m.nodes.map((n) => n.name);
  for (const name of ['/stem/conv/Conv', '/stem/bn/BatchNormalization', '/stage1/block0/conv1/Conv', '/stage1/block0/Add', '/stage1/block0/relu2/Relu', '/fc/Gemm'])
    assert.ok(names.includes(name), `no node ${name}`);
  assert.ok(m.nodes.filter((n) => n.opType === 'BatchNormalization').length >= 7);
  assert.equal(m.nodes.find((n) => n.name === '/stem/conv/Conv')!.outputs[0], '/stem/conv/Conv_output_0');
});

test('examples/fashion-cnn.onnx: units are the stem, one per residual block, and the fc', () => {
  const model = loadModel(MODEL);
  const adds = model.onnx.nodes.filter((n) => n.opType === 'Add').map((n) => n.name.replace(/\/Add$/, ''));
  assert.deepEqual(model.units.map((u) => u.kind), ['layer', ...adds.map(() => 'block'), 'layer']);
  assert.equal(model.units[0]!.nodes[0]!.name, '/stem/conv/Conv');
  adds.forEach((block, i) => assert.equal(model.units[i + 1]!.nodes.at(-1)!.name, `${block}/relu2/Relu`));
  assert.equal(model.units.at(-1)!.nodes.at(-1)!.name, '/fc/Gemm');
  model.fp.dispose();
  model.folded.dispose();
});

test('examples/fashion-cnn.onnx: executor and onnxruntime agree on 1,000 test images', { skip: !existsSync(DATA) && `${DATA} not installed` }, async () => {
  const report = JSON.parse(readFileSync(REPORT, 'utf8')) as { preprocessing: { mean: number; std: number } };
  const transform = makeTransform('mnist', { mean: [report.preprocessing.mean], std: [report.preprocessing.std] });
  const ds = await openDataset(DATA, { split: 'test', limit: 1000 });
  const model = loadModel(MODEL);
  const opts = { transform, batchSize: 250 };
  const ort = await evaluateOrt(MODEL, ds, opts);
  const fp = await evaluateGraph(model.fp, ds, opts);
  const folded = await evaluateGraph(model.folded, ds, opts);
  assert.equal(fp.top1, ort.top1);
  assert.equal(fp.top5, ort.top5);
  assert.ok(Math.abs(folded.top1 - ort.top1) <= 0.2, `BN-folded top-1 ${folded.top1} vs ${ort.top1}`);
  assert.ok(ort.top1 >= 85, `top-1 ${ort.top1} on the first 1,000 test images`);
  model.fp.dispose();
  model.folded.dispose();
});
