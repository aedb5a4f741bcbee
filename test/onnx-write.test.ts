import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { OnnxError, encodeOnnx, readOnnx, writeOnnx, type OnnxModel } from '../src/onnx/index.js';
import { attr, buildModel, randomFloats, runOrt, tensor } from './helpers/onnx-builder.js';
import { tempDir } from './helpers/temp-dir.js';

const bytes = buildModel({
  inputs: [{ name: 'x', dims: ['batch', 2, 6, 6] }],
  outputs: [{ name: 'y', dims: ['batch', 2, 3, 3] }],
  metadata: { source: 'test' },
  initializers: [
    tensor('w', 'float', [2, 2, 1, 1], [1, -2, 0.5, 3], true),
    tensor('starts', 'int64', [2], [0, 0]),
    tensor('ends', 'int64', [2], [9223372036854775807n, 9223372036854775807n]),
    tensor('axes', 'int64', [2], [2, 3]),
    tensor('steps', 'int64', [2], [2, 2]),
  ],
  nodes: [
    { op: 'Conv', inputs: ['x', 'w'], outputs: ['c'], attrs: { kernel_shape: attr.ints([1, 1]), auto_pad: attr.string('NOTSET') } },
    { op: 'HardSigmoid', inputs: ['c'], outputs: ['h'], attrs: { alpha: attr.float(1), beta: attr.float(0.25) } },
    { op: 'Slice', inputs: ['h', 'starts', 'ends', 'axes', 'steps'], outputs: ['y'] },
  ],
});

const plain = (m: OnnxModel) => ({ ...m, initializers: [...m.initializers].map(([k, t]) => [k, { ...t, data: [...t.data] }]) });

test('encodeOnnx round-trips: same IR after reading back, same outputs in onnxruntime', async () => {
  const model = readOnnx(bytes);
  const again = readOnnx(encodeOnnx(model));
  assert.deepEqual(plain(again), plain(model));
  // A float attribute with an integral value stays a float (onnxruntime would refuse an int alpha).
  assert.deepEqual(again.nodes[1].attrs.alpha, { type: 'float', value: 1 });
  const x = { dims: [2, 2, 6, 6], data: randomFloats(144) };
  assert.deepEqual(await runOrt(encodeOnnx(model), { x }), await runOrt(bytes, { x }));
});

test('writeOnnx writes atomically and the file reads back', () => {
  const dir = tempDir('pdquant-onnx-');
  const path = join(dir, 'model.onnx');
  writeOnnx(readOnnx(bytes), path);
  assert.deepEqual(readdirSync(dir), ['model.onnx']);
  assert.deepEqual(readOnnx(path).nodes.map((n) => n.opType), ['Conv', 'HardSigmoid', 'Slice']);
});

test('encodeOnnx refuses nodes outside the default domain', () => {
  const model = readOnnx(bytes);
  model.nodes[0] = { ...model.nodes[0], domain: 'com.microsoft' };
  assert.throws(() => encodeOnnx(model), (e: unknown) => e instanceof OnnxError && /cannot write node c \(Conv\): domain 'com.microsoft'/.test(e.message));
});
