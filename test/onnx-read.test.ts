import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { onnx } from '../src/onnx/proto.js';
import { OnnxError, readOnnx } from '../src/onnx/index.js';
import { attr, buildModel, tensor, withExternalData, type ModelSpec } from './helpers/onnx-builder.js';
import { tinyResNet } from './helpers/tiny-resnet.js';
import { tempDir } from './helpers/temp-dir.js';
import { toFloat16 } from './helpers/float16.js';
import { floatToHalf, halfToFloat } from '../src/onnx/half.js';

const convSpec = (): ModelSpec => ({
  inputs: [{ name: 'x', dims: ['N', 2, 4, 4] }, { name: 'w', dims: [3, 2, 1, 1] }],
  outputs: [{ name: 'y', dims: ['N', 3, 4, 4] }],
  initializers: [tensor('w', 'float', [3, 2, 1, 1], [1, 2, 3, 4, 5, 6]), tensor('b', 'float', [3], [0.5, -1, 2], true)],
  // Out of order on purpose: readOnnx sorts.
  nodes: [
    { op: 'Relu', inputs: ['c'], outputs: ['y'] },
    { op: 'Conv', inputs: ['x', 'w', 'b'], outputs: ['c'], name: '/conv/Conv', attrs: { kernel_shape: attr.ints([1, 1]), auto_pad: attr.string('NOTSET') } },
  ],
  metadata: { author: 'test' },
});

const expectOnnxError = (fn: () => unknown, message: RegExp): void =>
  assert.throws(fn, (e: unknown) => e instanceof OnnxError && message.test(e.message));

test('readOnnx decodes graph, attributes, initializers and metadata, and sorts nodes', () => {
  const m = readOnnx(buildModel(convSpec()));
  assert.equal(m.opsetVersion, 13);
  assert.equal(m.producer, 'pdquant-test');
  assert.deepEqual(m.metadata, { author: 'test' });
  // 'w' is listed as an input but is an initializer: not a model input.
  assert.deepEqual(m.inputs, [{ name: 'x', elemType: 'float32', dims: ['N', 2, 4, 4] }]);
  assert.deepEqual(m.outputs, [{ name: 'y', elemType: 'float32', dims: ['N', 3, 4, 4] }]);
  assert.deepEqual(m.nodes.map((n) => n.opType), ['Conv', 'Relu']);
  const conv = m.nodes[0];
  assert.equal(conv.name, '/conv/Conv');
  assert.deepEqual(conv.attrs, { kernel_shape: { type: 'ints', value: [1, 1] }, auto_pad: { type: 'string', value: 'NOTSET' } });
  const w = m.initializers.get('w');
  const b = m.initializers.get('b');
  assert.deepEqual(w && { ...w, data: [...w.data] }, { name: 'w', dataType: 'float32', dims: [3, 2, 1, 1], data: [1, 2, 3, 4, 5, 6] });
  assert.ok(b?.data instanceof Float32Array);
  assert.deepEqual([...b.data], [0.5, -1, 2]);
});

test('readOnnx decodes int64 from int64_data and raw_data exactly, and other integer types', () => {
  const big = 9223372036854775807n;
  const m = readOnnx(buildModel({
    inputs: [{ name: 'x', dims: [1] }],
    outputs: [{ name: 'y' }],
    initializers: [
      tensor('typed', 'int64', [3], [big, -big - 1n, -5n]),
      tensor('raw', 'int64', [3], [big, -big - 1n, -5n], true),
      tensor('i8', 'int8', [2], [-3, 7]),
      tensor('flag', 'bool', [2], [1, 0], true),
    ],
    nodes: [{ op: 'Identity', inputs: ['x'], outputs: ['y'] }],
  }));
  for (const name of ['typed', 'raw']) assert.deepEqual([...(m.initializers.get(name)?.data ?? [])], [big, -big - 1n, -5n]);
  assert.deepEqual([...(m.initializers.get('i8')?.data ?? [])], [-3, 7]);
  assert.equal(m.initializers.get('i8')?.dataType, 'int8');
  assert.equal(m.initializers.get('flag')?.dataType, 'bool');
  assert.deepEqual(m.outputs[0].dims, null);
});

test('readOnnx: missing file', () => {
  expectOnnxError(() => readOnnx('/nonexistent/model.onnx'), /^No such file: \/nonexistent\/model\.onnx$/);
});

test('readOnnx: bytes that are not a protobuf', () => {
  const path = join(tempDir('pdquant-onnx-'), 'garbage.onnx');
  writeFileSync(path, 'this is not an ONNX file, just text\n');
  expectOnnxError(() => readOnnx(path), new RegExp(`^${path} is not a valid ONNX model: `));
  expectOnnxError(() => readOnnx(new Uint8Array([0x0a, 0xff, 0xff, 0xff])), /is not a valid ONNX model/);
});

test('readOnnx: opset outside 11..26', () => {
  expectOnnxError(() => readOnnx(buildModel({ ...convSpec(), opset: 9 })), /opset 9 not supported; pdquant reads opset 11–26$/);
  expectOnnxError(() => readOnnx(buildModel({ ...convSpec(), opset: 27 })), /opset 27 not supported/);
});

test('readOnnx: a float16 model is read as float32, every value exactly', () => {
  // Values float16 cannot hold (0.1, 1/3, 70000) become the float16 nearest them, which float32 holds exactly.
  const spec = convSpec();
  spec.initializers = [tensor('w', 'float', [3, 2, 1, 1], [0.1, 1 / 3, -2.5, 70000, 6e-8, -0]), tensor('b', 'float', [3], [0.5, -1, 1e-3], true)];
  const m = readOnnx(toFloat16(buildModel(spec)));
  assert.equal(m.readFromFloat16, true);
  assert.deepEqual(m.inputs, [{ name: 'x', elemType: 'float32', dims: ['N', 2, 4, 4] }]);
  assert.deepEqual(m.outputs, [{ name: 'y', elemType: 'float32', dims: ['N', 3, 4, 4] }]);
  const w = m.initializers.get('w')!, b = m.initializers.get('b')!;
  assert.equal(w.dataType, 'float32');
  assert.deepEqual([...w.data], [0.0999755859375, 0.333251953125, -2.5, Infinity, 5.960464477539063e-8, -0]);
  assert.deepEqual([...b.data], [0.5, -1, 0.0010004043579101562]);
  // int32_data holds one float16's bits per entry
  const typed = onnx.ModelProto.decode(toFloat16(buildModel(convSpec())));
  const t = typed.graph!.initializer!.find((i) => i.name === 'w')!;
  t.int32Data = [...new Uint16Array(new Uint8Array(t.rawData!).buffer)];
  t.rawData = new Uint8Array();
  assert.deepEqual([...readOnnx(onnx.ModelProto.encode(typed).finish()).initializers.get('w')!.data], [1, 2, 3, 4, 5, 6]);
  assert.equal(readOnnx(buildModel(convSpec())).readFromFloat16, undefined);
});

test('readOnnx: a float16 model that kept float32 input and output has its casts to float16 read as casts to float32', () => {
  const m = readOnnx(toFloat16(buildModel(convSpec()), { keepIoTypes: true }));
  assert.equal(m.readFromFloat16, true);
  const casts = m.nodes.filter((n) => n.opType === 'Cast').map((n) => n.attrs.to);
  assert.deepEqual(casts, [{ type: 'int', value: 1 }, { type: 'int', value: 1 }]);
  assert.deepEqual(m.nodes.map((n) => n.opType), ['Cast', 'Conv', 'Relu', 'Cast']);
});

test('readOnnx: float16 data of the wrong size is named', () => {
  const bad = onnx.ModelProto.decode(toFloat16(buildModel(convSpec())));
  bad.graph!.initializer![0]!.rawData = new Uint8Array(5);
  expectOnnxError(() => readOnnx(onnx.ModelProto.encode(bad).finish()), /^initializer w: raw_data has 5 bytes, shape \[3,2,1,1\] of float16 needs 12$/);
});

test('readOnnx: a bfloat16 model is refused with what to give instead', () => {
  const half = onnx.ModelProto.decode(buildModel(convSpec()));
  half.graph!.initializer![0]!.dataType = onnx.TensorProto.DataType.BFLOAT16;
  expectOnnxError(() => readOnnx(onnx.ModelProto.encode(half).finish()),
    /^initializer \S+: element type BFLOAT16 not supported \(pdquant holds .*\); pdquant quantizes float32 and float16 models: give it the model exported in float32/);
});

test('float16 conversion: every float16 survives float32 and back; float32 values round to the nearest, ties to even', () => {
  for (let bits = 0; bits < 0x10000; bits++) {
    const v = halfToFloat(bits);
    if (Number.isNaN(v)) assert.ok(Number.isNaN(halfToFloat(floatToHalf(v))));
    else assert.equal(floatToHalf(v), bits, `bits ${bits}`);
  }
  for (let bits = 0; bits < 0x7bff; bits++) {
    const [lo, hi] = [halfToFloat(bits), halfToFloat(bits + 1)];
    const mid = (lo + hi) / 2; // exact in float32: halves have 11 significant bits
    assert.equal(floatToHalf(mid), bits & 1 ? bits + 1 : bits, `tie between ${lo} and ${hi}`);
    assert.equal(floatToHalf(Math.fround(mid + (hi - lo) / 64)), bits + 1);
    assert.equal(floatToHalf(Math.fround(mid - (hi - lo) / 64)), bits);
  }
  assert.equal(floatToHalf(65520), 0x7c00); // halfway to the next power of two: infinity
  assert.equal(floatToHalf(1e-8), 0); // below half the smallest subnormal
  assert.equal(floatToHalf(-1e-8), 0x8000);
});

test('readOnnx: no inputs, cycle, missing input', () => {
  expectOnnxError(() => readOnnx(buildModel({ ...convSpec(), inputs: [{ name: 'w' }] })), /the graph has no inputs \(besides initializers\)/);
  expectOnnxError(
    () => readOnnx(buildModel({
      inputs: [{ name: 'x', dims: [1] }],
      outputs: [{ name: 'c' }],
      nodes: [
        { op: 'Add', inputs: ['x', 'c'], outputs: ['a'] },
        { op: 'Relu', inputs: ['a'], outputs: ['b'] },
        { op: 'Relu', inputs: ['b'], outputs: ['c'] },
      ],
    })),
    /the graph has a cycle: node a \(Add\) -> node b \(Relu\) -> node c \(Relu\) -> node a \(Add\)$/,
  );
  expectOnnxError(
    () => readOnnx(buildModel({ ...convSpec(), nodes: [{ op: 'Relu', inputs: ['nowhere'], outputs: ['y'] }] })),
    /node y \(Relu\) reads 'nowhere', which no node, initializer or graph input provides/,
  );
});

test('readOnnx: weights in an external data file beside the model (torch.onnx.export with dynamo=True)', () => {
  const dir = tempDir('pdq-external-');
  const inline = tinyResNet();
  const { model, data } = withExternalData(inline, 'tiny.onnx.data');
  const path = join(dir, 'tiny.onnx');
  writeFileSync(path, model);
  writeFileSync(join(dir, 'tiny.onnx.data'), data);
  const read = readOnnx(path);
  const expected = readOnnx(inline);
  assert.deepEqual([...read.initializers.keys()], [...expected.initializers.keys()]);
  for (const [name, t] of expected.initializers) assert.deepEqual(read.initializers.get(name), t, name);
  assert.deepEqual(read.files, [path, join(dir, 'tiny.onnx.data')]);

  expectOnnxError(() => readOnnx(model), /initializer stem\.weight: its data is in the external file 'tiny\.onnx\.data'; give the model as a file path/);
  writeFileSync(join(dir, 'short.onnx'), model);
  writeFileSync(join(dir, 'tiny.onnx.data'), data.subarray(0, 100));
  expectOnnxError(() => readOnnx(path), /initializer \S+: bytes \d+\+\d+ lie outside tiny\.onnx\.data \(100 bytes\)/);
  const elsewhere = withExternalData(inline, '../tiny.onnx.data');
  writeFileSync(path, elsewhere.model);
  expectOnnxError(() => readOnnx(path), /external data location '\.\.\/tiny\.onnx\.data' lies outside the model's folder/);
  const missing = withExternalData(inline, 'gone.data');
  writeFileSync(path, missing.model);
  expectOnnxError(() => readOnnx(path), /external data file .*gone\.data not found \(it must sit beside the model\)/);
  const wrongLength = { ...tensor('w', 'float', [3, 2, 1, 1], []), dataLocation: 1, externalData: [{ key: 'location', value: 'tiny.onnx.data' }, { key: 'length', value: '8' }] };
  writeFileSync(join(dir, 'tiny.onnx.data'), data);
  writeFileSync(path, buildModel({ ...convSpec(), initializers: [wrongLength] }));
  expectOnnxError(() => readOnnx(path), /initializer w: external data has 8 bytes, shape \[3,2,1,1\] of float32 needs 24/);
});
