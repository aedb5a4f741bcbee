// Channels-last inputs (tf2onnx): pdquant works on the NCHW model behind the input Transpose and puts it back.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeOnnx, readOnnx } from '../src/onnx/index.js';
import { isChannelsLast, withChannelsLast, withoutChannelsLast } from '../src/onnx/channels-last.js';
import { loadModel } from '../src/graph/load.js';
import { onnx } from '../src/onnx/proto.js';
import { randomFloats, runOrt, tensor } from './helpers/onnx-builder.js';
import { tinyResNet } from './helpers/tiny-resnet.js';

/**
 * tinyResNet taking [N, 8, 8, 3] and transposing it with `perm`, as tf2onnx writes a Keras model; with `rescale`, a
 * Keras model's Rescaling and Normalization layers come first: x·(1/255), − mean per channel, ÷ std as [1, 1, 1, 3].
 */
function channelsLastResNet(perm = [0, 3, 1, 2], rescale: 'none' | 'per-channel' | 'per-pixel' = 'none'): Uint8Array {
  const m = onnx.ModelProto.decode(tinyResNet());
  const g = m.graph!;
  const input = g.input![0]!;
  input.name = 'image';
  input.type!.tensorType!.shape!.dim = [{ dimParam: 'N' }, { dimValue: 8 }, { dimValue: 8 }, { dimValue: 3 }];
  let x = 'image';
  if (rescale !== 'none') {
    const mean = rescale === 'per-channel' ? tensor('mean', 'float', [3], [0.2, -0.1, 0.4]) : tensor('mean', 'float', [1, 8, 8, 3], Array.from(randomFloats(192, 9)));
    g.initializer!.push(tensor('scale', 'float', [], [1 / 255]), mean, tensor('std', 'float', [1, 1, 1, 3], [0.5, 0.25, 2]));
    g.node!.unshift(
      { name: 'rescaling/mul', opType: 'Mul', input: ['image', 'scale'], output: ['scaled'] },
      { name: 'normalization/sub', opType: 'Sub', input: ['scaled', 'mean'], output: ['centred'] },
      { name: 'normalization/truediv', opType: 'Div', input: ['centred', 'std'], output: ['normalized'] },
    );
    x = 'normalized';
  }
  g.node!.splice(rescale === 'none' ? 0 : 3, 0, { name: 'Transpose__1', opType: 'Transpose', input: [x], output: ['input'], attribute: [{ name: 'perm', type: 7, ints: perm }] });
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

test('per-channel scaling before the Transpose (Keras Rescaling, Normalization) moves behind it with its constants as [C, 1, 1]', async () => {
  const file = channelsLastResNet(undefined, 'per-channel');
  const body = withoutChannelsLast(readOnnx(file));
  assert.deepEqual(body.nodes.slice(0, 3).map((n) => n.opType), ['Mul', 'Sub', 'Div']);
  assert.deepEqual(['scale', 'mean_nchw', 'std_nchw'].map((k) => body.initializers.get(k)!.dims), [[], [3, 1, 1], [3, 1, 1]]);
  const x = Float32Array.from(randomFloats(2 * 3 * 8 * 8, 6), (v) => (v + 1) * 127.5);
  const want = (await runOrt(file, { image: { dims: [2, 8, 8, 3], data: nhwcOf(x, 2, 3, 8, 8) } })).logits!.data;
  const got = (await runOrt(encodeOnnx(body), { image: { dims: [2, 3, 8, 8], data: x } })).logits!.data;
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) < 1e-5, `${got[i]} vs ${want[i]}`);
  const back = await runOrt(encodeOnnx(withChannelsLast(body)), { image: { dims: [2, 8, 8, 3], data: nhwcOf(x, 2, 3, 8, 8) } });
  assert.deepEqual([...back.logits!.data], [...got]);
  // A constant per pixel would have to be transposed itself: such a model is left as it is.
  assert.equal(isChannelsLast(readOnnx(channelsLastResNet(undefined, 'per-pixel'))), false);
});

test('other input Transposes are not taken for a channels-last input', () => {
  assert.equal(isChannelsLast(readOnnx(channelsLastResNet([0, 3, 2, 1]))), false);
  assert.equal(isChannelsLast(readOnnx(tinyResNet())), false);
});
