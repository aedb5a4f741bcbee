// Fully connected layers in one form: Gemm with an [out, in] weight, so weights are quantized per output channel.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeOnnx, readOnnx } from '../src/onnx/index.js';
import { canonicalLinear } from '../src/onnx/linear.js';
import { loadModel } from '../src/graph/load.js';
import { attr, buildModel, randomFloats, runOrt, tensor, type NodeSpec } from './helpers/onnx-builder.js';

const w = tensor('w', 'float', [6, 4], [...randomFloats(24, 2)]); // [in, out]
const b = tensor('b', 'float', [4], [0.1, -0.2, 0.3, -0.4]);
const x = { x: { dims: [3, 6], data: randomFloats(18, 9) } };
const fc = (nodes: NodeSpec[], inits = [w, b], dims: (number | string)[] = ['N', 6]) =>
  buildModel({ inputs: [{ name: 'x', dims }], outputs: [{ name: 'y', dims: ['N', 4] }], nodes, initializers: inits });

async function sameOutputs(bytes: Uint8Array): Promise<ReturnType<typeof canonicalLinear>> {
  const model = canonicalLinear(readOnnx(bytes));
  const before = (await runOrt(bytes, x)).y!.data;
  const after = (await runOrt(encodeOnnx(model), x)).y!.data;
  for (let i = 0; i < before.length; i++) assert.ok(Math.abs(before[i]! - after[i]!) < 1e-5);
  return model;
}

test('MatMul by an [in, out] weight and its bias Add become one Gemm with the weight as [out, in]', async () => {
  const model = await sameOutputs(fc([
    { op: 'MatMul', inputs: ['x', 'w'], outputs: ['m'], name: '/fc/MatMul' },
    { op: 'Add', inputs: ['m', 'b'], outputs: ['y'], name: '/fc/Add' },
  ]));
  assert.deepEqual(model.nodes.map((n) => `${n.name}:${n.opType}`), ['/fc/MatMul:Gemm']);
  assert.deepEqual(model.nodes[0]!.inputs, ['x', 'w', 'b']);
  assert.deepEqual(model.initializers.get('w')!.dims, [4, 6]);
});

test('Gemm with transB=0 gets its weight transposed; a weight other nodes read stays for them', async () => {
  const model = await sameOutputs(fc([
    { op: 'Gemm', inputs: ['x', 'w', 'b'], outputs: ['g'], attrs: { alpha: attr.float(0.5) } },
    { op: 'MatMul', inputs: ['x', 'w'], outputs: ['m'] },
    { op: 'Add', inputs: ['g', 'm'], outputs: ['y'] },
  ]));
  assert.deepEqual(model.nodes.map((n) => `${n.opType}:${n.inputs[1]}`), ['Gemm:w_transposed', 'Gemm:w_transposed', 'Add:m']);
  assert.equal(model.nodes[0]!.attrs.transB?.value, 1);
  assert.equal(model.nodes[0]!.attrs.alpha?.value, 0.5);
});

test('a MatMul weight on a higher-rank activation is refused when the model is loaded, not at export', () => {
  const bytes = buildModel({
    inputs: [{ name: 'x', dims: ['N', 2, 6] }],
    outputs: [{ name: 'y' }],
    initializers: [w],
    nodes: [{ op: 'MatMul', inputs: ['x', 'w'], outputs: ['y'], name: '/proj/MatMul' }],
  });
  assert.deepEqual(canonicalLinear(readOnnx(bytes)).nodes.map((n) => n.opType), ['MatMul']);
  assert.throws(() => loadModel(bytes), /node \/proj\/MatMul \(MatMul\) multiplies an activation of rank other than 2 by the weight 'w'/);
});
