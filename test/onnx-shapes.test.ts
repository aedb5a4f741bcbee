import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OnnxError, concreteInputShapes, inferShapes, readOnnx } from '../src/onnx/index.js';
import { attr, buildModel, randomFloats, runOrt, tensor, type ModelSpec, type NodeSpec } from './helpers/onnx-builder.js';

const floats = (name: string, dims: number[]) =>
  tensor(name, 'float', dims, [...randomFloats(dims.reduce((a, b) => a * b, 1), dims.length + name.length)]);
const ints = (name: string, values: number[]) => tensor(name, 'int64', [values.length], values);

/** Asserts that inferShapes agrees with onnxruntime on every node output of the model (all are made graph outputs). */
async function assertShapesMatchOrt(spec: ModelSpec, inputDims: number[]): Promise<void> {
  const outputs = spec.nodes.flatMap((n) => n.outputs).filter(Boolean).map((name) => ({ name }));
  const bytes = buildModel({ ...spec, outputs });
  const inferred = inferShapes(readOnnx(bytes), { x: inputDims });
  const n = inputDims.reduce((a, b) => a * b, 1);
  const actual = await runOrt(bytes, { x: { dims: inputDims, data: randomFloats(n) } });
  for (const { name } of outputs) assert.deepEqual(inferred.get(name), actual[name].dims, `shape of ${name}`);
}

const convNet: NodeSpec[] = [
  { op: 'Conv', inputs: ['x', 'w1', 'b1'], outputs: ['c1'], attrs: { strides: attr.ints([2, 1]), pads: attr.ints([1, 0, 2, 1]), dilations: attr.ints([2, 1]) } },
  { op: 'Relu', inputs: ['c1'], outputs: ['r1'] },
  { op: 'MaxPool', inputs: ['r1'], outputs: ['p1'], attrs: { kernel_shape: attr.ints([3, 3]), strides: attr.ints([2, 2]), pads: attr.ints([1, 1, 1, 1]), ceil_mode: attr.int(1) } },
  // The last window would start in the end padding and is dropped (29 → 15, not 16).
  { op: 'MaxPool', inputs: ['x'], outputs: ['p0'], attrs: { kernel_shape: attr.ints([2, 2]), strides: attr.ints([2, 2]), pads: attr.ints([1, 1, 1, 1]), ceil_mode: attr.int(1) } },
  { op: 'AveragePool', inputs: ['p1'], outputs: ['a1'], attrs: { kernel_shape: attr.ints([2, 3]), strides: attr.ints([2, 2]), auto_pad: attr.string('SAME_UPPER') } },
  { op: 'Conv', inputs: ['a1', 'w2'], outputs: ['c2'], attrs: { group: attr.int(4), strides: attr.ints([2, 2]), auto_pad: attr.string('SAME_LOWER') } },
  { op: 'Conv', inputs: ['c2', 'w3'], outputs: ['c3'], attrs: { auto_pad: attr.string('VALID') } },
  { op: 'BatchNormalization', inputs: ['c3', 's', 'bias', 'mean', 'var'], outputs: ['bn'] },
  { op: 'Clip', inputs: ['bn', 'lo', 'hi'], outputs: ['cl'] },
  { op: 'HardSwish', inputs: ['cl'], outputs: ['hs'] },
  { op: 'HardSigmoid', inputs: ['hs'], outputs: ['hg'], attrs: { alpha: attr.float(0.3) } },
  { op: 'Sigmoid', inputs: ['hg'], outputs: ['sg'] },
  { op: 'Mul', inputs: ['sg', 'scale'], outputs: ['mu'] },
  { op: 'Sub', inputs: ['mu', 'shift'], outputs: ['su'] },
  { op: 'Div', inputs: ['su', 'two'], outputs: ['dv'] },
  { op: 'Add', inputs: ['dv', 'su'], outputs: ['ad'] },
  { op: 'ReduceMean', inputs: ['ad'], outputs: ['rm'], attrs: { axes: attr.ints([2, -1]), keepdims: attr.int(0) } },
  { op: 'Gemm', inputs: ['rm', 'wg', 'bg'], outputs: ['g'], attrs: { transB: attr.int(1) } },
  { op: 'Unsqueeze', inputs: ['g', 'ax1'], outputs: ['gu'] },
  { op: 'MatMul', inputs: ['gu', 'wm'], outputs: ['mm'] },
  { op: 'Flatten', inputs: ['mm'], outputs: ['fl'], attrs: { axis: attr.int(2) } },
  { op: 'GlobalAveragePool', inputs: ['ad'], outputs: ['gap'] },
  { op: 'Dropout', inputs: ['gap'], outputs: ['dr'] },
  { op: 'Identity', inputs: ['dr'], outputs: ['id'] },
];

const convInits = [
  floats('w1', [8, 3, 3, 3]), floats('b1', [8]), floats('w2', [8, 2, 3, 3]), floats('w3', [4, 8, 2, 2]),
  floats('s', [4]), floats('bias', [4]), floats('mean', [4]), tensor('var', 'float', [4], [1, 2, 3, 4]),
  tensor('lo', 'float', [], [-0.5]), tensor('hi', 'float', [], [0.5]),
  floats('scale', [1, 4, 1, 1]), floats('shift', [4, 1, 1]), tensor('two', 'float', [], [2]),
  floats('wg', [6, 4]), floats('bg', [6]), ints('ax1', [1]), floats('wm', [6, 5]),
];

test('inferShapes agrees with onnxruntime on conv, pooling (ceil_mode, auto_pad), BN, activations, broadcasting, Gemm, MatMul', async () => {
  for (const [h, w] of [[29, 23], [30, 24]]) {
    const spec = { opset: 14, inputs: [{ name: 'x', dims: ['N', 3, h, w] }], outputs: [], nodes: convNet, initializers: convInits };
    await assertShapesMatchOrt(spec, [2, 3, h, w]);
  }
});

const layoutNet: NodeSpec[] = [
  { op: 'Slice', inputs: ['x', 'starts', 'ends', 'axes', 'steps'], outputs: ['sl'] },
  { op: 'Slice', inputs: ['sl', 'st2', 'en2'], outputs: ['sl2'] },
  { op: 'Pad', inputs: ['sl2', 'pads', 'zero'], outputs: ['pd'] },
  { op: 'Transpose', inputs: ['pd'], outputs: ['tr'], attrs: { perm: attr.ints([0, 2, 3, 1]) } },
  { op: 'Transpose', inputs: ['tr'], outputs: ['tr2'] },
  { op: 'Unsqueeze', inputs: ['tr', 'uax'], outputs: ['un'] },
  { op: 'Squeeze', inputs: ['un', 'sax'], outputs: ['sq'] },
  { op: 'Concat', inputs: ['sq', 'sq', 'tr'], outputs: ['cat'], attrs: { axis: attr.int(-1) } },
  { op: 'Reshape', inputs: ['cat', 'shape'], outputs: ['rs'] },
  { op: 'Reshape', inputs: ['cat', 'shape2'], outputs: ['rs2'] },
  { op: 'MatMul', inputs: ['vec', 'rs2'], outputs: ['mv'] },
];

const layoutInits = [
  ints('starts', [-1, 0, 1]), ints('ends', [-1000, 100, -1]), ints('axes', [3, 1, -2]), ints('steps', [-2, 3, 2]),
  ints('st2', [1]), tensor('en2', 'int64', [1], [9223372036854775807n]),
  ints('pads', [0, 1, 0, 2, 0, 0, 1, -1]), tensor('zero', 'float', [], [0]),
  ints('uax', [1, -1]), ints('sax', [1, -1]),
  ints('shape', [0, -1, 2]), ints('shape2', [0, 0, 0, -1]), floats('vec', [8]),
];

test('inferShapes agrees with onnxruntime on Slice (negative steps, clamping), Pad, Transpose, (Un)Squeeze, Concat, Reshape', async () => {
  const spec = { inputs: [{ name: 'x', dims: ['N', 7, 11, 13] }], outputs: [], nodes: layoutNet, initializers: layoutInits };
  await assertShapesMatchOrt(spec, [3, 7, 11, 13]);
});

test('inferShapes reads axes as attributes before opset 13/18 and as inputs after', async () => {
  const attrAxes: ModelSpec = {
    opset: 11,
    inputs: [{ name: 'x', dims: ['N', 4, 1, 6] }],
    outputs: [],
    nodes: [
      { op: 'Squeeze', inputs: ['x'], outputs: ['sq'], attrs: { axes: attr.ints([2]) } },
      { op: 'Unsqueeze', inputs: ['sq'], outputs: ['un'], attrs: { axes: attr.ints([0, 3]) } },
      { op: 'ReduceMean', inputs: ['un'], outputs: ['rm'], attrs: { axes: attr.ints([-1]) } },
      { op: 'ReduceMean', inputs: ['rm'], outputs: ['all'], attrs: { keepdims: attr.int(0) } },
      { op: 'Squeeze', inputs: ['x'], outputs: ['sqall'] },
    ],
  };
  await assertShapesMatchOrt(attrAxes, [2, 4, 1, 6]);
  const inputAxes: ModelSpec = {
    opset: 18,
    inputs: [{ name: 'x', dims: ['N', 4, 5, 6] }],
    outputs: [],
    initializers: [ints('axes', [1, 3]), ints('pads', [1, 2, 3, 4]), ints('padAxes', [-1, 2])],
    nodes: [
      { op: 'ReduceMean', inputs: ['x', 'axes'], outputs: ['rm'], attrs: { keepdims: attr.int(0) } },
      { op: 'ReduceMean', inputs: ['x'], outputs: ['all'] },
      { op: 'Pad', inputs: ['x', 'pads', '', 'padAxes'], outputs: ['pd'] },
    ],
  };
  await assertShapesMatchOrt(inputAxes, [2, 4, 5, 6]);
});

test('inferShapes: default batch 1, errors name the node', () => {
  const m = readOnnx(buildModel({ inputs: [{ name: 'x', dims: ['N', 3, 8, 8] }], outputs: [{ name: 'c1' }], nodes: convNet.slice(0, 1), initializers: convInits }));
  assert.deepEqual(inferShapes(m).get('c1'), [1, 8, 4, 7]);
  assert.throws(() => inferShapes(m, { x: [1, 4, 8, 8] }), /input 'x' has shape \[N,3,8,8\], got \[1,4,8,8\]/);
  const bad = readOnnx(buildModel({ inputs: [{ name: 'x', dims: ['N', 3, 8, 8] }], outputs: [{ name: 'c1' }], nodes: convNet.slice(0, 1), initializers: [floats('w1', [8, 2, 3, 3]), floats('b1', [8])] }));
  assert.throws(() => inferShapes(bad), (e: unknown) => e instanceof OnnxError && /^node c1 \(Conv\): input \[1,3,8,8\] does not match weight \[8,2,3,3\] with group 1$/.test(e.message));
  const dynamic = readOnnx(buildModel({ inputs: [{ name: 'x', dims: ['N', 3, 'H', 8] }], outputs: [{ name: 'c1' }], nodes: convNet.slice(0, 1), initializers: convInits }));
  assert.throws(() => concreteInputShapes(dynamic, 1), /input 'x' dim 2 \(H\) is symbolic; pdquant needs static shapes apart from the batch dim/);
});
