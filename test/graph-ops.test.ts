// Ops on activations that the reference's models do not have, checked against onnxruntime: Gather with constant
// indices (torchvision's GoogLeNet and Inception-v3 with transform_input=True, the pretrained default, pick each
// channel with x[:, c], rescale it and concatenate the three again) and Cast to float32 (PyTorch's x.float()).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as E from '../src/engine/index.js';
import { execute } from '../src/graph/executor.js';
import { loadModel } from '../src/graph/load.js';
import { onnx, type proto } from '../src/onnx/proto.js';
import { attr, buildModel, randomFloats, runOrt, tensor } from './helpers/onnx-builder.js';
import { readOnnx } from '../src/onnx/read.js';
import { checkSupported } from '../src/onnx/supported.js';
import { Graph } from '../src/graph/graph.js';
import { tinyResNet, tinyWorkspace } from './helpers/tiny-resnet.js';

/** tinyResNet behind torchvision's _transform_input: x_c = x[:, c].unsqueeze(1) · a_c + b_c, concatenated on channels. */
function withTransformInput(): Uint8Array {
  const m = onnx.ModelProto.decode(tinyResNet());
  const g = m.graph!;
  g.input![0]!.name = 'x';
  const nodes: proto.INodeProto[] = [];
  for (const c of [0, 1, 2]) {
    g.initializer!.push(tensor(`idx${c}`, 'int64', [], [c]), tensor(`a${c}`, 'float', [], [0.45 + 0.01 * c]), tensor(`b${c}`, 'float', [], [-0.03 * c]));
    nodes.push(
      { name: `/Gather_${c}`, opType: 'Gather', input: ['x', `idx${c}`], output: [`g${c}`], attribute: [{ name: 'axis', type: 2, i: 1 }] },
      { name: `/Unsqueeze_${c}`, opType: 'Unsqueeze', input: [`g${c}`, 'axis1'], output: [`u${c}`] },
      { name: `/Mul_${c}`, opType: 'Mul', input: [`u${c}`, `a${c}`], output: [`m${c}`] },
      { name: `/Add_${c}`, opType: 'Add', input: [`m${c}`, `b${c}`], output: [`x${c}`] },
    );
  }
  g.initializer!.push(tensor('axis1', 'int64', [1], [1]));
  nodes.push({ name: '/Concat', opType: 'Concat', input: ['x0', 'x1', 'x2'], output: ['input'], attribute: [{ name: 'axis', type: 2, i: 1 }] });
  g.node!.unshift(...nodes);
  return onnx.ModelProto.encode(m).finish();
}

test('Gather by a constant index runs on the engine as onnxruntime runs it, and such a model quantizes and exports', async () => {
  const bytes = withTransformInput();
  const loaded = loadModel(bytes);
  const data = randomFloats(2 * 3 * 8 * 8, 4);
  const ours = E.tidy(() => E.noGrad(() => {
    const out = execute(loaded.fp, { feeds: new Map([['x', E.tensor(data, [2, 3, 8, 8])]]), outputs: [loaded.fp.output.name] });
    return Float32Array.from(out.get(loaded.fp.output.name)!.contiguous().data() as Float32Array);
  }));
  const want = (await runOrt(bytes, { x: { dims: [2, 3, 8, 8], data } })).logits!.data;
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(ours[i]! - want[i]!) < 1e-5, `${ours[i]} vs ${want[i]}`);

  const { quantizeModel } = await import('../src/index.js');
  const ws = await tinyWorkspace(2);
  const model = join(ws.dir, 'transform-input.onnx');
  writeFileSync(model, bytes);
  const { record } = await quantizeModel({ model, calib: ws.images, wBits: 4, aBits: 4, method: 'mse', preset: 'cifar', eval: ws.images, output: join(ws.dir, 'q.onnx') });
  assert.equal(record.export!.ort_top1, record.top1);
});

/** tinyResNet with a Cast to `to` (1 = float32, 7 = int64) on its input, as PyTorch writes x.float() or x.long(). */
function withInputCast(to: number): Uint8Array {
  const m = onnx.ModelProto.decode(tinyResNet());
  m.graph!.input![0]!.name = 'x';
  m.graph!.node!.unshift({ name: '/Cast', opType: 'Cast', input: ['x'], output: ['input'], attribute: [{ name: 'to', type: 2, i: to }] });
  return onnx.ModelProto.encode(m).finish();
}

test('Cast to float32 on an activation runs as the identity; a Cast to another type is refused by name', async () => {
  const bytes = withInputCast(1);
  const loaded = loadModel(bytes);
  const data = randomFloats(3 * 8 * 8, 8);
  const ours = E.tidy(() => E.noGrad(() => Float32Array.from(execute(loaded.fp, { feeds: new Map([['x', E.tensor(data, [1, 3, 8, 8])]]), outputs: [loaded.fp.output.name] }).get(loaded.fp.output.name)!.contiguous().data() as Float32Array)));
  const want = (await runOrt(bytes, { x: { dims: [1, 3, 8, 8], data } })).logits!.data;
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(ours[i]! - want[i]!) < 1e-5, `${ours[i]} vs ${want[i]}`);
  assert.throws(() => loadModel(withInputCast(7)), /Unsupported ONNX ops: Cast to a type other than float32 \(to=7\) \(nodes: \/Cast\)/);
});

test('LayerNormalization, Erf, Gelu (exact and tanh), Pow and Sqrt run on the engine as onnxruntime runs them', async () => {
  const c = (name: string, dims: number[], values: number[]) => tensor(name, 'float', dims, values);
  const bytes = buildModel({
    opset: 20,
    inputs: [{ name: 'x', dims: ['N', 3, 4] }],
    outputs: [{ name: 'y', dims: ['N', 3, 4] }],
    initializers: [
      c('s', [4], [1.1, 0.9, 1.3, 0.7]), c('b', [4], [0.1, -0.2, 0, 0.05]),
      c('s2', [3, 4], [...randomFloats(12, 3)]), c('two', [], [2]), c('one', [], [1]),
    ],
    nodes: [
      { op: 'LayerNormalization', inputs: ['x', 's', 'b'], outputs: ['n1'], attrs: { axis: attr.int(-1), epsilon: attr.float(1e-5) } },
      { op: 'Gelu', inputs: ['n1'], outputs: ['n2'] },
      { op: 'Gelu', inputs: ['n2'], outputs: ['n3'], attrs: { approximate: attr.string('tanh') } },
      { op: 'Pow', inputs: ['n3', 'two'], outputs: ['n4'] },
      { op: 'Add', inputs: ['n4', 'one'], outputs: ['n5'] },
      { op: 'Sqrt', inputs: ['n5'], outputs: ['n6'] },
      { op: 'Erf', inputs: ['n3'], outputs: ['n7'] },
      { op: 'LayerNormalization', inputs: ['x', 's2'], outputs: ['n8'], attrs: { axis: attr.int(1) } },
      { op: 'Add', inputs: ['n6', 'n7'], outputs: ['n9'] },
      { op: 'Add', inputs: ['n9', 'n8'], outputs: ['y'] },
    ],
  });
  const model = readOnnx(bytes);
  checkSupported(model);
  const graph = new Graph(model);
  const data = Float32Array.from(randomFloats(2 * 12, 8), (v) => 2 * v);
  const ours = E.tidy(() => E.noGrad(() => {
    const out = execute(graph, { feeds: new Map([['x', E.tensor(data, [2, 3, 4])]]), outputs: ['y'] });
    return Float32Array.from(out.get('y')!.contiguous().data() as Float32Array);
  }));
  const want = (await runOrt(bytes, { x: { dims: [2, 3, 4], data } })).y!.data;
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(ours[i]! - want[i]!) < 1e-5, `${i}: ${ours[i]} vs ${want[i]}`);
});

test('LayerNormalization with its Mean output used is refused, naming the node', () => {
  const bytes = buildModel({
    opset: 17,
    inputs: [{ name: 'x', dims: ['N', 4] }],
    outputs: [{ name: 'y', dims: ['N', 4] }, { name: 'mean' }],
    initializers: [tensor('s', 'float', [4], [1, 1, 1, 1])],
    nodes: [{ op: 'LayerNormalization', name: '/ln/LayerNormalization', inputs: ['x', 's'], outputs: ['y', 'mean'] }],
  });
  assert.throws(() => checkSupported(readOnnx(bytes)), /LayerNormalization with its Mean or InvStdDev output \(nodes: \/ln\/LayerNormalization\)/);
});
