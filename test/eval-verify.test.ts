// The export check: each activation quantizer in onnxruntime against the simulation, from onnxruntime's inputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as E from '../src/engine/index.js';
import { quantize } from '../src/methods/pipeline.js';
import { qdqModel, qdqSpec } from '../src/methods/export.js';
import type { OnnxModel } from '../src/onnx/ir.js';
import { checkLayerwise, checkWeights, compareQuantized, exportVerdict, MAX_FLIP_SHARE, onlyRoundingFlips, top1Verdict, type LayerwiseCheck, type QuantizerDiff } from '../src/eval/verify.js';
import { tinyWorkspace } from './helpers/tiny-resnet.js';

test('two dequantized tensors: equal values, values one step apart, and anything else', () => {
  const step = 0.25;
  const sim = Float32Array.from([0, 0.25, 0.5, 0.75, 1, 1.25]);
  assert.deepEqual(compareQuantized(sim, sim, step), { flips: 0, mismatches: 0, maxDiff: 0, maxAbs: 1.25 });
  // One step either way is a rounding flip; half a step (a value not quantized) and two steps are not.
  const ort = Float32Array.from([0.25, 0, 0.5 + 0.125, 0.75, 1.5, 1.25]);
  assert.deepEqual(compareQuantized(sim, ort, step), { flips: 2, mismatches: 2, maxDiff: 0.5, maxAbs: 1.25 });
  // A step that is not known (NaN) lets no difference pass.
  assert.deepEqual(compareQuantized(sim, Float32Array.from([0.25, 0.25, 0.5, 0.75, 1, 1.25]), NaN).mismatches, 1);
});

test('a quantizer passes with few flips and no other difference', () => {
  const d = (flips: number, mismatches: number): QuantizerDiff => ({ value: 'v', elements: 10_000, flips, mismatches, maxDiff: 0, step: 1, maxAbs: 1 });
  assert.ok(onlyRoundingFlips(d(0, 0)));
  assert.ok(onlyRoundingFlips(d(10_000 * MAX_FLIP_SHARE, 0)));
  assert.ok(!onlyRoundingFlips(d(10_000 * MAX_FLIP_SHARE + 1, 0)));
  assert.ok(!onlyRoundingFlips(d(0, 1)));
});

test('the verdict: a layer-by-layer match excuses top-1 classes that differ, unless it ran other kernels than the file', () => {
  const ok: LayerwiseCheck = { quantizers: [], values: 1000, flips: 2, maxLogitDiff: 1e-6, maxLogit: 1e-3, logitsAgree: true };
  const tie = { agreement: 0.5, maxLogitDiff: 1e-6, maxLogit: 1e-3 };
  assert.deepEqual(exportVerdict({ ...tie, agreement: 1 }, ok, 8), { problems: [] });
  const excused = exportVerdict(tie, ok, 8);
  assert.deepEqual(excused.problems, []);
  assert.match(excused.warning!, /^the top-1 class differs on 50\.0 % of 8 calibration images, but every activation quantizer .* \(2 of 1000 one rounding step apart\).*nearly tie/);
  // Where the layer-by-layer check did not run the file's integer kernels, it cannot excuse them.
  assert.deepEqual(exportVerdict(tie, ok, 8, false), { problems: ['the top-1 class differs on 50.0 % of 8 calibration images'] });
  // With the weights checked too, the warning says so; weights that differ are a problem of their own.
  assert.match(exportVerdict(tie, ok, 8, true, { layers: 4, values: 100 }).warning!, /, but the weights are the simulation's and every activation quantizer/);
  assert.deepEqual(exportVerdict({ ...tie, agreement: 1 }, ok, 8, true, { layers: 4, values: 100, failed: { node: '/fc/Gemm', differing: 1, values: 64, maxDiff: 0.05 } }).problems,
    ["the weights of /fc/Gemm in the file differ from the simulation's in 1 of 64 values (max difference 0.0500)"]);
  const bad: LayerwiseCheck = { ...ok, failed: { value: 'relu1', elements: 1000, flips: 0, mismatches: 7, maxDiff: 0.5, step: 0.25, maxAbs: 2 } };
  assert.deepEqual(exportVerdict(tie, bad, 8).problems, [
    "from the same inputs, the activation quantizer at relu1 does not give the simulation's values: 7 of its 1000 values differ by other than one step (max difference 0.500, step 0.250, values up to 2.00)",
    'the top-1 class differs on 50.0 % of 8 calibration images',
  ]);
  const tail = exportVerdict({ ...tie, agreement: 1 }, { ...ok, maxLogitDiff: 0.5, maxLogit: 3, logitsAgree: false }, 8);
  assert.deepEqual(tail.problems, ['from the same quantized values, the logits differ by up to 0.500 (logits up to 3.00): the difference is after the last activation quantizer']);
});

test('the top-1 on evaluation data: within 0.05 points it passes; beyond, a layer-by-layer match makes it a warning', () => {
  const ok: LayerwiseCheck = { quantizers: [], values: 17_760_256, flips: 31, maxLogitDiff: 1e-6, maxLogit: 30, logitsAgree: true };
  assert.deepEqual(top1Verdict(77.73, 77.68, ok), {});
  const warned = top1Verdict(77.75, 77.68, ok);
  assert.equal(warned.problem, undefined);
  assert.match(warned.warning!, /^onnxruntime gives top-1 77\.75 % and the simulation 77\.68 %, 0\.07 points apart \(more than 0\.05\), but every activation quantizer .* \(31 of 17760256 one rounding step apart, .*\): those steps carry on through the network; the deployed model's top-1 is onnxruntime's$/);
  // No match, or a match on other kernels than the file runs: a problem.
  const bad: LayerwiseCheck = { ...ok, failed: { value: 'relu1', elements: 1000, flips: 0, mismatches: 7, maxDiff: 0.5, step: 0.25, maxAbs: 2 } };
  for (const verdict of [top1Verdict(77.75, 77.68, bad), top1Verdict(77.75, 77.68, ok, false), top1Verdict(77.75, 77.68, { ...ok, logitsAgree: false })])
    assert.deepEqual(verdict, { problem: 'onnxruntime gives top-1 77.75 % but the simulation 77.68 % (tolerance 0.05)' });
  assert.deepEqual(top1Verdict(77.75, 77.68, ok, true, { layers: 4, values: 100, failed: { node: '/fc/Gemm', differing: 1, values: 64, maxDiff: 0.05 } }).warning, undefined);
});

test('checkLayerwise: a right export matches quantizer by quantizer; a wrong scale or bias is found where it is', async () => {
  const ws = await tinyWorkspace(8);
  const { record, qmodel, loaded } = await quantize(
    {
      model: ws.model, calib: ws.images, method: 'mse', wBits: 4, aBits: 4, numSamples: 32, seed: 3,
      transform: { mean: [0.5], std: [0.25] }, eightBitHeadStem: true, evalBatch: 32, output: join(ws.dir, 'tiny.q.onnx'),
    },
    'test',
  );
  const x = E.keep(E.tidy(() => E.randn([12, 3, 8, 8]).mul(2)));
  try {
    // The pipeline ran the check on its probe images and wrote the file.
    const lw = record.export!.layerwise!;
    assert.equal(lw.failed_at, null);
    assert.equal(lw.quantizers, qmodel.placement.acts.length);
    assert.ok(lw.values > 0);

    const body = qdqModel(loaded.folded.model, qdqSpec(qmodel, {}));
    const right = await checkLayerwise(qmodel, body, x, 5); // 5 images at a time: chunks of 5, 5 and 2
    assert.equal(right.failed, undefined);
    assert.ok(right.logitsAgree, `logits ${right.maxLogitDiff} of ${right.maxLogit}`);
    assert.equal(right.quantizers.length, qmodel.placement.acts.length);
    for (const d of right.quantizers) assert.ok(d.elements > 0 && d.elements % 12 === 0 && d.mismatches === 0, `${d.value}: ${JSON.stringify(d)}`);

    // Every weight exactly: one code off by one in a convolution or in the classifier is found.
    const weights = checkWeights(qmodel, body);
    assert.deepEqual(weights, { layers: qmodel.weights.size, values: weights.values });
    assert.ok(weights.values > 0);
    for (const layer of ['/layer1/layer1.0/conv2/conv/Conv', '/fc/Gemm']) {
      const node = body.nodes.find((n) => n.name === layer)!;
      const dqNode = body.nodes.find((n) => n.outputs[0] === node.inputs[1])!;
      const codes = body.initializers.get(dqNode.inputs[0]!)!;
      const data = (codes.data as Uint8Array).slice();
      data[5] = data[5]! === 0 ? 1 : data[5]! - 1;
      const initializers = new Map(body.initializers).set(codes.name, { ...codes, data });
      const found = checkWeights(qmodel, { ...body, initializers });
      assert.equal(found.failed?.node, layer);
      assert.equal(found.failed?.differing, 1);
    }

    // The bias the export moved into an Add after the convolution: one value changed by 1e-3 is found.
    const conv = body.nodes.find((n) => n.name === '/layer1/layer1.0/conv1/conv/Conv')!;
    const biasAdd = body.nodes.find((n) => n.opType === 'Add' && n.inputs[0] === conv.outputs[0])!;
    const moved = biasAdd.inputs.find((i) => body.initializers.has(i))!;
    const nudged = scaleInitializer(body, moved, 1);
    (nudged.initializers.get(moved)!.data as Float32Array)[1]! += 1e-3;
    const found = checkWeights(qmodel, nudged).failed!;
    assert.deepEqual([found.node, found.bias, found.differing, found.values], [conv.name, true, 1, 8]);
    assert.ok(Math.abs(found.maxDiff - 1e-3) < 1e-6, `${found.maxDiff}`);

    // A DequantizeLinear scale 1.5× too large at the third quantizer: that quantizer fails, not the ones before it.
    const target = qmodel.placement.acts[2]!.value;
    const dq = body.nodes.find((n) => n.opType === 'DequantizeLinear' && n.outputs[0] === `${target}_dq`)!;
    const scaled = scaleInitializer(body, dq.inputs[1]!, 1.5);
    const wrongScale = await checkLayerwise(qmodel, scaled, x);
    assert.equal(wrongScale.failed?.value, target);
    assert.ok(wrongScale.failed!.mismatches > 0);
    // The quantizers after it start from onnxruntime's (wrong) values, so they and the logits agree again.
    const after = wrongScale.quantizers.slice(wrongScale.quantizers.findIndex((d) => d.value === target) + 1);
    assert.ok(after.length > 0 && after.every((d) => d.mismatches === 0), JSON.stringify(after));
    assert.ok(wrongScale.logitsAgree);

    // A bias changed after the last quantizer: every quantizer agrees, the logits do not.
    const last = body.nodes.find((n) => n.outputs[0] === body.outputs[0]!.name)!;
    const biasName = last.inputs.find((i) => body.initializers.get(i)?.dims.length === 1)!;
    const wrongBias = await checkLayerwise(qmodel, scaleInitializer(body, biasName, 1, 0.5), x);
    assert.equal(wrongBias.failed, undefined);
    assert.ok(!wrongBias.logitsAgree && wrongBias.maxLogitDiff > 0.4, `logits ${wrongBias.maxLogitDiff}`);
  } finally {
    x.dispose();
    qmodel.dispose();
  }
});

/** The model with initializer `name` (float32) as name × factor + shift. */
function scaleInitializer(m: OnnxModel, name: string, factor: number, shift = 0): OnnxModel {
  const t = m.initializers.get(name)!;
  assert.equal(t.dataType, 'float32', `${name} is float32`);
  const initializers = new Map(m.initializers);
  initializers.set(name, { ...t, data: (t.data as Float32Array).map((v) => v * factor + shift) });
  return { ...m, initializers };
}

test('checkWeights with int8 kernels: the biases as int32 codes are compared exactly too', async () => {
  const ws = await tinyWorkspace(8);
  const { qmodel, loaded } = await quantize(
    {
      model: ws.model, calib: ws.images, method: 'mse', wBits: 8, aBits: 8, numSamples: 32, seed: 3, int8Kernels: true,
      transform: { mean: [0.5], std: [0.25] }, eightBitHeadStem: true, evalBatch: 32,
    },
    'test',
  );
  try {
    const body = qdqModel(loaded.folded.model, qdqSpec(qmodel, {}));
    assert.deepEqual(checkWeights(qmodel, body).failed, undefined);
    const conv = body.nodes.find((n) => n.name === '/layer2/layer2.0/conv1/conv/Conv')!;
    const dq = body.nodes.find((n) => n.outputs[0] === conv.inputs[2])!;
    assert.equal(dq.opType, 'DequantizeLinear', 'the bias is on its integer grid');
    const codes = body.initializers.get(dq.inputs[0]!)!;
    assert.equal(codes.dataType, 'int32');
    const data = (codes.data as Int32Array).slice();
    data[3]! += 1;
    const found = checkWeights(qmodel, { ...body, initializers: new Map(body.initializers).set(codes.name, { ...codes, data }) });
    assert.deepEqual([found.failed?.node, found.failed?.bias, found.failed?.differing], [conv.name, true, 1]);
  } finally {
    qmodel.dispose();
  }
});
