import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkSupported, encodeOnnx, foldConstants, readOnnx, type OnnxModel } from '../src/onnx/index.js';
import { attr, buildModel, randomFloats, runOrt, tensor, type ModelSpec, type NodeSpec } from './helpers/onnx-builder.js';

const i64 = (values: (number | bigint)[], dims = [values.length]) => attr.tensor(tensor('', 'int64', dims, values));
const constant = (output: string, value: ReturnType<typeof attr.tensor>): NodeSpec => ({ op: 'Constant', inputs: [], outputs: [output], attrs: { value } });

/** Conv → Relu → Pad whose pads come from the chain PyTorch writes for F.pad (Shape/Gather/ConstantOfShape/Concat/Reshape/Slice/Transpose/Cast) → Clip → GAP → x.view(x.size(0), -1) → Gemm. */
const padChain: ModelSpec = {
  inputs: [{ name: 'x', dims: ['N', 3, 8, 8] }],
  outputs: [{ name: 'y', dims: ['N', 5] }],
  initializers: [
    tensor('w', 'float', [4, 3, 3, 3], [...randomFloats(108, 3)]),
    tensor('wfc', 'float', [5, 8], [...randomFloats(40, 4)]),
    tensor('bfc', 'float', [5], [...randomFloats(5, 5)]),
    tensor('unused', 'float', [2], [1, 2]),
  ],
  nodes: [
    { op: 'Conv', inputs: ['x', 'w'], outputs: ['c'], attrs: { pads: attr.ints([1, 1, 1, 1]) } },
    { op: 'Relu', inputs: ['c'], outputs: ['r'] },
    { op: 'Relu', inputs: ['x'], outputs: ['dead'] },
    // Channels to add: (8 - C) / 2 on each side, C read from the shape.
    { op: 'Shape', inputs: ['r'], outputs: ['s'] },
    constant('one', i64([1], [])),
    { op: 'Gather', inputs: ['s', 'one'], outputs: ['C'] },
    constant('eight', i64([8], [])),
    { op: 'Sub', inputs: ['eight', 'C'], outputs: ['diff'] },
    constant('two', i64([2], [])),
    { op: 'Div', inputs: ['diff', 'two'], outputs: ['half'] },
    constant('ax0', i64([0])),
    { op: 'Unsqueeze', inputs: ['half', 'ax0'], outputs: ['h1'] },
    constant('zeros4', i64([0, 0, 0, 0])),
    { op: 'Concat', inputs: ['zeros4', 'h1', 'h1'], outputs: ['p6'], attrs: { axis: attr.int(0) } },
    constant('len2', i64([2])),
    { op: 'ConstantOfShape', inputs: ['len2'], outputs: ['z2'], attrs: { value: i64([0], [1]) } },
    { op: 'Concat', inputs: ['p6', 'z2'], outputs: ['p8'], attrs: { axis: attr.int(0) } },
    constant('pairs', i64([-1, 2])),
    { op: 'Reshape', inputs: ['p8', 'pairs'], outputs: ['p4x2'] },
    constant('m1', i64([-1])),
    constant('minf', i64([-9223372036854775807n])),
    { op: 'Slice', inputs: ['p4x2', 'm1', 'minf', 'ax0', 'm1'], outputs: ['rev'] },
    { op: 'Transpose', inputs: ['rev'], outputs: ['tr'], attrs: { perm: attr.ints([1, 0]) } },
    { op: 'Reshape', inputs: ['tr', 'm1'], outputs: ['flat8'] },
    { op: 'Cast', inputs: ['flat8'], outputs: ['pads'], attrs: { to: attr.int(7) } },
    constant('cv', attr.tensor(tensor('', 'float', [], [0]))),
    { op: 'Pad', inputs: ['r', 'pads', 'cv'], outputs: ['pd'], attrs: { mode: attr.string('constant') } },
    constant('lo', attr.tensor(tensor('', 'float', [], [0]))),
    constant('hi', attr.tensor(tensor('', 'float', [], [0.5]))),
    { op: 'Clip', inputs: ['pd', 'lo', 'hi'], outputs: ['cl'] },
    { op: 'GlobalAveragePool', inputs: ['cl'], outputs: ['gap'] },
    // x.view(x.size(0), -1): the batch size flows into the Reshape target.
    { op: 'Shape', inputs: ['gap'], outputs: ['s2'] },
    constant('zero', i64([0], [])),
    { op: 'Gather', inputs: ['s2', 'zero'], outputs: ['n'] },
    { op: 'Unsqueeze', inputs: ['n', 'ax0'], outputs: ['n1'] },
    { op: 'Concat', inputs: ['n1', 'm1'], outputs: ['target'], attrs: { axis: attr.int(0) } },
    { op: 'Reshape', inputs: ['gap', 'target'], outputs: ['feat'] },
    { op: 'Gemm', inputs: ['feat', 'wfc', 'bfc'], outputs: ['y'], attrs: { transB: attr.int(1) } },
  ],
};

/** Asserts that onnxruntime gives the same outputs for the original bytes and the encoded folded model. */
async function assertSameOutputs(original: Uint8Array, folded: OnnxModel, inputDims: number[][]): Promise<void> {
  for (const dims of inputDims) {
    const x = { dims, data: randomFloats(dims.reduce((a, b) => a * b, 1), dims[0]) };
    const expected = await runOrt(original, { x });
    const actual = await runOrt(encodeOnnx(folded), { x });
    assert.deepEqual(actual, expected);
  }
}

const ints = (m: OnnxModel, name: string): number[] => [...(m.initializers.get(name)?.data ?? [])].map(Number);

test('foldConstants turns the F.pad chain into constant pads and keeps the batch symbolic', async () => {
  const bytes = buildModel(padChain);
  const folded = foldConstants(readOnnx(bytes));
  assert.deepEqual(folded.nodes.map((n) => n.opType), ['Conv', 'Relu', 'Pad', 'Clip', 'GlobalAveragePool', 'Reshape', 'Gemm']);
  checkSupported(folded);
  const [pad, clip, reshape] = ['Pad', 'Clip', 'Reshape'].map((op) => folded.nodes.find((n) => n.opType === op)!);
  assert.deepEqual(ints(folded, pad.inputs[1]), [0, 2, 0, 0, 0, 2, 0, 0]);
  assert.deepEqual(clip.inputs, ['pd', 'lo', 'hi']);
  assert.deepEqual(ints(folded, reshape.inputs[1]), [0, -1]);
  // Only what the kept nodes read survives: no 'unused', no dead branch.
  assert.deepEqual([...folded.initializers.keys()].sort(), ['bfc', 'cv', 'hi', 'lo', 'pads', 'target_batch_free', 'w', 'wfc']);
  assert.deepEqual(folded.inputs[0].dims, ['N', 3, 8, 8]);
  await assertSameOutputs(bytes, folded, [[1, 3, 8, 8], [3, 3, 8, 8]]);
});

test('foldConstants with a fixed batch makes the input static', async () => {
  const bytes = buildModel(padChain);
  const folded = foldConstants(readOnnx(bytes), { batch: 2 });
  assert.deepEqual(folded.inputs[0].dims, [2, 3, 8, 8]);
  assert.deepEqual(folded.outputs[0].dims, [2, 5]);
  assert.deepEqual(ints(folded, folded.nodes.find((n) => n.opType === 'Reshape')!.inputs[1]), [2, -1]);
  await assertSameOutputs(bytes, folded, [[2, 3, 8, 8]]);
});

test('foldConstants evaluates Range, Equal, Not, Where, Expand, Cast, Gather (negative index), Mul on constants', async () => {
  const spec: ModelSpec = {
    inputs: [{ name: 'x', dims: ['N', 2, 4] }],
    outputs: [{ name: 'y' }],
    nodes: [
      constant('start', i64([0], [])),
      constant('limit', i64([4], [])),
      constant('delta', i64([1], [])),
      { op: 'Range', inputs: ['start', 'limit', 'delta'], outputs: ['r'] },
      constant('two', i64([2], [])),
      { op: 'Equal', inputs: ['r', 'two'], outputs: ['isTwo'] },
      { op: 'Not', inputs: ['isTwo'], outputs: ['notTwo'] },
      { op: 'Mul', inputs: ['r', 'two'], outputs: ['r2'] },
      constant('ten', i64([10], [])),
      { op: 'Where', inputs: ['notTwo', 'r2', 'ten'], outputs: ['w'] },
      // Expand to [2, last dim of x]: a shape entry that does not depend on the batch.
      { op: 'Shape', inputs: ['x'], outputs: ['s'] },
      constant('last', i64([-1], [])),
      { op: 'Gather', inputs: ['s', 'last'], outputs: ['d'] },
      constant('ax0', i64([0])),
      { op: 'Unsqueeze', inputs: ['d', 'ax0'], outputs: ['d1'] },
      constant('rows', i64([2])),
      { op: 'Concat', inputs: ['rows', 'd1'], outputs: ['shape'], attrs: { axis: attr.int(0) } },
      { op: 'Expand', inputs: ['w', 'shape'], outputs: ['e'] },
      { op: 'Cast', inputs: ['e'], outputs: ['ef'], attrs: { to: attr.int(1) } },
      { op: 'Add', inputs: ['x', 'ef'], outputs: ['y'] },
    ],
  };
  const bytes = buildModel(spec);
  const folded = foldConstants(readOnnx(bytes));
  assert.deepEqual(folded.nodes.map((n) => n.opType), ['Add']);
  const ef = folded.initializers.get('ef');
  assert.deepEqual(ef && { dataType: ef.dataType, dims: ef.dims, data: [...ef.data] }, { dataType: 'float32', dims: [2, 4], data: [0, 2, 10, 6, 0, 2, 10, 6] });
  await assertSameOutputs(bytes, folded, [[1, 2, 4], [3, 2, 4]]);
});

test('foldConstants keeps what depends on the batch size', async () => {
  const spec: ModelSpec = {
    inputs: [{ name: 'x', dims: ['N', 3] }],
    outputs: [{ name: 'y' }],
    nodes: [
      { op: 'Shape', inputs: ['x'], outputs: ['s'] },
      { op: 'ConstantOfShape', inputs: ['s'], outputs: ['ones'], attrs: { value: attr.tensor(tensor('', 'float', [1], [1])) } },
      { op: 'Add', inputs: ['x', 'ones'], outputs: ['y'] },
    ],
  };
  const bytes = buildModel(spec);
  const folded = foldConstants(readOnnx(bytes));
  assert.deepEqual(folded.nodes.map((n) => n.opType), ['Shape', 'ConstantOfShape', 'Add']);
  assert.throws(() => checkSupported(folded), /^OnnxError: Unsupported ONNX ops: Shape \(nodes: s\), ConstantOfShape \(nodes: ones\)\. .*what is listed reads values that only the network computes, often behind one of the other ops listed, or the batch size\.$/);
  await assertSameOutputs(bytes, folded, [[1, 3], [3, 3]]);
});

test('foldConstants explains a model that only runs at one batch size', () => {
  const m = readOnnx(buildModel({
    inputs: [{ name: 'x', dims: ['N', 8, 1, 1] }],
    outputs: [{ name: 'y' }],
    initializers: [tensor('shape', 'int64', [2], [1, 8])],
    nodes: [{ op: 'Reshape', inputs: ['x', 'shape'], outputs: ['y'], name: '/Reshape' }],
  }));
  assert.throws(() => foldConstants(m), /^OnnxError: node \/Reshape \(Reshape\): cannot reshape \[2,8,1,1\] \(16 elements\) to \[1,8\] \(at batch size 2: .*fold with \{ batch \}\)$/);
  assert.deepEqual(foldConstants(m, { batch: 1 }).inputs[0].dims, [1, 8, 1, 1]);
});
