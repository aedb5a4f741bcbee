import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OnnxError, SUPPORTED_OPS, checkSupported, readOnnx, summarize } from '../src/onnx/index.js';
import { attr, buildModel, tensor, type NodeSpec } from './helpers/onnx-builder.js';

const model = (nodes: NodeSpec[], initializers = [tensor('pads', 'int64', [4], [0, 0, 1, 1])]) =>
  readOnnx(buildModel({ inputs: [{ name: 'x', dims: ['N', 8] }], outputs: [{ name: nodes.at(-1)!.outputs[0] }], nodes, initializers }));

const rejects = (fn: () => unknown, message: string): void =>
  assert.throws(fn, (e: unknown) => e instanceof OnnxError && e.message.startsWith(message));

test('checkSupported lists every unsupported op type once, with its nodes', () => {
  const m = model([
    { op: 'LSTM', inputs: ['x'], outputs: ['h'], name: '/rnn/LSTM' },
    { op: 'Softmax', inputs: ['h'], outputs: ['s0'], name: '/Softmax' },
    { op: 'Relu', inputs: ['s0'], outputs: ['r'] },
    { op: 'Softmax', inputs: ['r'], outputs: ['s1'], name: '/Softmax_1' },
  ]);
  rejects(() => checkSupported(m), `Unsupported ONNX ops: LSTM (nodes: /rnn/LSTM), Softmax (nodes: /Softmax, /Softmax_1). pdquant supports: ${[...SUPPORTED_OPS].join(', ')} (`);
});

test('a model that ends in Softmax is told to return its logits', () => {
  const m = model([{ op: 'Relu', inputs: ['x'], outputs: ['r'] }, { op: 'Softmax', inputs: ['r'], outputs: ['probs'], name: '/softmax/Softmax' }]);
  assert.throws(() => checkSupported(m), /Unsupported ONNX ops: Softmax \(nodes: \/softmax\/Softmax\)\..* The model ends in Softmax \(node \/softmax\/Softmax\): export it returning the logits instead/);
});

test('checkSupported refuses Pad modes other than constant, computed pads and other domains, naming the nodes', () => {
  const m = model([
    { op: 'Pad', inputs: ['x', 'pads'], outputs: ['p'], name: '/pad/Pad', attrs: { mode: attr.string('reflect') } },
    { op: 'Shape', inputs: ['p'], outputs: ['s'] },
    { op: 'Pad', inputs: ['p', 's'], outputs: ['q'], name: '/pad2/Pad' },
    { op: 'FusedConv', inputs: ['q'], outputs: ['f'], name: '/fc', domain: 'com.microsoft' },
  ]);
  rejects(() => checkSupported(m), "Unsupported ONNX ops: Pad in mode 'reflect' (nodes: /pad/Pad), Shape (nodes: s), Pad with a computed pads (nodes: /pad2/Pad), com.microsoft::FusedConv (nodes: /fc).");
});

test('checkSupported counts the nodes of an op past the first three, and names attention', () => {
  const nodes: NodeSpec[] = [];
  let x = 'x';
  for (let i = 0; i < 12; i++) {
    nodes.push({ op: 'Softmax', inputs: [x], outputs: [`s${i}`], name: `/layer${i}/attn/Softmax` });
    nodes.push({ op: 'Relu', inputs: [`s${i}`], outputs: [`r${i}`] });
    x = `r${i}`;
  }
  assert.throws(() => checkSupported(model(nodes)), (e: unknown) => {
    const message = (e as Error).message;
    assert.match(message, /^Unsupported ONNX ops: Softmax \(12 nodes: \/layer0\/attn\/Softmax, \/layer1\/attn\/Softmax, \/layer2\/attn\/Softmax and 9 more\)\./);
    assert.match(message, /Attention \(a Softmax or Einsum inside the network, as in vision transformers\) is not supported/);
    assert.doesNotMatch(message, /layer3/);
    return true;
  });
});

test('checkSupported accepts a model of supported ops', () => {
  checkSupported(model([{ op: 'Pad', inputs: ['x', 'pads'], outputs: ['p'] }, { op: 'Relu', inputs: ['p'], outputs: ['r'] }]));
});

test('summarize counts ops, parameters (not BN running statistics) and multiply-adds per image', () => {
  const f = (name: string, dims: number[]) => tensor(name, 'float', dims, new Array(dims.reduce((a, b) => a * b, 1)).fill(0.5));
  const m = readOnnx(buildModel({
    inputs: [{ name: 'x', dims: ['N', 3, 8, 8] }],
    outputs: [{ name: 'y' }],
    initializers: [f('w', [4, 3, 3, 3]), f('b', [4]), f('s', [4]), f('bb', [4]), f('mean', [4]), f('var', [4]), f('fc', [10, 4]), f('fcb', [10])],
    nodes: [
      { op: 'Conv', inputs: ['x', 'w', 'b'], outputs: ['c'], attrs: { strides: attr.ints([2, 2]), pads: attr.ints([1, 1, 1, 1]) } },
      { op: 'BatchNormalization', inputs: ['c', 's', 'bb', 'mean', 'var'], outputs: ['bn'] },
      { op: 'Relu', inputs: ['bn'], outputs: ['r'] },
      { op: 'GlobalAveragePool', inputs: ['r'], outputs: ['g'] },
      { op: 'Flatten', inputs: ['g'], outputs: ['fl'] },
      { op: 'Gemm', inputs: ['fl', 'fc', 'fcb'], outputs: ['y'], attrs: { transB: attr.int(1) } },
    ],
  }));
  const s = summarize(m);
  assert.deepEqual(s.opCounts, { Conv: 1, BatchNormalization: 1, Relu: 1, GlobalAveragePool: 1, Flatten: 1, Gemm: 1 });
  assert.equal(s.nodeCount, 6);
  assert.equal(s.parameters, 108 + 4 + 4 + 4 + 40 + 10);
  // Conv: 4×4×4 outputs × 27; Gemm: 10 outputs × 4.
  assert.equal(s.macs, 64 * 27 + 40);
  assert.equal(s.flops, 2 * s.macs);
});
