// Image inputs that leave channels, height or width free: pinned to the data's size, refused without one.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readOnnx, OnnxError } from '../src/onnx/index.js';
import { freeImageDims, imageChannels, withImageShape } from '../src/onnx/image-input.js';
import { loadModel } from '../src/graph/load.js';
import { onnx } from '../src/onnx/proto.js';
import { tinyResNet } from './helpers/tiny-resnet.js';

/** tinyResNet with its input's dims replaced (numbers stay, strings become dim_params), and optionally its element type. */
function withInput(dims: (number | string)[], elemType = 1): Uint8Array {
  const m = onnx.ModelProto.decode(tinyResNet());
  const t = m.graph!.input![0]!.type!.tensorType!;
  t.shape!.dim = dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d }));
  t.elemType = elemType;
  return onnx.ModelProto.encode(m).finish();
}

test('free dims are found, channels come from the first convolution, and pinning keeps the batch dim', () => {
  const model = readOnnx(withInput(['batch_size', 'num_channels', 'height', 'width']));
  assert.deepEqual(freeImageDims(model), [{ index: 1, name: 'num_channels' }, { index: 2, name: 'height' }, { index: 3, name: 'width' }]);
  assert.equal(imageChannels(model), 3);
  const pinned = withImageShape(model, { chw: [3, 16, 12], source: 'the data' });
  assert.deepEqual(pinned.inputs[0]!.dims, ['batch_size', 3, 16, 12]);
  assert.deepEqual(freeImageDims(pinned), []);
  assert.deepEqual(freeImageDims(readOnnx(tinyResNet())), []);
  assert.throws(() => withImageShape(model, { chw: [16, 12], source: 'the data' }), /has shape \[batch_size, num_channels, height, width\], but the data are \[N, 16, 12\]/);
});

test('loadModel runs a free-size model at the size it is given and refuses it without one', () => {
  const free = withInput(['N', 3, 'H', 'W']);
  assert.throws(() => loadModel(free), (e: Error) => e instanceof OnnxError && /input 'input' \[N, 3, H, W\] leaves H, W free/.test(e.message));
  const loaded = loadModel(free, { imageShape: { chw: [3, 8, 8], source: 'the data' } });
  assert.deepEqual(loaded.fp.input.dims, ['N', 3, 8, 8]);
  assert.equal(loaded.units.length, loadModel(tinyResNet()).units.length);
});

test('an input that is not float32 is refused by name', () => {
  assert.throws(() => loadModel(withInput(['N', 3, 8, 8], 2)), /pdquant needs a float32 image input, but input 'input' is uint8/);
});
