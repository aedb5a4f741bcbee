// Channels-last inputs (tf2onnx): pdquant works on the NCHW model behind the input Transpose and puts it back.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeOnnx, readOnnx } from '../src/onnx/index.js';
import { isChannelsLast, withChannelsLast, withoutChannelsLast } from '../src/onnx/channels-last.js';
import { loadModel } from '../src/graph/load.js';
import { onnx } from '../src/onnx/proto.js';
import { randomFloats, runOrt } from './helpers/onnx-builder.js';
import { tinyResNet } from './helpers/tiny-resnet.js';

/** tinyResNet taking [N, 8, 8, 3] and transposing it with `perm`, as tf2onnx writes a Keras model. */
function channelsLastResNet(perm = [0, 3, 1, 2]): Uint8Array {
  const m = onnx.ModelProto.decode(tinyResNet());
  const input = m.graph!.input![0]!;
  input.name = 'image';
  input.type!.tensorType!.shape!.dim = [{ dimParam: 'N' }, { dimValue: 8 }, { dimValue: 8 }, { dimValue: 3 }];
  m.graph!.node!.unshift({ name: 'Transpose__1', opType: 'Transpose', input: ['image'], output: ['input'], attribute: [{ name: 'perm', type: 7, ints: perm }] });
  return onnx.ModelProto.encode(m).finish();
}

/** [n, H, W, C] of an [n, C, H, W] array. */
function nhwcOf(x: Float32Array, n: number, c: number, h: number, w: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < n; b++) for (let k = 0; k < c; k++) for (let p = 0; p < h * w; p++) out[(b * h * w + p) * c + k] = x[(b * c + k) * h * w + p]!;
  return out;
}

test('the NCHW body computes what the file computes, and withChannelsLast gives the file\'s interface back', async () => {
  const file = channelsLastResNet();
  const model = readOnnx(file);
  assert.ok(isChannelsLast(model));
  const body = withoutChannelsLast(model);
  assert.deepEqual(body.inputs[0], { ...model.inputs[0], dims: ['N', 3, 8, 8] });
  assert.equal(body.nodes.length, model.nodes.length - 1);
  const x = randomFloats(2 * 3 * 8 * 8, 5);
  const want = (await runOrt(file, { image: { dims: [2, 8, 8, 3], data: nhwcOf(x, 2, 3, 8, 8) } })).logits!.data;
  assert.deepEqual([...(await runOrt(encodeOnnx(body), { image: { dims: [2, 3, 8, 8], data: x } })).logits!.data], [...want]);
  const back = withChannelsLast(body);
  assert.deepEqual(back.inputs[0]!.dims, ['N', 8, 8, 3]);
  assert.deepEqual([...(await runOrt(encodeOnnx(back), { image: { dims: [2, 8, 8, 3], data: nhwcOf(x, 2, 3, 8, 8) } })).logits!.data], [...want]);
  assert.equal(loadModel(file).channelsLast, true);
  assert.equal(loadModel(tinyResNet()).channelsLast, false);
});

test('other input Transposes are not taken for a channels-last input', () => {
  assert.equal(isChannelsLast(readOnnx(channelsLastResNet([0, 3, 2, 1]))), false);
  assert.equal(isChannelsLast(readOnnx(tinyResNet())), false);
});
