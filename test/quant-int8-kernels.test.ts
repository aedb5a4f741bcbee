// int8Kernels: the placement, grids and export that onnxruntime runs with integer kernels (QLinearConv, QLinearAdd).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as E from '../src/engine/index.js';
import { loadModel } from '../src/graph/load.js';
import { placeQuantizers } from '../src/quant/placement.js';
import { QuantizedModel } from '../src/quant/qmodel.js';
import { UniformQuantizer } from '../src/quant/uniform.js';
import { toQdq } from '../src/onnx/qdq.js';
import { readOnnx } from '../src/onnx/index.js';
import type { OnnxModel } from '../src/onnx/ir.js';
import type { RunEvents } from '../src/methods/pipeline.js';
import { tinyResNet, tinyWorkspace } from './helpers/tiny-resnet.js';

test('int8Kernels adds 8-bit quantizers on the image and on each residual branch that ends unquantized, nothing else', () => {
  const m = loadModel(tinyResNet());
  const sites = (int8Kernels: boolean) => placeQuantizers(m.folded, m.units, { wBits: 4, aBits: 8, int8Kernels }).acts.map((a) => `${a.value}:${a.bits}:${a.role}:${a.unit}`);
  const plain = sites(false);
  const kernels = sites(true);
  assert.deepEqual(kernels.filter((s) => !plain.includes(s)), [
    'input:8:layer input:conv',
    '/layer1/layer1.0/conv2/bn/BatchNormalization_output_0:8:add input:layer1.0',
    '/layer2/layer2.0/conv2/bn/BatchNormalization_output_0:8:add input:layer2.0',
    '/layer2/layer2.0/downsample/bn/BatchNormalization_output_0:8:add input:layer2.0',
  ]);
  assert.deepEqual(plain.filter((s) => !kernels.includes(s)), []);
  // The identity shortcut of layer1.0 reads the stem's quantizer: no second one there.
  assert.throws(() => new QuantizedModel(m.folded, m.units, { wBits: 4, aBits: 4, int8Kernels: true }),
    /^RangeError: int8 kernels need 8-bit activations, but \d+ activation quantizers are at 4 bits \(first: after input\); use 8-bit activations \(--a 8;/);
});

test('a symmetric grid keeps the zero point at 2^(b-1), so q - z fits signed codes, and stays close to the asymmetric error', () => {
  const w = E.tensor(Array.from({ length: 6 * 50 }, (_, i) => Math.sin(i * 1.7) * (1 + (i % 6)) + (i % 3 === 0 ? 0.4 : 0)), [6, 50]);
  for (const bits of [8, 4]) {
    for (const method of ['mse', 'minmax'] as const) {
      const sym = new UniformQuantizer({ bits, channelWise: true, symmetric: true }).init(w, method);
      const asym = new UniformQuantizer({ bits, channelWise: true }).init(w, method);
      assert.deepEqual(sym.zeroPoint.toArray(), Array(6).fill(2 ** (bits - 1)), `${bits} bits ${method}`);
      const codes = sym.quantizeInt(w).toArray();
      assert.ok(codes.every((q) => q >= 0 && q <= 2 ** bits - 1));
      const err = (q: UniformQuantizer) => E.tidy(() => q.forward(w).sub(w).abs().mean().item());
      assert.ok(err(sym) < 2 * err(asym) + 1e-6, `${bits} bits ${method}: ${err(sym)} vs ${err(asym)}`);
      if (method === 'minmax') {
        // The largest |w| of each channel is on the grid's range (no clipping).
        const delta = sym.delta.toArray();
        const rows = w.toArray();
        for (let c = 0; c < 6; c++) {
          const row = rows.slice(c * 50, c * 50 + 50);
          assert.ok(Math.max(...row.map(Math.abs)) <= (2 ** (bits - 1) - 1) * delta[c]! * (1 + 1e-6));
        }
      }
      sym.dispose();
      asym.dispose();
    }
  }
  w.dispose();
});

test("the image's quantizer applies wherever the network runs from the image, but not in a unit's own run", async () => {
  const { capture } = await import('../src/recon/caches.js');
  const m = loadModel(tinyResNet());
  const q = new QuantizedModel(m.folded, m.units, { wBits: 4, aBits: 8, int8Kernels: true });
  const x = E.tensor(Array.from({ length: 4 * 3 * 8 * 8 }, (_, i) => Math.sin(i * 0.7) * 2), [4, 3, 8, 8]);
  try {
    q.initWeights('mse');
    q.initActs(x, 'mse');
    const image = q.acts.get('input')!.q;
    assert.ok(image.initialized);
    const g = m.folded;
    const unit = m.units[1]!;
    const on = { weights: true, acts: true };
    const fromImage = capture(g, x, g.input.name, unit.input, 4, q.hooks(on));
    const quantizedFirst = E.tidy(() => capture(g, image.forward(x), g.input.name, unit.input, 4, q.hooks(on, { feeds: false })));
    const rawImage = capture(g, x, g.input.name, unit.input, 4, q.hooks(on, { feeds: false }));
    assert.equal(E.tidy(() => fromImage.sub(quantizedFirst).abs().amax().item()), 0);
    assert.ok(E.tidy(() => fromImage.sub(rawImage).abs().amax().item()) > 0, 'the quantizer changes what the next unit reads');
    E.dispose([fromImage, quantizedFirst, rawImage]);
  } finally {
    x.dispose();
    q.dispose();
  }
});

/** Op counts of the graph onnxruntime runs after its default optimizations. */
async function ortOps(file: string): Promise<Record<string, number>> {
  const { ortOptimizedModel } = await import('../src/eval/ort.js');
  const ops: Record<string, number> = {};
  for (const n of (await ortOptimizedModel(file)).nodes) ops[n.opType] = (ops[n.opType] ?? 0) + 1;
  return ops;
}

for (const [method, wBits] of [['mse', 8], ['qdrop', 4], ['pdquant', 2]] as const) {
  test(`${method} W${wBits}A8 with int8Kernels: onnxruntime runs every convolution and addition with integer kernels and gives the simulated top-1`, async () => {
    const { quantizeModel } = await import('../src/index.js');
    const ws = await tinyWorkspace(2);
    const output = join(ws.dir, 'k.onnx');
    const { record, qparams } = await quantizeModel({
      model: ws.model, calib: ws.images, wBits, aBits: 8, method, preset: 'cifar', eval: ws.images, output, int8Kernels: true,
      runDir: join(ws.dir, 'run'), recon: { iters: 20, batch: 8, dcSteps: 5 },
    });
    // onnxruntime's default session: integer kernels, rounding as the simulation does (biases on their int32 grid).
    assert.equal(record.export!.ort_top1, record.top1);
    assert.equal(record.export!.agreement, 1);
    assert.equal(record.int8_kernels, true);
    // The layer-by-layer check ran onnxruntime's integer kernels: every quantizer gives the simulation's values.
    assert.deepEqual([record.export!.layerwise!.failed_at, record.export!.layerwise!.same_kernels], [null, true]);
    // The classifier's Gemm stays float: it reads a pooled value, off any quantizer's grid.
    assert.deepEqual(record.export!.integer_kernels, { integerConvs: 6, convs: 6, integerAdds: 2, adds: 2, integerLinears: 0, linears: 1 });
    assert.equal(qparams.int8Kernels, true);
    const ops = await ortOps(output);
    // The one float Add left is the classifier's bias: the Gemm reads a pooled value, off any quantizer's grid.
    assert.deepEqual([ops.Conv, ops.QLinearConv, ops.Add, ops.QLinearAdd], [undefined, 6, 1, 2], JSON.stringify(ops));
    const q = readOnnx(output);
    assert.equal(q.metadata['pdquant.int8_kernels'], 'true');
    const dqs = q.nodes.filter((n) => n.opType === 'DequantizeLinear' && q.initializers.has(n.inputs[0]!));
    const types = dqs.map((n) => `${q.initializers.get(n.inputs[0]!)!.dataType}:${n.inputs[2] ? [...new Set(Array.from(q.initializers.get(n.inputs[2])!.data as ArrayLike<number>))].join(',') : 'none'}`);
    // Narrow weights as INT8 codes with zero point 0, the 8-bit ones (codes past ±64, which onnxruntime's U8S8 kernels
    // can saturate) as UINT8 with zero point 128; biases as INT32 codes.
    assert.deepEqual([...new Set(types)].sort(), wBits === 8 ? ['int32:none', 'uint8:128'] : ['int32:none', 'int8:0', 'uint8:128']);
    // The record counts the UINT8 ones: here the 8-bit first and last layers, or every layer at W8.
    assert.deepEqual(record.export!.uint8_weights, { layers: wBits === 8 ? 7 : 2, of: 7 });
    // inspect reads the codes' bit-widths back from the signed codes, and says what the file is for.
    const bin = join(resolve(fileURLToPath(import.meta.url), '../../..'), 'bin', 'pdquant.js');
    const shown = spawnSync(process.execPath, [bin, 'inspect', output], { encoding: 'utf8' });
    assert.equal(shown.status, 0, shown.stderr);
    assert.match(shown.stdout, /quantized for integer kernels \(--int8-kernels\): onnxruntime runs its convolutions as QLinearConv/);
    assert.match(shown.stdout, new RegExp(`\\n  ${wBits === 8 ? 7 : 2} of 7 weight tensors are UINT8 \\(codes past ±64, 8-bit weights\\): onnxruntime runs them on its U8U8 kernels`));
    assert.match(shown.stdout, new RegExp(`weights: 7 tensors stored as ${wBits === 8 ? 'uint8' : 'uint8/int8'} codes; by their largest code ${wBits === 8 ? '7 × 8 bits' : `2 × 8 bits, 5 × ${wBits} bits`};`));
  });
}

/** A small model written to a fresh workspace, quantized with mse at W8A8 for int8 kernels (evaluated on its calibration images with `evaluate`). */
async function int8KernelRun(file: string, bytes: Uint8Array, evaluate: boolean, events: RunEvents = {}) {
  const { quantizeModel } = await import('../src/index.js');
  const ws = await tinyWorkspace(2);
  const model = join(ws.dir, file);
  writeFileSync(model, bytes);
  const output = join(ws.dir, `q-${file}`);
  const { record } = await quantizeModel({ model, calib: ws.images, wBits: 8, aBits: 8, method: 'mse', preset: 'cifar', ...(evaluate ? { eval: ws.images } : {}), output, int8Kernels: true }, events);
  return { record, output };
}

test('an export whose convolutions onnxruntime does not all fuse says how many run in float', async () => {
  const { tinyEfficientNet } = await import('./helpers/tiny-efficientnet.js');
  const warnings: string[] = [];
  const { record, output } = await int8KernelRun('effnet.onnx', tinyEfficientNet(), false, { warning: (m) => warnings.push(m) });
  const k = record.export!.integer_kernels!;
  assert.ok(k.integerConvs < k.convs, JSON.stringify(k));
  assert.deepEqual(warnings.filter((w) => /in float, not with integer kernels/.test(w)), [
    `onnxruntime runs ${k.convs - k.integerConvs} of ${k.convs} convolutions and ${k.adds - k.integerAdds} of ${k.adds} residual additions of ${output} in float, not with integer kernels (a pattern it does not fuse, e.g. an activation it folds into a float op)`,
  ]);
});

test('a ConvNeXt with int8 kernels: its linear layers on [N, H, W, C] run with integer kernels too, as simulated', async () => {
  const { tinyConvNeXt } = await import('./helpers/tiny-convnext.js');
  const { record } = await int8KernelRun('convnext.onnx', tinyConvNeXt(), true);
  assert.equal(record.export!.ort_top1, record.top1);
  assert.ok(record.export!.max_logit_diff! <= 1e-4 * Math.max(1, record.export!.max_logit!));
  assert.deepEqual(record.export!.integer_kernels, { integerConvs: 4, convs: 4, integerAdds: 2, adds: 2, integerLinears: 5, linears: 5 });
  // Its linear layers on [N, H, W, C] are exported as MatMul with the weight as [in, out]: compared exactly all the same.
  assert.deepEqual([record.export!.layerwise!.weight_layers, record.export!.layerwise!.weights_failed_at], [9, null]);
});

test('int8Kernels is refused with narrower activations or with int4 storage, before anything is read', async () => {
  const { quantizeModel } = await import('../src/index.js');
  const base = { model: '/nonexistent.onnx', calib: '/nonexistent', wBits: 4, method: 'mse', int8Kernels: true };
  await assert.rejects(quantizeModel({ ...base, aBits: 4 }), /int8 kernels \(--int8-kernels, int8Kernels\) need 8-bit activations .*but an activation bit-width is 4; the weights may have 2\.\.8 bits/);
  await assert.rejects(quantizeModel({ ...base, aBits: 8, bitRules: [{ match: '/fc/', wBits: 8, aBits: 6 }] }), /an activation bit-width is 6/);
  await assert.rejects(quantizeModel({ ...base, aBits: 8, int4Storage: true }), /int8 kernels \(--int8-kernels\) and int4 storage \(--int4-storage\) exclude each other/);
  // inspect previews only what quantize would run.
  const ws = await tinyWorkspace(1);
  const bin = join(resolve(fileURLToPath(import.meta.url), '../../..'), 'bin', 'pdquant.js');
  const inspect = (...args: string[]) => spawnSync(process.execPath, [bin, 'inspect', ws.model, ...args], { encoding: 'utf8' });
  for (const [args, message] of [
    [['--quant', '4/4', '--int8-kernels'], /error: int8 kernels .* need 8-bit activations .*but an activation bit-width is 4/],
    [['--quant', '4/8', '--int8-kernels', '--bits', '/layer1/=8/6'], /error: int8 kernels .*an activation bit-width is 6/],
    [['--int8-kernels'], /error: --int8-kernels shapes the quantizers that --quant <w\/a> lists: add --quant/],
  ] as const) {
    const r = inspect(...args);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, message);
    assert.equal(r.stdout, '', 'nothing previewed');
  }
  const ok = inspect('--quant', '4/8', '--int8-kernels');
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /A8 {2}after \S+ {2}\(layer input, unit /);
});

test('with integer kernels, an addition that reads a quantizer through a slice and a zero pad (option-A shortcut) reads it requantized, value for value', async () => {
  const ort = await import('onnxruntime-node');
  const { encodeOnnx } = await import('../src/onnx/write.js');
  const i64 = (name: string, values: number[]) => ({ name, dataType: 'int64' as const, dims: [values.length], data: BigInt64Array.from(values.map(BigInt)) });
  const model: OnnxModel = {
    irVersion: 8, opsetVersion: 13, producer: 't', producerVersion: '', graphName: 'g', metadata: {},
    inputs: [{ name: 'x', elemType: 'float32', dims: [1, 4, 3, 3] }], outputs: [{ name: 'y', elemType: 'float32', dims: [1, 4, 3, 3] }],
    initializers: new Map([i64('starts', [0]), i64('ends', [2]), i64('axes', [1]), i64('pads', [0, 1, 0, 0, 0, 1, 0, 0])].map((t) => [t.name, t])),
    nodes: [
      { name: 'relu', opType: 'Relu', domain: '', inputs: ['x'], outputs: ['r'], attrs: {} },
      { name: 'slice', opType: 'Slice', domain: '', inputs: ['r', 'starts', 'ends', 'axes'], outputs: ['s'], attrs: {} },
      { name: 'pad', opType: 'Pad', domain: '', inputs: ['s', 'pads'], outputs: ['p'], attrs: {} },
      { name: 'neg', opType: 'Neg', domain: '', inputs: ['x'], outputs: ['n'], attrs: {} },
      { name: 'add', opType: 'Add', domain: '', inputs: ['p', 'n'], outputs: ['y'], attrs: {} },
    ],
  };
  const acts = [{ value: 'r', bits: 8, scale: 0.037, zeroPoint: 0 }, { value: 'n', bits: 8, scale: 0.05, zeroPoint: 131 }];
  const kernels = toQdq(model, { integerKernels: true, weights: [], acts });
  const plain = toQdq(model, { weights: [], acts });
  assert.deepEqual(kernels.nodes.find((n) => n.name === 'add')!.inputs, ['p_requant_dq', 'n_dq']);
  assert.deepEqual(plain.nodes.find((n) => n.name === 'add')!.inputs, ['p', 'n_dq']);
  const x = Float32Array.from({ length: 36 }, (_, i) => Math.sin(i * 1.3) * 5);
  const run = async (m: OnnxModel) => {
    const session = await ort.InferenceSession.create(encodeOnnx(m), { graphOptimizationLevel: 'disabled' });
    const out = (await session.run({ x: new ort.Tensor('float32', x, [1, 4, 3, 3]) })).y!.data as Float32Array;
    await session.release();
    return [...out];
  };
  assert.deepEqual(await run(kernels), await run(plain));
});

test('toQdq with integer kernels refuses weight codes that do not fit INT8 after their zero point', () => {
  const model: OnnxModel = {
    irVersion: 8, opsetVersion: 13, producer: 't', producerVersion: '', graphName: 'g', metadata: {},
    inputs: [{ name: 'x', elemType: 'float32', dims: [1, 2] }], outputs: [{ name: 'y', elemType: 'float32', dims: [1, 2] }],
    initializers: new Map([['w', { name: 'w', dataType: 'float32', dims: [2, 2], data: Float32Array.of(1, -1, 0.5, 0.25) }]]),
    nodes: [{ name: 'fc', opType: 'Gemm', domain: '', inputs: ['x', 'w'], outputs: ['y'], attrs: { transB: { type: 'int', value: 1 } } }],
  };
  const spec = (zero: number) => ({
    integerKernels: true,
    weights: [{ node: 'fc', bits: 8, axis: 0, scale: Float32Array.of(0.01, 0.01), zeroPoint: Uint8Array.of(zero, zero), codes: Uint8Array.of(255, 0, 200, 100) }],
    acts: [{ value: 'x', bits: 8, scale: 0.1, zeroPoint: 128 }],
  });
  // Codes past ±64 go as UINT8 with zero point 128 (onnxruntime's U8S8 kernels can saturate on them), narrower as INT8.
  const ok = toQdq(model, spec(128));
  assert.deepEqual([ok.initializers.get('w_q')!.dataType, [...ok.initializers.get('w_q')!.data], [...ok.initializers.get('w_zero_point')!.data]], ['uint8', [255, 0, 200, 100], [128, 128]]);
  const narrow = toQdq(model, { ...spec(128), weights: [{ ...spec(128).weights[0]!, codes: Uint8Array.of(192, 64, 150, 100) }] });
  assert.deepEqual([narrow.initializers.get('w_q')!.dataType, [...narrow.initializers.get('w_q')!.data], [...narrow.initializers.get('w_zero_point')!.data]], ['int8', [64, -64, 22, -28], [0, 0]]);
  assert.throws(() => toQdq(model, spec(100)), /weight of node 'fc': code\[0\] − zero point = 155 does not fit INT8; integer kernels need 8-bit weights quantized with zero point 128/);
  assert.throws(() => toQdq(model, { ...spec(128), acts: [{ value: 'x', bits: 6, scale: 0.1, zeroPoint: 32 }] }), /activation 'x': integer kernels need 8-bit activations, it has 6 bits/);
});
