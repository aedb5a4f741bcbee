// Split (torch.chunk / torch.split) in every opset form, and a ShuffleNetV2 unit (channel split, concat, channel shuffle).
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as E from '../src/engine/index.js';
import { execute } from '../src/graph/index.js';
import { loadModel } from '../src/graph/load.js';
import { attr, buildModel, randomFloats, runOrt, tensor, type NodeSpec } from './helpers/onnx-builder.js';
import { TorchLayers } from './helpers/torch-layers.js';
import { tinyWorkspace } from './helpers/tiny-resnet.js';
import type { proto } from '../src/onnx/proto.js';

/** x [1,6,4,4] → Conv 1×1 → Split along channels → each part through its own op → Concat. */
function splitModel(opset: number, form: 'attr' | 'input' | 'equal' | 'num_outputs', sizes = [2, 4]): Uint8Array {
  const inits: proto.ITensorProto[] = [tensor('w', 'float', [6, 6, 1, 1], Array.from(randomFloats(36, 4)))];
  const split: NodeSpec = { op: 'Split', name: 'split', inputs: ['c'], outputs: ['p0', 'p1'], attrs: { axis: attr.int(1) } };
  if (form === 'attr') split.attrs!.split = attr.ints(sizes);
  if (form === 'input') {
    inits.push(tensor('sizes', 'int64', [2], sizes));
    split.inputs.push('sizes');
  }
  if (form === 'num_outputs') split.attrs!.num_outputs = attr.int(2);
  const nodes: NodeSpec[] = [
    { op: 'Conv', inputs: ['x', 'w'], outputs: ['c'], attrs: { kernel_shape: attr.ints([1, 1]) } },
    split,
    { op: 'Relu', inputs: ['p0'], outputs: ['r0'] },
    { op: 'Sigmoid', inputs: ['p1'], outputs: ['r1'] },
    { op: 'Concat', inputs: ['r1', 'r0'], outputs: ['y'], attrs: { axis: attr.int(1) } },
  ];
  return buildModel({ opset, inputs: [{ name: 'x', dims: [1, 6, 4, 4] }], outputs: [{ name: 'y', dims: [1, 6, 4, 4] }], nodes, initializers: inits });
}

const x = { dims: [1, 6, 4, 4], data: randomFloats(96, 8) };

async function assertMatchesOrt(bytes: Uint8Array): Promise<void> {
  const expected = (await runOrt(bytes, { x })).y!;
  const m = loadModel(bytes);
  assert.ok(!m.fp.nodes.some((n) => n.opType === 'Split'));
  const got = E.tidy(() => Float32Array.from(execute(m.fp, { feeds: new Map([['x', E.tensor(x.data, x.dims)]]), outputs: ['y'] }).get('y')!.contiguous().data() as Float32Array));
  assert.deepEqual(got.length, expected.data.length);
  for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i]! - expected.data[i]!) <= 1e-6, `element ${i}: ${got[i]} vs ${expected.data[i]}`);
}

test('Split runs as slices and matches onnxruntime: sizes as attribute (opset 11), as input (13), equal parts, num_outputs (18)', async () => {
  await assertMatchesOrt(splitModel(11, 'attr'));
  await assertMatchesOrt(splitModel(13, 'input'));
  await assertMatchesOrt(splitModel(13, 'equal'));
  await assertMatchesOrt(splitModel(18, 'num_outputs'));
  assert.throws(() => loadModel(splitModel(13, 'input', [2, 3])), /node split \(Split\): split sizes \[2,3\] do not give 2 parts of a dim of 6/);
});

/**
 * A ShuffleNetV2 as torchvision writes it, exported at batch 1: stem conv-BN-ReLU (3→8), one stride-1 unit (chunk into
 * two halves, branch2 = 1×1-BN-ReLU, depthwise 3×3-BN, 1×1-BN-ReLU on the second; concat; channel shuffle as
 * Reshape [1,2,4,H,W] → Transpose → Reshape), conv5 1×1-BN-ReLU (8→16), mean over H and W, fc.
 */
function tinyShuffleNet(): Uint8Array {
  const L = new TorchLayers(31);
  const { nodes, initializers: inits } = L;
  const conv = (path: string, x: string, cin: number, cout: number, k: number, group = 1) => L.conv(path, x, cin, cout, k, { group });
  const bn = L.bn.bind(L);
  const relu = (path: string, x: string) => L.act('Relu', path, x);
  const stem = relu('/conv1/conv1.2', bn('/conv1/conv1.1', conv('/conv1/conv1.0', 'input', 3, 8, 3), 8));
  const u = '/stage2/stage2.0';
  inits.push(tensor('halves', 'int64', [2], [4, 4]));
  nodes.push({ op: 'Split', name: `${u}/Split`, inputs: [stem, 'halves'], outputs: ['x1', 'x2'], attrs: { axis: attr.int(1) } });
  const b = `${u}/branch2`;
  const b2 = relu(`${b}/branch2.7`, bn(`${b}/branch2.6`, conv(`${b}/branch2.5`, bn(`${b}/branch2.4`, conv(`${b}/branch2.3`, relu(`${b}/branch2.2`, bn(`${b}/branch2.1`, conv(`${b}/branch2.0`, 'x2', 4, 4, 1), 4)), 4, 4, 3, 4), 4), 4, 4, 1), 4));
  nodes.push({ op: 'Concat', name: `${u}/Concat`, inputs: ['x1', b2], outputs: ['cat'], attrs: { axis: attr.int(1) } });
  inits.push(tensor('shape5', 'int64', [5], [1, 2, 4, 8, 8]), tensor('shape4', 'int64', [4], [1, 8, 8, 8]));
  nodes.push({ op: 'Reshape', name: `${u}/Reshape`, inputs: ['cat', 'shape5'], outputs: ['grouped'] });
  nodes.push({ op: 'Transpose', name: `${u}/Transpose`, inputs: ['grouped'], outputs: ['shuffled'], attrs: { perm: attr.ints([0, 2, 1, 3, 4]) } });
  nodes.push({ op: 'Reshape', name: `${u}/Reshape_1`, inputs: ['shuffled', 'shape4'], outputs: ['unit_out'] });
  const head = relu('/conv5/conv5.2', bn('/conv5/conv5.1', conv('/conv5/conv5.0', 'unit_out', 8, 16, 1), 16));
  nodes.push({ op: 'ReduceMean', name: '/ReduceMean', inputs: [head], outputs: ['pooled'], attrs: { axes: attr.ints([2, 3]), keepdims: attr.int(0) } });
  inits.push(tensor('fc.weight', 'float', [4, 16], L.rnd(64, 0.4)), tensor('fc.bias', 'float', [4], L.rnd(4, 0.1)));
  nodes.push({ op: 'Gemm', name: '/fc/Gemm', inputs: ['pooled', 'fc.weight', 'fc.bias'], outputs: ['logits'], attrs: { transB: attr.int(1) } });
  return buildModel({ inputs: [{ name: 'input', dims: [1, 3, 8, 8] }], outputs: [{ name: 'logits', dims: [1, 4] }], nodes, initializers: inits });
}

test('a ShuffleNetV2 unit (channel split and shuffle) quantizes, every layer but the first on quantized inputs, and onnxruntime agrees', async () => {
  const { quantizeModel } = await import('../src/index.js');
  const ws = await tinyWorkspace(2);
  try {
    const model = join(ws.dir, 'shufflenet.onnx');
    writeFileSync(model, tinyShuffleNet());
    const loaded = loadModel(model);
    assert.equal(loaded.declaredBatch, 1);
    assert.deepEqual(loaded.units.map((u) => u.name), ['conv1.0', 'branch2.0', 'branch2.3', 'branch2.5', 'conv5.0', 'fc']);
    const { placeQuantizers } = await import('../src/quant/placement.js');
    assert.deepEqual(placeQuantizers(loaded.folded, loaded.units, { wBits: 4, aBits: 4 }).acts.filter((a) => a.role === 'layer input'), []);
    const { record } = await quantizeModel({
      model, calib: ws.images, wBits: 4, aBits: 4, method: 'pdquant', preset: 'cifar', eval: ws.images, output: join(ws.dir, 'shufflenet.q.onnx'),
      runDir: join(ws.dir, 'run'), recon: { iters: 10, batch: 4, dcSteps: 5 },
    });
    assert.equal(record.export!.ort_top1, record.top1);
    assert.ok(record.export!.max_logit_diff! <= 1e-4 * Math.max(1, record.export!.max_logit!));
  } finally {
    rmSync(ws.dir, { recursive: true, force: true });
  }
});
