// Models whose file fixes the batch size (torch.onnx.export without dynamic axes) run at any batch; the export keeps the size.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeOnnx, readOnnx, type OnnxModel } from '../src/onnx/index.js';
import { declaredBatch, freeBatch, withDeclaredBatch } from '../src/onnx/batch.js';
import { loadModel } from '../src/graph/load.js';
import { attr, buildModel, randomFloats, runOrt, tensor, withFixedBatch, type NodeSpec } from './helpers/onnx-builder.js';
import { tinyResNet } from './helpers/tiny-resnet.js';

const sample = 3 * 8 * 8;
const inputs = randomFloats(3 * sample, 11);
const logitsOf = async (model: OnnxModel | Uint8Array, x: Float32Array, n: number) =>
  (await runOrt(model instanceof Uint8Array ? model : encodeOnnx(model), { input: { dims: [n, 3, 8, 8], data: x } })).logits!;

for (const batch of [1, 3]) {
  test(`a model fixed to batch ${batch} (Reshape to [${batch}, -1]) runs at other batch sizes with the same per-sample logits`, async () => {
    const fixed = withFixedBatch(tinyResNet(), batch);
    const read = readOnnx(fixed);
    assert.equal(declaredBatch(read), batch);
    const freed = freeBatch(read);
    assert.equal(declaredBatch(freed), null);
    assert.deepEqual(freed.inputs[0]!.dims, ['N', 3, 8, 8]);
    const one = await logitsOf(freed, inputs.subarray(0, sample), 1);
    const two = await logitsOf(freed, inputs.subarray(0, 2 * sample), 2);
    const reference = await logitsOf(tinyResNet(), inputs.subarray(0, 2 * sample), 2);
    assert.deepEqual([...two.data.subarray(0, 4)], [...one.data]);
    for (let i = 0; i < 8; i++) assert.ok(Math.abs(two.data[i]! - reference.data[i]!) < 1e-5);
    // At the declared batch the freed model computes what the file computes.
    const atDeclared = inputs.subarray(0, batch * sample);
    assert.deepEqual([...(await logitsOf(withDeclaredBatch(freed, batch), atDeclared, batch)).data], [...(await logitsOf(fixed, atDeclared, batch)).data]);
    const restored = withDeclaredBatch(freed, batch);
    assert.deepEqual(restored.inputs[0]!.dims, [batch, 3, 8, 8]);
    assert.deepEqual(restored.outputs[0]!.dims, [batch, 4]);
    assert.equal(loadModel(fixed).declaredBatch, batch);
  });
}

test('a model with a symbolic batch is left as it is', () => {
  const model = readOnnx(tinyResNet());
  assert.equal(freeBatch(model), model);
  assert.equal(withDeclaredBatch(model, null), model);
  assert.equal(loadModel(tinyResNet()).declaredBatch, null);
});

const w = tensor('w', 'float', [4, 3, 3, 3], [...randomFloats(108, 3)]);
const fc = [tensor('fcw', 'float', [2, 4], [...randomFloats(8, 4)]), tensor('fcb', 'float', [2], [0.1, -0.1])];
const head: NodeSpec[] = [
  { op: 'GlobalAveragePool', inputs: ['m'], outputs: ['g'] },
  { op: 'Flatten', inputs: ['g'], outputs: ['f'], attrs: { axis: attr.int(1) } },
  { op: 'Gemm', inputs: ['f', 'fcw', 'fcb'], outputs: ['y'], attrs: { transB: attr.int(1) } },
];

test('a fixed-batch model that computes with its batch size is refused with how to export it instead', () => {
  // Concatenating a constant of batch 1 only works at batch 1.
  const bytes = buildModel({
    inputs: [{ name: 'x', dims: [1, 3, 8, 8] }],
    outputs: [{ name: 'y', dims: [1, 2] }],
    initializers: [w, tensor('extra', 'float', [1, 1, 8, 8], [...randomFloats(64, 5)]), tensor('w2', 'float', [4, 5, 1, 1], [...randomFloats(20, 6)]), ...fc],
    nodes: [
      { op: 'Conv', inputs: ['x', 'w'], outputs: ['c'], attrs: { pads: attr.ints([1, 1, 1, 1]) } },
      { op: 'Concat', inputs: ['c', 'extra'], outputs: ['cat'], attrs: { axis: attr.int(1) } },
      { op: 'Conv', inputs: ['cat', 'w2'], outputs: ['m'] },
      ...head,
    ],
  });
  const model = readOnnx(bytes);
  assert.throws(() => freeBatch(model, 'cat.onnx'), /cat\.onnx is exported for batch size 1 only and computes with that size .*dynamic_axes/);
});

test('a fixed-batch model whose samples would mix at other batch sizes is refused when loaded', () => {
  // The mean over axis 0 is the identity at batch 1 and mixes samples at any other batch; shapes alone do not show it.
  const bytes = buildModel({
    inputs: [{ name: 'x', dims: [1, 3, 8, 8] }],
    outputs: [{ name: 'y', dims: [1, 2] }],
    initializers: [w, ...fc],
    nodes: [
      { op: 'Conv', inputs: ['x', 'w'], outputs: ['c'], attrs: { pads: attr.ints([1, 1, 1, 1]) } },
      { op: 'ReduceMean', inputs: ['c'], outputs: ['mean'], attrs: { axes: attr.ints([0]), keepdims: attr.int(1) } },
      { op: 'Add', inputs: ['c', 'mean'], outputs: ['m'] },
      ...head,
    ],
  });
  assert.throws(() => loadModel(bytes), /exported for batch size 1 and its samples interact at other batch sizes/);
});
