import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { OnnxError, encodeOnnx, readOnnx, writeOnnx, type OnnxModel, type OnnxTensor } from '../src/onnx/index.js';
import { onnx } from '../src/onnx/proto.js';
import { exactInt32Codes, toQdq, type QdqActivation, type QdqSpec, type QdqWeight } from '../src/onnx/qdq.js';
import { summarizeQdq } from '../src/onnx/qdq-summary.js';
import { attr, buildModel, randomFloats, runOrt, tensor } from './helpers/onnx-builder.js';
import { tempDir } from './helpers/temp-dir.js';

// ---------- plain-JS reference of the simulation ----------

const f32 = Math.fround;
/** Round half to even. */
function rne(v: number): number {
  const r = Math.round(v); // half up
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
/** x̂ = (clamp(round(x/s) + z, 0, 2^b − 1) − z)·s, in float32. */
function fakeQuant(x: Float32Array, a: QdqActivation): Float32Array {
  const s = f32(a.scale), z = a.zeroPoint, max = 2 ** a.bits - 1;
  return x.map((v) => f32((Math.min(Math.max(rne(f32(v / s)) + z, 0), max) - z) * s));
}
/** ŵ = (q − z)·s per channel, in float32. */
function dequantWeight(w: QdqWeight, dims: number[]): Float32Array {
  const inner = dims.slice(w.axis + 1).reduce((a, b) => a * b, 1);
  const channels = dims[w.axis];
  return Float32Array.from(w.codes, (q, i) => {
    const c = Math.floor(i / inner) % channels;
    return f32((q - w.zeroPoint[c]) * w.scale[c]);
  });
}

// ---------- onnxruntime ----------

type Feed = { dims: number[]; data: Float32Array };
type Level = 'disabled' | 'basic' | 'extended' | 'all';

function run(bytes: Uint8Array, feeds: Record<string, Feed>, level: Level = 'disabled'): Promise<Record<string, Feed>> {
  return runOrt(bytes, feeds, { graphOptimizationLevel: level });
}

/** Deterministic PRNG in [0, 1). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  const scale = Math.max(1e-12, ...Array.from(b, Math.abs));
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]) / scale);
  return d;
}

// ---------- the CNN: Conv → Relu → Conv → Relu → GlobalAveragePool → Flatten → Gemm ----------

const N = 2;
const W1 = [6, 3, 3, 3], W2 = [8, 6, 3, 3], W3 = [5, 8];
const convAttrs = (stride: number) => ({ kernel_shape: attr.ints([3, 3]), pads: attr.ints([1, 1, 1, 1]), strides: attr.ints([stride, stride]) });

const cnnBytes = buildModel({
  inputs: [{ name: 'x', dims: ['N', 3, 8, 8] }],
  outputs: [{ name: 'y', dims: ['N', 5] }],
  metadata: { source: 'test', 'pdquant.note': 'kept' },
  initializers: [
    tensor('w1', 'float', W1, [...randomFloats(162, 11)], true),
    tensor('b1', 'float', [6], [...randomFloats(6, 12)].map((v) => v * 0.2)),
    tensor('w2', 'float', W2, [...randomFloats(432, 13)], true),
    tensor('b2', 'float', [8], [...randomFloats(8, 14)].map((v) => v * 0.2)),
    tensor('w3', 'float', W3, [...randomFloats(40, 15)], true),
    tensor('b3', 'float', [5], [...randomFloats(5, 16)]),
  ],
  nodes: [
    { op: 'Conv', name: 'conv1', inputs: ['x', 'w1', 'b1'], outputs: ['c1'], attrs: convAttrs(1) },
    { op: 'Relu', name: 'relu1', inputs: ['c1'], outputs: ['r1'] },
    { op: 'Conv', name: 'conv2', inputs: ['r1', 'w2', 'b2'], outputs: ['c2'], attrs: convAttrs(2) },
    { op: 'Relu', name: 'relu2', inputs: ['c2'], outputs: ['r2'] },
    { op: 'GlobalAveragePool', name: 'gap', inputs: ['r2'], outputs: ['g'] },
    { op: 'Flatten', name: 'flatten', inputs: ['g'], outputs: ['f'] },
    { op: 'Gemm', name: 'fc', inputs: ['f', 'w3', 'b3'], outputs: ['y'], attrs: { transB: attr.int(1) } },
  ],
});

const cnn = readOnnx(cnnBytes);
const getInit = (name: string): OnnxTensor => cnn.initializers.get(name) as OnnxTensor;

/** Float segments of the CNN, run in onnxruntime with given (dequantized) weights; the quantizers between them run in JS. */
function segment(nodes: Parameters<typeof buildModel>[0]['nodes'], input: string, output: string, inits: [string, number[], Float32Array][], opset = 13): Uint8Array {
  return buildModel({
    opset,
    inputs: [{ name: input }],
    outputs: [{ name: output }],
    initializers: inits.map(([name, dims, data]) => tensor(name, 'float', dims, [...data], true)),
    nodes,
  });
}

function randomWeight(node: string, dims: number[], axis: number, bits: number, rand: () => number): QdqWeight {
  const channels = dims[axis];
  const n = dims.reduce((a, b) => a * b, 1);
  const max = 2 ** bits - 1;
  return {
    node, bits, axis,
    scale: Float32Array.from({ length: channels }, () => f32((0.5 + rand()) * (2 / max))),
    zeroPoint: Uint8Array.from({ length: channels }, () => Math.floor(rand() * (max + 1))),
    codes: Uint8Array.from({ length: n }, () => Math.floor(rand() * (max + 1))),
  };
}

/** A quantizer for a tensor whose float values are `x`: range shrunk by a random factor (so some values clip), random-ish zero point. */
function randomAct(value: string, x: Float32Array, bits: number, rand: () => number): QdqActivation {
  let lo = Math.min(0, ...x), hi = Math.max(0, ...x);
  const shrink = 0.6 + 0.35 * rand();
  lo *= shrink; hi *= shrink;
  const max = 2 ** bits - 1;
  const scale = Math.max(hi - lo, 1e-3) / max;
  const zeroPoint = Math.min(max, Math.max(0, Math.round(-lo / scale) + (rand() < 0.5 ? 1 : 0)));
  return { value, bits, scale, zeroPoint };
}

/**
 * The CNN's output computed layer by layer: float segments in onnxruntime (with the dequantized weights), the
 * activation quantizers in JS. `quant` quantizes the named tensor. With `roundBias`, each Conv/Gemm bias is first
 * rounded to the int32 grid of input scale × weight scale, as onnxruntime's WeightBiasQuantization optimizer does.
 */
async function reference(weights: QdqWeight[], x: Feed, quant: (value: string, t: Float32Array) => Float32Array, acts?: QdqActivation[]): Promise<Float32Array> {
  const [w1, w2, w3] = weights;
  const bias = (name: string, w: QdqWeight, input: string): Float32Array => {
    const b = getInit(name).data as Float32Array;
    const a = acts?.find((v) => v.value === input);
    if (!a) return b;
    return b.map((v, c) => {
      const s = f32(f32(a.scale) * w.scale[c]);
      return f32(rne(f32(v / s)) * s);
    });
  };
  const xq = quant('x', x.data);
  const r1 = (await run(segment([
    { op: 'Conv', inputs: ['x', 'w1', 'b1'], outputs: ['c1'], attrs: convAttrs(1) },
    { op: 'Relu', inputs: ['c1'], outputs: ['r1'] },
  ], 'x', 'r1', [['w1', W1, dequantWeight(w1, W1)], ['b1', [6], bias('b1', w1, 'x')]]), { x: { dims: x.dims, data: xq } })).r1;
  const r1q = quant('r1', r1.data);
  const r2 = (await run(segment([
    { op: 'Conv', inputs: ['r1', 'w2', 'b2'], outputs: ['c2'], attrs: convAttrs(2) },
    { op: 'Relu', inputs: ['c2'], outputs: ['r2'] },
  ], 'r1', 'r2', [['w2', W2, dequantWeight(w2, W2)], ['b2', [8], bias('b2', w2, 'r1')]]), { r1: { dims: r1.dims, data: r1q } })).r2;
  const r2q = quant('r2', r2.data);
  const f = (await run(segment([
    { op: 'GlobalAveragePool', inputs: ['r2'], outputs: ['g'] },
    { op: 'Flatten', inputs: ['g'], outputs: ['f'] },
  ], 'r2', 'f', []), { r2: { dims: r2.dims, data: r2q } })).f;
  const fq = quant('f', f.data);
  const y = (await run(segment([
    { op: 'Gemm', inputs: ['f', 'w3', 'b3'], outputs: ['y'], attrs: { transB: attr.int(1) } },
  ], 'f', 'y', [['w3', W3, dequantWeight(w3, W3)], ['b3', [5], bias('b3', w3, 'f')]]), { f: { dims: f.dims, data: fq } })).y;
  return quant('y', y.data);
}

/** Quantization spec for the CNN with the given bit widths (activation ranges from the float values), and its reference outputs. */
async function cnnCase(wBits: [number, number, number], aBits: [number, number, number, number, number], seed: number, x: Feed) {
  const rand = rng(seed);
  const weights = [randomWeight('conv1', W1, 0, wBits[0], rand), randomWeight('conv2', W2, 0, wBits[1], rand), randomWeight('fc', W3, 0, wBits[2], rand)];
  const acts: QdqActivation[] = [];
  const expected = await reference(weights, x, (value, t) => {
    const a = randomAct(value, t, aBits[acts.length], rand);
    acts.push(a);
    return fakeQuant(t, a);
  });
  const byName = (value: string) => acts.find((a) => a.value === value) as QdqActivation;
  const roundedBias = await reference(weights, x, (value, t) => fakeQuant(t, byName(value)), acts);
  const spec: QdqSpec = { weights, acts, metadata: { 'pdquant.bits': wBits.join(','), source: 'pdquant' } };
  return { spec, expected, roundedBias };
}

/** The CNN input (rounding ties and out-of-range values are covered by the Clip + QuantizeLinear test below). */
const xFeed: Feed = { dims: [N, 3, 8, 8], data: randomFloats(N * 192, 21).map((v) => v * 2) };

const BIT_SETS: { w: [number, number, number]; a: [number, number, number, number, number] }[] = [
  { w: [8, 4, 2], a: [8, 4, 3, 2, 8] },
  { w: [2, 3, 4], a: [3, 2, 8, 4, 4] },
  { w: [3, 8, 3], a: [4, 8, 2, 3, 2] },
  { w: [4, 2, 8], a: [2, 3, 4, 8, 3] },
];

/** Runs the QDQ CNN with onnxruntime's QDQ optimizers turned off (session config disable_quant_qdq). */
async function runNoQdqOptimizers(bytes: Uint8Array, level: Level): Promise<Float32Array> {
  return (await runOrt(bytes, { x: xFeed }, { graphOptimizationLevel: level, extra: { session: { disable_quant_qdq: '1' } } })).y_dq!.data;
}

/**
 * Checks the QDQ CNN against the references:
 * - the ONNX graph as written (optimizations off, or on without the QDQ optimizers): bit-exact with the simulation;
 * - onnxruntime's default optimizations: biases sit in Adds after the layers, so its WeightBiasQuantization cannot round
 *   them to the int32 grid (`roundedBias` is what it would give otherwise): the simulation to float32 precision.
 */
async function checkCnn(bytes: Uint8Array, expected: Float32Array, roundedBias: Float32Array, what: string): Promise<void> {
  const exact = (await run(bytes, { x: xFeed }, 'disabled')).y_dq;
  assert.deepEqual(exact.dims, [N, 5]);
  assert.equal(maxRelDiff(exact.data, expected), 0, `${what}, optimizations disabled`);
  for (const level of ['basic', 'all'] as const) {
    assert.equal(maxRelDiff(await runNoQdqOptimizers(bytes, level), expected), 0, `${what}, ${level} without QDQ optimizers`);
    const got = (await run(bytes, { x: xFeed }, level)).y_dq.data;
    assert.ok(maxRelDiff(got, expected) <= 1e-5, `${what}, ${level}: ${maxRelDiff(got, expected)} from the simulation`);
  }
}

test('QDQ CNN equals the simulation (dequantized weights, fake-quantized activations) in onnxruntime, for 2, 3, 4 and 8 bits', async () => {
  for (const [k, bits] of BIT_SETS.entries()) {
    const { spec, expected, roundedBias } = await cnnCase(bits.w, bits.a, 100 + k, xFeed);
    await checkCnn(encodeOnnx(toQdq(cnn, spec)), expected, roundedBias, `bits ${JSON.stringify(bits)}`);
  }
});

test('toQdq builds the standard QDQ graph: weight codes + DequantizeLinear, [Clip →] QuantizeLinear → DequantizeLinear after each activation', async () => {
  const { spec } = await cnnCase([8, 4, 2], [8, 4, 3, 2, 8], 7, xFeed);
  const before = encodeOnnx(cnn);
  const q = toQdq(cnn, spec);
  assert.deepEqual(encodeOnnx(cnn), before, 'the input model is not modified');
  assert.equal(q.opsetVersion, 13);
  // Float weights replaced by codes, scale and zero point; conv biases reshaped to [C,1,1] for their Add, the rest unchanged.
  for (const w of ['w1', 'w2', 'w3']) assert.ok(!q.initializers.has(w));
  for (const b of ['b1', 'b2']) assert.deepEqual(q.initializers.get(`${b}_bias`)?.data, cnn.initializers.get(b)?.data);
  assert.deepEqual(q.initializers.get('b2_bias')?.dims, [8, 1, 1]);
  assert.equal(q.initializers.get('b3'), cnn.initializers.get('b3'));
  const codes = q.initializers.get('w2_q') as OnnxTensor;
  assert.deepEqual([codes.dataType, codes.dims], ['uint8', W2]);
  assert.deepEqual(codes.data, spec.weights[1].codes);
  assert.deepEqual(q.initializers.get('w2_scale')?.data, spec.weights[1].scale);
  assert.deepEqual(q.initializers.get('w2_zero_point')?.data, spec.weights[1].zeroPoint);
  const conv2 = q.nodes.find((n) => n.name === 'conv2');
  assert.deepEqual(conv2?.inputs, ['r1_dq', 'w2_dq']);
  const add2 = q.nodes.find((n) => n.name === 'conv2_bias_Add');
  assert.deepEqual([add2?.inputs, add2?.outputs], [[conv2?.outputs[0], 'b2_bias'], [cnn.nodes.find((n) => n.name === 'conv2')?.outputs[0]]]);
  const dqW = q.nodes.find((n) => n.outputs[0] === 'w2_dq');
  assert.deepEqual([dqW?.opType, dqW?.inputs, dqW?.attrs.axis], ['DequantizeLinear', ['w2_q', 'w2_scale', 'w2_zero_point'], { type: 'int', value: 0 }]);
  // The producer keeps its output name; the quantizer reads it, consumers read the dequantized value.
  const ops = (value: string) => q.nodes.filter((n) => ['Clip', 'QuantizeLinear', 'DequantizeLinear'].some((op) => n.name === `${value}_${op}`)).map((n) => `${n.opType}:${n.inputs[0]}->${n.outputs[0]}`);
  assert.deepEqual(q.nodes.find((n) => n.name === 'relu1')?.outputs, ['r1']);
  assert.deepEqual(ops('r1'), ['Clip:r1->r1_clip', 'QuantizeLinear:r1_clip->r1_q', 'DequantizeLinear:r1_q->r1_dq']);
  assert.deepEqual(ops('x'), ['QuantizeLinear:x->x_q', 'DequantizeLinear:x_q->x_dq'], '8 bits: no Clip');
  const clip = q.nodes.find((n) => n.name === 'r1_Clip');
  const a = spec.acts[1];
  assert.deepEqual(clip?.inputs.slice(1).map((name) => q.initializers.get(name)?.data[0]),
    [f32((0 - a.zeroPoint) * f32(a.scale)), f32((15 - a.zeroPoint) * f32(a.scale))]);
  assert.equal(q.initializers.get('r1_zero_point')?.dataType, 'uint8');
  // The graph output became the DQ output.
  assert.deepEqual(q.outputs.map((v) => v.name), ['y_dq']);
  assert.deepEqual(q.nodes.find((n) => n.name === 'fc_bias_Add')?.outputs, ['y']);
  // Nodes stay topologically sorted: the IR reads back (readOnnx sorts and checks) in the same order.
  assert.deepEqual(readOnnx(encodeOnnx(q)).nodes.map((n) => n.name), q.nodes.map((n) => n.name));
  assert.deepEqual(q.metadata, { source: 'pdquant', 'pdquant.note': 'kept', 'pdquant.bits': '8,4,2' });
});

test('Clip + QuantizeLinear + DequantizeLinear in onnxruntime equals the formula exactly, rounding ties and out-of-range values included', async () => {
  // onnxruntime's QuantizeLinear divides by the scale and rounds half to even; multiplying by a float32 reciprocal
  // would round differently for a share of these values (checked below, so the test can tell the two apart).
  const model = readOnnx(buildModel({
    inputs: [{ name: 'x', dims: ['n'] }], outputs: [{ name: 'y', dims: ['n'] }],
    nodes: [{ op: 'Identity', name: 'id', inputs: ['x'], outputs: ['y'] }],
  }));
  const rand = rng(5);
  const nextUp = (v: number) => {
    const b = new Float32Array([v]), i = new Int32Array(b.buffer);
    if (v === 0) return 1.401298464324817e-45;
    i[0] += v > 0 ? 1 : -1;
    return b[0];
  };
  let reciprocalWouldDiffer = 0, ties = 0, checked = 0;
  for (const bits of [2, 3, 4, 5, 6, 7, 8]) {
    for (let trial = 0; trial < 8; trial++) {
      const scale = [0.1, 1 / 3, 0.125, 0.007][trial] ?? Math.exp(-7 + 7 * rand());
      const s = f32(scale);
      const zeroPoint = Math.floor(rand() * 2 ** bits);
      const xs: number[] = [];
      for (let k = -(2 ** bits) - 3; k <= 2 ** bits + 3; k++) {
        for (const base of [f32(k * s), f32((k + 0.5) * s)]) xs.push(base, nextUp(base), -nextUp(-base), nextUp(nextUp(base)));
      }
      for (let i = 0; i < 1000; i++) xs.push(f32((rand() * 2 - 1) * s * 2 ** (bits + 1)));
      xs.push(1e30, -1e30, 0, -0, 3.4e38);
      const x = Float32Array.from(xs);
      const act: QdqActivation = { value: 'x', bits, scale, zeroPoint };
      const bytes = encodeOnnx(toQdq(model, { weights: [], acts: [act] }));
      const expected = fakeQuant(x, act);
      for (const level of ['disabled', 'all'] as const) {
        const got = (await run(bytes, { x: { dims: [x.length], data: x } }, level)).y.data;
        for (let i = 0; i < x.length; i++) assert.equal(got[i], expected[i], `x=${x[i]} s=${s} z=${zeroPoint} b=${bits} (${level})`);
      }
      checked += x.length;
      const inv = f32(1 / s);
      for (const v of x) {
        const d = f32(v / s);
        if (Math.abs(d) < 2 ** (bits + 2) && rne(d) !== rne(f32(v * inv))) reciprocalWouldDiffer++;
        if (Math.abs(d % 1) === 0.5) ties++;
      }
    }
  }
  assert.ok(reciprocalWouldDiffer > 100 && ties > 100, `${checked} values, ${reciprocalWouldDiffer} where x·(1/s) rounds differently, ${ties} ties`);
});

test('a quantized graph input feeds all its consumers; a quantized graph output is renamed to its DQ output', async () => {
  const model = readOnnx(buildModel({
    inputs: [{ name: 'x', dims: [1, 4] }], outputs: [{ name: 'y', dims: [1, 4] }, { name: 'z', dims: [1, 4] }],
    nodes: [
      { op: 'Relu', name: 'a', inputs: ['x'], outputs: ['y'] },
      { op: 'Neg', name: 'b', inputs: ['x'], outputs: ['n'] },
      { op: 'Add', name: 'c', inputs: ['n', 'y'], outputs: ['z'] },
    ],
  }));
  const ax: QdqActivation = { value: 'x', bits: 3, scale: 0.25, zeroPoint: 4 };
  const ay: QdqActivation = { value: 'y', bits: 2, scale: 0.5, zeroPoint: 0 };
  const q = toQdq(model, { weights: [], acts: [ax, ay] });
  assert.deepEqual(q.outputs.map((v) => v.name), ['y_dq', 'z']);
  assert.deepEqual(q.nodes.map((n) => n.name), ['x_Clip', 'x_QuantizeLinear', 'x_DequantizeLinear', 'a', 'y_Clip', 'y_QuantizeLinear', 'y_DequantizeLinear', 'b', 'c']);
  const x = Float32Array.of(-2, 0.37, 0.6, 5);
  const out = await run(encodeOnnx(q), { x: { dims: [1, 4], data: x } });
  const xq = fakeQuant(x, ax);
  const yq = fakeQuant(xq.map((v) => Math.max(v, 0)), ay);
  assert.deepEqual(out.y_dq.data, yq);
  assert.deepEqual(out.z.data, xq.map((v, i) => f32(-v + yq[i])));
});

test('MatMul and Gemm(transB=0) weights are quantized along axis 1', async () => {
  const rand = rng(9);
  const model = readOnnx(buildModel({
    inputs: [{ name: 'x', dims: [3, 4] }], outputs: [{ name: 'y', dims: [3, 2] }],
    initializers: [tensor('wm', 'float', [4, 5], [...randomFloats(20, 31)], true), tensor('wg', 'float', [5, 2], [...randomFloats(10, 32)], true)],
    nodes: [
      { op: 'MatMul', name: 'mm', inputs: ['x', 'wm'], outputs: ['h'] },
      { op: 'Gemm', name: 'gemm', inputs: ['h', 'wg'], outputs: ['y'] },
    ],
  }));
  const wm = randomWeight('mm', [4, 5], 1, 3, rand);
  const wg = randomWeight('gemm', [5, 2], 1, 5, rand);
  const q = toQdq(model, { weights: [wm, wg], acts: [] });
  const x = { dims: [3, 4], data: randomFloats(12, 33) };
  const expected = await run(buildModel({
    inputs: [{ name: 'x' }], outputs: [{ name: 'y' }],
    initializers: [tensor('wm', 'float', [4, 5], [...dequantWeight(wm, [4, 5])], true), tensor('wg', 'float', [5, 2], [...dequantWeight(wg, [5, 2])], true)],
    nodes: [{ op: 'MatMul', inputs: ['x', 'wm'], outputs: ['h'] }, { op: 'Gemm', inputs: ['h', 'wg'], outputs: ['y'] }],
  }), { x });
  assert.deepEqual((await run(encodeOnnx(q), { x })).y.data, expected.y.data);
  assert.throws(() => toQdq(model, { weights: [{ ...wm, axis: 0 }], acts: [] }), /node 'mm'.*axis 0 given.*axis 1/);
});

test('exactInt32Codes: a float32 weight as INT32 codes times a power of two per channel, exact but for values under 2^-7 of the largest', () => {
  const dims = [3, 2, 4];
  const rand = rng(5);
  // Magnitudes over 12 orders, a channel of zeros, powers of two and the largest float32 below 2^k.
  const w = Float32Array.from({ length: 24 }, (_, i) => (i < 8 ? 0 : f32((rand() - 0.5) * 10 ** (-8 + 12 * rand()))));
  w[16] = 2 ** -3;
  w[17] = f32(2 ** 5 * (1 - 2 ** -24));
  const { codes, scale } = exactInt32Codes(w, dims, 0);
  assert.equal(scale[0], 1);
  for (let c = 0; c < 3; c++) {
    const largest = Math.max(...w.slice(8 * c, 8 * c + 8).map(Math.abs));
    assert.ok(Number.isInteger(Math.log2(scale[c]!)), 'a power of two');
    for (let i = 8 * c; i < 8 * c + 8; i++) {
      assert.ok(Math.abs(codes[i]!) < 2 ** 31);
      const back = f32(codes[i]! * scale[c]!);
      if (Math.abs(w[i]!) >= largest * 2 ** -7) assert.equal(back, w[i], `value ${i}`);
      else assert.ok(Math.abs(back - w[i]!) <= largest * 2 ** -31, `value ${i}`);
    }
  }
  assert.equal(f32(codes[17]! * scale[2]!), w[17]);
});

test('floatWeights: float layers between quantized activations stay float in onnxruntime, which rounds a float initializer there to 8 bits', async () => {
  const { spec } = await cnnCase([4, 4, 4], [8, 4, 4, 4, 8], 300, xFeed);
  const plain: QdqSpec = { weights: [spec.weights[0]!], acts: spec.acts };
  const float: QdqSpec = { ...plain, floatWeights: ['conv2', 'fc'] };
  // conv2 reads a quantized r1 and leads to the quantizer on r2: the pattern onnxruntime's WeightBiasQuantization takes.
  const probe = (s: QdqSpec) => {
    const m = toQdq(cnn, s);
    return encodeOnnx({ ...m, outputs: [...m.outputs, { name: 'c2', elemType: 'float32', dims: null }] });
  };
  const c2 = async (bytes: Uint8Array, level: Level) => (await run(bytes, { x: xFeed }, level)).c2!.data;
  const asWritten = await c2(probe(plain), 'disabled');
  const written = toQdq(cnn, float);
  const conv2 = written.nodes.find((n) => n.name === 'conv2')!;
  const codes = written.initializers.get(written.nodes.find((n) => n.outputs[0] === conv2.inputs[1])!.inputs[0]!)!;
  assert.deepEqual([codes.dataType, conv2.inputs.length], ['int32', 2], 'INT32 codes, the bias in an Add');
  assert.equal(summarizeQdq(written)!.floatWeights.length, 2);
  assert.equal(summarizeQdq(written)!.weights.length, 1);
  for (const level of ['disabled', 'basic', 'all'] as const) assert.ok(maxRelDiff(await c2(probe(float), level), asWritten) <= 1e-6, level);
  // The trap the INT32 codes avoid (if onnxruntime stops rounding, this fails and the codes may go).
  assert.ok(maxRelDiff(await c2(probe(plain), 'basic'), asWritten) > 1e-4);
  assert.throws(() => toQdq(cnn, { ...float, floatWeights: ['conv1'] }), /weight of node 'conv1': both quantized and float in the spec/);
  assert.throws(() => toQdq(cnn, { ...float, floatWeights: ['conv9'] }), /float weight of node 'conv9': the model has no node named 'conv9'/);
});

test('int4Storage: codes ≤ 4 bits stored as packed UINT4 at opset 21, same outputs as uint8 storage in onnxruntime 1.30', async () => {
  for (const [k, bits] of BIT_SETS.entries()) {
    const { spec, expected, roundedBias } = await cnnCase(bits.w, bits.a, 200 + k, xFeed);
    const q4 = toQdq(cnn, { ...spec, int4Storage: true });
    assert.equal(q4.opsetVersion, 21);
    assert.ok(q4.irVersion >= 10);
    spec.weights.forEach((w) => {
      const name = ['w1', 'w2', 'w3'][spec.weights.indexOf(w)];
      const type = w.bits <= 4 ? 'uint4' : 'uint8';
      assert.equal(q4.initializers.get(`${name}_q`)?.dataType, type);
      assert.equal(q4.initializers.get(`${name}_zero_point`)?.dataType, type);
    });
    const bytes = encodeOnnx(q4);
    assert.ok(bytes.length < encodeOnnx(toQdq(cnn, spec)).length);
    const back = readOnnx(bytes);
    for (const [name, t] of q4.initializers) assert.deepEqual(back.initializers.get(name), t, name);
    await checkCnn(bytes, expected, roundedBias, `int4 storage, bits ${JSON.stringify(bits)}`);
  }
});

test('summarizeQdq reads back each activation quantizer\'s bits (from its Clip) and each weight\'s largest code and storage', async () => {
  assert.equal(summarizeQdq(cnn), undefined, 'a float model');
  for (const [k, bits] of BIT_SETS.entries()) {
    const { spec } = await cnnCase(bits.w, bits.a, 300 + k, xFeed);
    for (const int4Storage of [false, true]) {
      const got = summarizeQdq(readOnnx(encodeOnnx(toQdq(cnn, { ...spec, int4Storage }))))!;
      const byValue = (l: { value: string; bits: number }[]) => l.map((a) => `${a.value}:${a.bits}`).sort();
      assert.deepEqual(byValue(got.acts), byValue(spec.acts), `bits ${JSON.stringify(bits)}`);
      assert.deepEqual(got.weights.map((w) => w.maxCode), spec.weights.map((w) => Math.max(...w.codes)));
      assert.deepEqual(got.weights.map((w) => w.bytes), spec.weights.map((w) => (int4Storage && w.bits <= 4 ? Math.ceil(w.codes.length / 2) : w.codes.length)));
    }
  }
});

test('UINT4/INT4 tensors round-trip: packed two per byte, low nibble first, odd counts padded', () => {
  const u4: OnnxTensor = { name: 'u', dataType: 'uint4', dims: [5], data: Uint8Array.of(1, 2, 15, 0, 9) };
  const i4: OnnxTensor = { name: 'i', dataType: 'int4', dims: [3], data: Int8Array.of(-8, 7, -1) };
  const model: OnnxModel = {
    irVersion: 10, opsetVersion: 21, producer: 'p', producerVersion: '1', graphName: 'g',
    inputs: [{ name: 'x', elemType: 'float32', dims: [1] }], outputs: [{ name: 'y', elemType: 'float32', dims: [1] }],
    initializers: new Map([['u', u4], ['i', i4]]),
    nodes: [{ name: 'id', opType: 'Identity', domain: '', inputs: ['x'], outputs: ['y'], attrs: {} }],
    metadata: {},
  };
  const bytes = encodeOnnx(model);
  const raw = onnx.ModelProto.decode(bytes).graph?.initializer ?? [];
  assert.deepEqual(raw.map((t) => [t.dataType, [...(t.rawData ?? [])]]), [[21, [0x21, 0x0f, 0x09]], [22, [0x78, 0x0f]]]);
  const back = readOnnx(bytes);
  assert.deepEqual(back.initializers.get('u'), u4);
  assert.deepEqual(back.initializers.get('i'), i4);
  // int32_data form (one packed byte per entry) reads too.
  const typed = onnx.ModelProto.decode(bytes);
  const t0 = (typed.graph?.initializer ?? [])[0];
  t0.rawData = new Uint8Array();
  t0.int32Data = [0x21, 0x0f, 0x09];
  assert.deepEqual(readOnnx(onnx.ModelProto.encode(typed).finish()).initializers.get('u'), u4);
  // Wrong byte count and out-of-range elements are refused.
  t0.int32Data = [0x21];
  assert.throws(() => readOnnx(onnx.ModelProto.encode(typed).finish()), /initializer u: int32_data has 1 bytes, shape \[5\] of uint4 needs 3/);
  model.initializers.set('u', { ...u4, data: Uint8Array.of(1, 2, 16, 0, 9) });
  assert.throws(() => encodeOnnx(model), (e: unknown) => e instanceof OnnxError && /tensor u: element 2 = 16 is outside the uint4 range 0..15/.test(e.message));
});

test('metadata survives writeOnnx/readOnnx; writeOnnx leaves no partial file when writing fails', async () => {
  const dir = tempDir('pdquant-qdq-');
  const path = join(dir, 'model.qdq.onnx');
  const { spec, expected } = await cnnCase([4, 3, 2], [8, 4, 3, 2, 8], 300, xFeed);
  const q = toQdq(cnn, { ...spec, int4Storage: true });
  writeOnnx(q, path);
  assert.deepEqual(readdirSync(dir), ['model.qdq.onnx']);
  const back = readOnnx(path);
  assert.deepEqual(back.metadata, { source: 'pdquant', 'pdquant.note': 'kept', 'pdquant.bits': '4,3,2' });
  assert.equal(back.opsetVersion, 21);
  assert.equal(maxRelDiff((await run(readFileSync(path), { x: xFeed })).y_dq.data, expected), 0);

  // A failure while encoding (an out-of-range UINT4 code) leaves the previous file untouched and no temporary file.
  const good = readFileSync(path);
  const broken = { ...q, initializers: new Map(q.initializers) };
  const codes = broken.initializers.get('w1_q') as OnnxTensor;
  broken.initializers.set('w1_q', { ...codes, data: Uint8Array.from(codes.data as Uint8Array, (v, i) => (i === 3 ? 200 : v)) });
  assert.throws(() => writeOnnx(broken, path), OnnxError);
  assert.deepEqual(readFileSync(path), good);
  assert.deepEqual(readdirSync(dir), ['model.qdq.onnx']);
  // A failure at the rename (the target is a non-empty folder) removes the temporary file.
  const target = join(dir, 'taken');
  mkdirSync(target);
  writeFileSync(join(target, 'keep'), 'x');
  assert.throws(() => writeOnnx(q, target));
  assert.deepEqual(readdirSync(dir).sort(), ['model.qdq.onnx', 'taken']);
  assert.deepEqual(readdirSync(target), ['keep']);
  // A missing folder is created, as for every output pdquant writes; no temp file is left beside the model.
  writeOnnx(q, join(dir, 'missing', 'm.onnx'));
  assert.deepEqual(readdirSync(join(dir, 'missing')), ['m.onnx']);
});

test('toQdq validates the spec and names what is wrong', async () => {
  const { spec } = await cnnCase([4, 3, 2], [8, 4, 3, 2, 8], 400, xFeed);
  const [w1, w2] = spec.weights;
  const a = spec.acts[1];
  const refuses = (s: Partial<QdqSpec>, re: RegExp) =>
    assert.throws(() => toQdq(cnn, { weights: [], acts: [], ...s }), (e: unknown) => e instanceof OnnxError && re.test(e.message), String(re));
  refuses({ weights: [{ ...w1, node: 'nope' }] }, /weight of node 'nope': the model has no node named 'nope'/);
  refuses({ weights: [{ ...w1, node: 'relu1' }] }, /weight of node 'relu1': node relu1 \(Relu\) is not a Conv, Gemm or MatMul/);
  refuses({ weights: [w1, w1] }, /node 'conv1': quantized twice/);
  refuses({ weights: [{ ...w1, bits: 1 }] }, /node 'conv1': bits must be an integer in 2..8, got 1/);
  refuses({ weights: [{ ...w1, bits: 9 }] }, /bits must be an integer in 2..8, got 9/);
  refuses({ weights: [{ ...w1, codes: w1.codes.slice(1) }] }, /node 'conv1': 161 codes for 'w1' \[6,3,3,3\] of 162 elements/);
  refuses({ weights: [{ ...w1, codes: w1.codes.map((v, i) => (i === 5 ? 16 : v)) }] }, /node 'conv1': code\[5\] = 16 is outside 0..15 \(4 bits\)/);
  refuses({ weights: [{ ...w2, zeroPoint: w2.zeroPoint.map(() => 8) }] }, /node 'conv2': zero point\[0\] = 8 is outside 0..7 \(3 bits\)/);
  refuses({ weights: [{ ...w1, scale: w1.scale.slice(1) }] }, /node 'conv1': 5 scales for 6 channels/);
  refuses({ weights: [{ ...w1, scale: w1.scale.map((v, i) => (i === 2 ? 0 : v)) }] }, /node 'conv1': scale\[2\] = 0 must be finite and > 0/);
  refuses({ weights: [{ ...w1, axis: 1 }] }, /node 'conv1': axis 1 given, but the output channels of node conv1 \(Conv\) lie on axis 0/);
  refuses({ acts: [{ ...a, value: 'nope' }] }, /activation 'nope': no node produces it and it is not a graph input/);
  refuses({ acts: [{ ...a, value: 'w2' }] }, /activation 'w2': is an initializer/);
  refuses({ acts: [{ ...a, bits: 10 }] }, /activation 'r1': bits must be an integer in 2..8, got 10/);
  refuses({ acts: [{ ...a, zeroPoint: 16 }] }, /activation 'r1': zero point = 16 is outside 0..15 \(4 bits\)/);
  refuses({ acts: [{ ...a, scale: -1 }] }, /activation 'r1': scale = -1 must be finite and > 0/);
  refuses({ acts: [a, a] }, /activation 'r1': quantized twice/);
  // New names must not collide with the model's.
  const clash = { ...cnn, nodes: cnn.nodes.map((n) => (n.name === 'gap' ? { ...n, outputs: ['r2_q'] } : n.name === 'flatten' ? { ...n, inputs: ['r2_q'] } : n)) };
  assert.throws(() => toQdq(clash, { weights: [], acts: [{ ...a, value: 'r2' }] }), /activation 'r2': the name 'r2_q' is already used/);
});

test('raising the opset for per-channel weights refuses ops that change meaning on the way', () => {
  const build = (squeezeAxes: boolean) => readOnnx(buildModel({
    opset: 11,
    inputs: [{ name: 'x', dims: [1, 2, 1, 1] }], outputs: [{ name: 'y', dims: [1, 2] }],
    initializers: [tensor('w', 'float', [2, 2, 1, 1], [1, 2, 3, 4], true), tensor('shape', 'int64', [2], [1, 2])],
    nodes: [
      { op: 'Conv', name: 'conv', inputs: ['x', 'w'], outputs: ['c'] },
      squeezeAxes
        ? { op: 'Squeeze', name: 'sq', inputs: ['c'], outputs: ['y'], attrs: { axes: attr.ints([2, 3]) } }
        : { op: 'Reshape', name: 'sq', inputs: ['c', 'shape'], outputs: ['y'] },
    ],
  }));
  const w: QdqWeight = { node: 'conv', bits: 4, axis: 0, scale: Float32Array.of(0.5, 0.25), zeroPoint: Uint8Array.of(8, 8), codes: Uint8Array.of(9, 10, 11, 12) };
  assert.throws(() => toQdq(build(true), { weights: [w], acts: [] }),
    /needs opset 13 \(per-channel DequantizeLinear\), but the model is opset 11 and node sq \(Squeeze\) changes meaning at opset 13: its 'axes' attribute became an input/);
  const ok = toQdq(build(false), { weights: [w], acts: [] });
  assert.equal(ok.opsetVersion, 13);
  assert.ok(ok.irVersion >= 7);
  // Activations alone need no opset change.
  assert.equal(toQdq(build(true), { weights: [], acts: [{ value: 'c', bits: 8, scale: 0.1, zeroPoint: 128 }] }).opsetVersion, 11);
});
