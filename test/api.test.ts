// The library API (the package's entry point): quantize, export and evaluate from a program, with the CLI's defaults and checks.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tinyWorkspace } from './helpers/tiny-resnet.js';

test('the package entry quantizes, exports, and evaluates the export and the parameters to the same top-1', async () => {
  const pdq = await import('pdquant');
  assert.equal(typeof pdq.VERSION, 'string');
  assert.ok(pdq.methodNames().includes('pdquant'));
  const ws = await tinyWorkspace(4);
  const output = join(ws.dir, 'tiny.q.onnx');
  const { record, qparams } = await pdq.quantizeModel({ model: ws.model, calib: ws.images, wBits: 4, aBits: 4, method: 'mse', preset: 'cifar', eval: ws.images, output });
  assert.equal(record.method, 'mse');
  assert.equal(record.seed, 1005);
  assert.equal(record.calibration.count, 16);
  assert.equal(record.export!.ort_top1, record.top1);
  assert.ok(record.machine!.cores >= 1 && record.machine!.cpu.length > 0, 'the record names the machine');
  const ort = await pdq.evaluateModel(output, ws.images, { backend: 'ort' });
  const simulated = await pdq.evaluateModel(ws.model, ws.images, { preset: 'cifar', qparams });
  const fp = await pdq.evaluateModel(ws.model, ws.images, { preset: 'cifar' });
  assert.deepEqual([ort.top1, simulated.top1, fp.top1], [record.top1, record.top1, record.fp_top1]);
  // Parameters that leave a quantizer of the placement without values (another model, an earlier placement) are refused.
  const { ['/layer1/layer1.0/relu2/Relu_output_0']: _dropped, ...acts } = qparams.acts;
  assert.equal(Object.keys(acts).length, Object.keys(qparams.acts).length - 1);
  await assert.rejects(pdq.evaluateModel(ws.model, ws.images, { preset: 'cifar', qparams: { ...qparams, acts } }),
    /^Error: the quantization parameters have nothing for activation \/layer1\/layer1\.0\/relu2\/Relu_output_0: they were saved for another model or by an earlier pdquant that placed quantizers differently; quantize again$/);
});

test('bad arguments are one clear error each', async () => {
  const pdq = await import('pdquant');
  const ws = await tinyWorkspace(1);
  const base = { model: ws.model, calib: ws.images, wBits: 4, aBits: 4 };
  await assert.rejects(pdq.quantizeModel({ ...base, wBits: 9 }), /^RangeError: Expected integer 2\.\.8, or 32 for float, for wBits but received 9$/);
  await assert.rejects(pdq.quantizeModel({ ...base, aBits: 16 }), /^RangeError: Expected integer 2\.\.8, or 32 for float, for aBits but received 16$/);
  await assert.rejects(pdq.quantizeModel({ ...base, bitRules: [{ match: '/fc/', wBits: 8, aBits: 1 }] }), /^RangeError: Expected integer 2\.\.8, or 32 for float, for the activations of bit rule \/fc\/ but received 1$/);
  await assert.rejects(pdq.quantizeModel({ ...base, wBits: 32, aBits: 32 }), /^RangeError: weights and activations both at 32 bits \(float\) quantize nothing; give --w or --a \(wBits or aBits\) 2\.\.8$/);
  await assert.rejects(pdq.quantizeModel({ ...base, wBits: 32, aBits: 32, bitRules: [{ match: '/fc/', wBits: 32, aBits: 32 }] }), /quantize nothing/);
  await assert.rejects(pdq.quantizeModel({ ...base, wBits: 32, aBits: 8, int8Kernels: true }), /^Error: int8 kernels \(--int8-kernels, int8Kernels\) need quantized weights .* but weights are left in float \(32\)/);
  await assert.rejects(pdq.analyzeSensitivity({ ...base, aBits: 8, int8Kernels: true, bitRules: [{ match: '/fc/', wBits: 32, aBits: 8 }] }), /need quantized weights/);
  assert.deepEqual([pdq.FLOAT_ACTIVATIONS, pdq.FLOAT_WEIGHTS], [32, 32]);
  await assert.rejects(pdq.quantizeModel({ ...base, method: 'foo' }), /Unknown method foo/);
  await assert.rejects(pdq.quantizeModel({ ...base, archPreset: 'vit' }), /Unknown arch preset vit; choose one of resnet, regnet, mobilenetv2, mnasnet/);
  await assert.rejects(pdq.quantizeModel({ ...base, device: 'gpu' }), /Expected cpu, cuda or cuda:N for device but received gpu/);
  await assert.rejects(pdq.quantizeModel({ ...base, unitCheckpointSeconds: -1 }), /^RangeError: Expected seconds ≥ 0 for unitCheckpointSeconds but received -1$/);
  await assert.rejects(pdq.evaluateModel(join(ws.dir, 'none.onnx'), ws.images), (e: Error) => e instanceof pdq.OnnxError && /none\.onnx/.test(e.message));
  // What a run writes at its end is checked before it starts.
  await assert.rejects(pdq.quantizeModel({ ...base, method: 'mse', output: ws.dir }), /^Error: output .* is a folder; give a file name$/);
  await assert.rejects(pdq.quantizeModel({ ...base, runDir: ws.model }), /^Error: runDir .*tiny\.onnx is a file; give a folder$/);
});

test('activation-only on a ConvNeXt: its linear layers on [N, H, W, C] (MatMul) keep their float weights exactly, verified in onnxruntime', async () => {
  const pdq = await import('pdquant');
  const { readOnnx } = await import('../src/onnx/read.js');
  const { tinyConvNeXt } = await import('./helpers/tiny-convnext.js');
  const ws = await tinyWorkspace(2);
  const model = join(ws.dir, 'convnext.onnx');
  writeFileSync(model, tinyConvNeXt());
  const output = join(ws.dir, 'convnext.w32a8.onnx');
  const { record } = await pdq.quantizeModel({ model, calib: ws.images, wBits: 32, aBits: 8, method: 'mse', preset: 'cifar', eval: ws.images, output });
  assert.equal(record.export!.ort_top1, record.top1);
  const lw = record.export!.layerwise!;
  assert.ok(lw.quantizers > 0 && lw.failed_at === null && lw.rounding_flips === 0, JSON.stringify(lw));
  const source = readOnnx(model), file = readOnnx(output);
  const matmuls = file.nodes.filter((n) => n.opType === 'MatMul');
  assert.equal(matmuls.length, 4);
  for (const n of matmuls) {
    const weight = file.initializers.get(n.inputs[1]!);
    const original = source.initializers.get(source.nodes.find((m) => m.name === n.name)!.inputs[1]!)!;
    assert.ok(weight, `${n.name} reads its weight from an initializer, in float: onnxruntime's weight pass leaves MatMul alone`);
    assert.deepEqual([weight.dataType, weight.dims, weight.data], ['float32', original.dims, original.data], `${n.name}'s weight as in the source model`);
  }
});
