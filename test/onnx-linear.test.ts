// Fully connected layers in one form: Gemm with an [out, in] weight, so weights are quantized per output channel.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeOnnx, readOnnx } from '../src/onnx/index.js';
import { canonicalLinear, linearAsMatMul } from '../src/onnx/linear.js';
import { toQdq } from '../src/onnx/qdq.js';
import * as E from '../src/engine/index.js';
import { execute } from '../src/graph/executor.js';
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

test('a linear layer on a higher-rank activation runs as the same Gemm, and linearAsMatMul writes it back as MatMul + Add', async () => {
  const bytes = buildModel({
    inputs: [{ name: 'x', dims: ['N', 2, 6] }],
    outputs: [{ name: 'y', dims: ['N', 2, 4] }],
    initializers: [w, b],
    nodes: [
      { op: 'MatMul', inputs: ['x', 'w'], outputs: ['m'], name: '/proj/MatMul' },
      { op: 'Add', inputs: ['b', 'm'], outputs: ['y'], name: '/proj/Add' },
    ],
  });
  const canonical = canonicalLinear(readOnnx(bytes));
  assert.deepEqual(canonical.nodes.map((n) => `${n.name}:${n.opType}`), ['/proj/MatMul:Gemm']);
  const loaded = loadModel(bytes);
  const data = randomFloats(3 * 2 * 6, 5);
  const ours = E.tidy(() => E.noGrad(() => {
    const out = execute(loaded.fp, { feeds: new Map([['x', E.tensor(data, [3, 2, 6])]]), outputs: ['y'] });
    return Float32Array.from(out.get('y')!.contiguous().data() as Float32Array);
  }));
  const want = (await runOrt(bytes, { x: { dims: [3, 2, 6], data } })).y!.data;
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(ours[i]! - want[i]!) < 1e-5, `${ours[i]} vs ${want[i]}`);

  // Quantized codes [out, in] on axis 0 come back as [in, out] on axis 1, the bias as an Add after the MatMul.
  const codes = Uint8Array.from({ length: 24 }, (_, i) => i % 16);
  const spec = { weights: [{ node: '/proj/MatMul', bits: 4, axis: 0, scale: new Float32Array(4).fill(0.1), zeroPoint: new Uint8Array(4).fill(8), codes }], acts: [] };
  const back = linearAsMatMul(canonical, spec);
  assert.deepEqual(back.model.nodes.map((n) => n.opType), ['MatMul', 'Add']);
  assert.equal(back.spec.weights[0]!.axis, 1);
  assert.equal(back.spec.weights[0]!.codes[1 * 4 + 2], codes[2 * 6 + 1]); // element (in 1, out 2)
  const fp = (await runOrt(encodeOnnx(back.model), { x: { dims: [3, 2, 6], data } })).y!.data;
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(fp[i]! - want[i]!) < 1e-5);
  const qdq = (await runOrt(encodeOnnx(toQdq(back.model, back.spec)), { x: { dims: [3, 2, 6], data } }, { graphOptimizationLevel: 'disabled' })).y!.data;
  const wq = Array.from(codes, (c) => (c - 8) * 0.1); // [out, in]
  for (let r = 0; r < 6; r++) for (let o = 0; o < 4; o++) {
    let expect = [0.1, -0.2, 0.3, -0.4][o]!;
    for (let i = 0; i < 6; i++) expect += data[r * 6 + i]! * wq[o * 6 + i]!;
    assert.ok(Math.abs(qdq[r * 4 + o]! - expect) < 1e-4, `${qdq[r * 4 + o]} vs ${expect}`);
  }
});
