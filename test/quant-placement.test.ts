// Where quantizers go (PDQUANT.md §3) on structures beyond the reference's models.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadModel } from '../src/graph/load.js';
import { FLOAT_ACTIVATIONS, FLOAT_WEIGHTS, placeQuantizers } from '../src/quant/placement.js';
import { attr, buildModel, randomFloats, tensor, type NodeSpec } from './helpers/onnx-builder.js';
import { tinyResNet, tinyWorkspace } from './helpers/tiny-resnet.js';
import { tinyDenseNet } from './helpers/tiny-densenet.js';
import { tinyEfficientNet } from './helpers/tiny-efficientnet.js';
import { tinyConvNeXt } from './helpers/tiny-convnext.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { proto } from '../src/onnx/proto.js';

/** A pre-activation ResNet (ResNet-v2): stem conv, one block BN-ReLU-conv-BN-ReLU-conv + skip, then BN-ReLU, GAP, Gemm. */
function preActResNet(): Uint8Array {
  const nodes: NodeSpec[] = [];
  const inits: proto.ITensorProto[] = [];
  let s = 5;
  const rnd = (n: number, scale: number, offset = 0) => Array.from(randomFloats(n, s++), (v) => v * scale + offset);
  const bn = (path: string, x: string) => {
    for (const [t, scale, offset] of [['g', 0.2, 1], ['b', 0.1, 0], ['m', 0.2, 0], ['v', 0.3, 1]] as const) inits.push(tensor(`${path}.${t}`, 'float', [8], rnd(8, scale, offset)));
    nodes.push({ op: 'BatchNormalization', name: `${path}/BatchNormalization`, inputs: [x, `${path}.g`, `${path}.b`, `${path}.m`, `${path}.v`], outputs: [`${path}_out`] });
    return `${path}_out`;
  };
  const conv = (path: string, x: string, cin: number) => {
    inits.push(tensor(`${path}.w`, 'float', [8, cin, 3, 3], rnd(8 * cin * 9, 0.3)));
    nodes.push({ op: 'Conv', name: `${path}/Conv`, inputs: [x, `${path}.w`], outputs: [`${path}_out`], attrs: { kernel_shape: attr.ints([3, 3]), pads: attr.ints([1, 1, 1, 1]) } });
    return `${path}_out`;
  };
  const relu = (path: string, x: string) => {
    nodes.push({ op: 'Relu', name: `${path}/Relu`, inputs: [x], outputs: [`${path}_out`] });
    return `${path}_out`;
  };
  const stem = conv('/conv0', 'input', 3);
  const branch = conv('/layer1/unit1/conv2', relu('/layer1/unit1/relu2', bn('/layer1/unit1/bn2', conv('/layer1/unit1/conv1', relu('/layer1/unit1/relu1', bn('/layer1/unit1/bn1', stem)), 8))), 8);
  nodes.push({ op: 'Add', name: '/layer1/unit1/Add', inputs: [branch, stem], outputs: ['block_out'] });
  nodes.push({ op: 'GlobalAveragePool', name: '/pool/GlobalAveragePool', inputs: [relu('/relu_final', bn('/bn_final', 'block_out'))], outputs: ['pool'] });
  nodes.push({ op: 'Flatten', name: '/Flatten', inputs: ['pool'], outputs: ['flat'] });
  inits.push(tensor('fc.w', 'float', [4, 8], rnd(32, 0.5)), tensor('fc.b', 'float', [4], rnd(4, 0.1)));
  nodes.push({ op: 'Gemm', name: '/fc/Gemm', inputs: ['flat', 'fc.w', 'fc.b'], outputs: ['logits'], attrs: { transB: attr.int(1) } });
  return buildModel({ inputs: [{ name: 'input', dims: ['N', 3, 8, 8] }], outputs: [{ name: 'logits', dims: ['N', 4] }], nodes, initializers: inits });
}

const actBits = (bytes: Uint8Array, eightBitHeadStem = true) => {
  const m = loadModel(bytes);
  return placeQuantizers(m.folded, m.units, { wBits: 4, aBits: 2, eightBitHeadStem }).acts.map((a) => `${a.value}:${a.bits}`);
};

test('the classifier\'s input is quantized at 8 bits, with the quantizers behind a pre-activation network\'s final BN and ReLU', () => {
  assert.deepEqual(actBits(preActResNet()), ['/conv0_out:2', '/layer1/unit1/relu1_out:2', '/layer1/unit1/relu2_out:2', 'block_out:8', 'flat:8']);
  assert.deepEqual(actBits(preActResNet(), false), ['/conv0_out:2', '/layer1/unit1/relu1_out:2', '/layer1/unit1/relu2_out:2', 'block_out:2', 'flat:2']);
  // Behind pooling and flatten only (the reference's models), as before.
  assert.equal(actBits(tinyResNet()).at(-1), '/layer2/layer2.0/relu2/Relu_output_0:8');
});

/** A MobileNetV3-style block with squeeze-and-excitation: expand, SE (GAP, fc1, ReLU, fc2, HardSigmoid, Mul), project, skip. */
function seBlockNet(): Uint8Array {
  const nodes: NodeSpec[] = [];
  const inits: proto.ITensorProto[] = [];
  let s = 9;
  const rnd = (n: number, scale: number) => Array.from(randomFloats(n, s++), (v) => v * scale);
  const conv = (path: string, x: string, cin: number, cout: number, k: number) => {
    inits.push(tensor(`${path}.w`, 'float', [cout, cin, k, k], rnd(cout * cin * k * k, 0.4)), tensor(`${path}.b`, 'float', [cout], rnd(cout, 0.1)));
    nodes.push({ op: 'Conv', name: `${path}/Conv`, inputs: [x, `${path}.w`, `${path}.b`], outputs: [`${path}_out`], attrs: { kernel_shape: attr.ints([k, k]), pads: attr.ints(Array(4).fill((k - 1) / 2)) } });
    return `${path}_out`;
  };
  const act = (op: string, path: string, x: string) => {
    nodes.push({ op, name: `${path}/${op}`, inputs: [x], outputs: [`${path}_out`] });
    return `${path}_out`;
  };
  const b = '/features/features.1/block';
  const stem = act('Relu', '/features/features.0/relu', conv('/features/features.0/conv', 'input', 3, 8, 3));
  const expanded = act('Relu', `${b}/expand/relu`, conv(`${b}/expand/conv`, stem, 8, 16, 1));
  nodes.push({ op: 'GlobalAveragePool', name: `${b}/se/avgpool/GlobalAveragePool`, inputs: [expanded], outputs: ['se_pool'] });
  const scale = act('HardSigmoid', `${b}/se/scale`, conv(`${b}/se/fc2`, act('Relu', `${b}/se/relu`, conv(`${b}/se/fc1`, 'se_pool', 16, 4, 1)), 4, 16, 1));
  nodes.push({ op: 'Mul', name: `${b}/se/Mul`, inputs: [scale, expanded], outputs: ['se_out'] });
  nodes.push({ op: 'Add', name: '/features/features.1/Add', inputs: [conv(`${b}/project/conv`, 'se_out', 16, 8, 1), stem], outputs: ['block_out'] });
  nodes.push({ op: 'GlobalAveragePool', name: '/avgpool/GlobalAveragePool', inputs: ['block_out'], outputs: ['pool'] });
  nodes.push({ op: 'Flatten', name: '/Flatten', inputs: ['pool'], outputs: ['flat'] });
  inits.push(tensor('fc.w', 'float', [4, 8], rnd(32, 0.5)), tensor('fc.b', 'float', [4], rnd(4, 0.1)));
  nodes.push({ op: 'Gemm', name: '/classifier/Gemm', inputs: ['flat', 'fc.w', 'fc.b'], outputs: ['logits'], attrs: { transB: attr.int(1) } });
  return buildModel({ inputs: [{ name: 'input', dims: ['N', 3, 8, 8] }], outputs: [{ name: 'logits', dims: ['N', 4] }], nodes, initializers: inits });
}

test('a layer that reads squeeze-and-excitation\'s product gets a quantizer on it, in its unit', () => {
  const m = loadModel(seBlockNet());
  const acts = placeQuantizers(m.folded, m.units, { wBits: 4, aBits: 4 }).acts;
  assert.deepEqual(acts.filter((a) => a.role === 'layer input').map((a) => `${a.value}:${a.bits}:${a.unit}`), ['se_out:4:features.1']);
  // Inputs that already are a quantizer's output (fc1 reads the average of one), or the image, get none.
  assert.deepEqual(acts.map((a) => a.value), [
    '/features/features.0/relu_out', '/features/features.1/block/expand/relu_out', '/features/features.1/block/se/relu_out',
    '/features/features.1/block/se/scale_out', 'se_out', 'block_out',
  ]);
});

test('that quantizer is calibrated with its unit: brecq on the SE block exports a model onnxruntime agrees with', async () => {
  const { quantizeModel } = await import('../src/index.js');
  const ws = await tinyWorkspace(2);
  const model = join(ws.dir, 'se.onnx');
  writeFileSync(model, seBlockNet());
  const { record } = await quantizeModel({
    model, calib: ws.images, wBits: 4, aBits: 4, method: 'brecq', preset: 'cifar', eval: ws.images, output: join(ws.dir, 'se.q.onnx'),
    runDir: join(ws.dir, 'run'), recon: { iters: 5 },
  });
  assert.equal(record.export!.ort_top1, record.top1);
  assert.ok(record.export!.max_logit_diff! <= 1e-4 * Math.max(1, record.export!.max_logit!));
});

test('a layer after a BN and ReLU that no layer precedes reads quantized values: pre-activation ResNet and DenseNet', () => {
  const sites = (bytes: Uint8Array) => {
    const m = loadModel(bytes);
    return placeQuantizers(m.folded, m.units, { wBits: 4, aBits: 2 }).acts.filter((a) => a.role === 'layer input').map((a) => `${a.value}:${a.bits}:${a.unit}`);
  };
  // Inside the block (its BN and ReLU are the block's first nodes), and the classifier's input after the final BN-ReLU-GAP.
  assert.deepEqual(sites(preActResNet()), ['/layer1/unit1/relu1_out:2:unit1', 'flat:8:fc']);
  // Between units: the unit that reads the value quantizes it.
  const p = '/features/denseblock1/denselayer';
  assert.deepEqual(sites(tinyDenseNet()), [`${p}1/relu1_out:2:conv1`, `${p}2/relu1_out:2:conv1_1`, '/Flatten_out:8:classifier']);
});

test('SiLU and HardSwish written as x * Sigmoid(x) / x * HardSigmoid(x) are a layer\'s activation: one quantizer after them', () => {
  for (const hardSwish of [false, true]) {
    const m = loadModel(tinyEfficientNet({ hardSwish }));
    const gate = hardSwish ? 'HardSigmoid' : 'Sigmoid';
    assert.deepEqual(m.units.map((u) => `${u.name}:${u.nodes.length}`), ['features.0.0:3', 'features.1.0:15', 'features.2.0:3', 'classifier.1:1']);
    assert.deepEqual(m.units[0]!.nodes.map((n) => n.opType), ['Conv', gate, 'Mul']);
    const b = '/features/features.1/features.1.0/block';
    assert.deepEqual(placeQuantizers(m.folded, m.units, { wBits: 4, aBits: 4 }).acts.map((a) => `${a.value}:${a.bits}:${a.role}`), [
      '/features/features.0/features.0.2/Mul_out:4:layer output',
      `${b}/block.0/block.0.2/Mul_out:4:layer output`,
      `${b}/block.1/block.1.2/Mul_out:4:layer output`,
      `${b}/block.2/activation/Mul_out:4:layer output`,
      'se_scale:4:layer output',
      'se_out:4:layer input',
      'block_out:4:block output',
      '/features/features.2/features.2.2/Mul_out:8:layer output',
    ]);
  }
});

test('ConvNeXt: blocks from module paths, GELU as one activation, and a branch through permute and layer scale quantized after the addition', () => {
  const m = loadModel(tinyConvNeXt());
  assert.deepEqual(m.units.map((u) => `${u.name}:${u.kind}`), ['features.0.0:layer', 'features.1.0:block', 'features.2.1:layer', 'features.3.0:block', 'classifier.2:layer']);
  const b = '/features/features.1/features.1.0/block';
  assert.deepEqual(m.units[1]!.nodes.filter((n) => n.opType === 'Gemm').map((n) => n.name), [`${b}/block.3/MatMul`, `${b}/block.5/MatMul`]);
  const acts = placeQuantizers(m.folded, m.units, { wBits: 4, aBits: 4 }).acts.map((a) => `${a.value}:${a.bits}:${a.role}`);
  assert.deepEqual(acts.slice(0, 6), [
    '/features/features.0/features.0.0_out:4:layer output',
    '/features/features.0/features.0.1/Transpose_1_out:4:layer input',
    `${b}/block.0_out:4:layer output`,
    `${b}/block.2_out:4:layer input`,
    `${b}/block.4/Mul_1_out:4:layer output`,
    '/features/features.1/features.1.0/Add_out:4:block output',
  ]);
  assert.equal(acts.length, 13);
  assert.deepEqual(acts.slice(-2), ['/features/features.3/features.3.0/Add_out:8:block output', 'flat:8:layer input']);
});

for (const [name, bytes, method] of [['a pre-activation ResNet', preActResNet, 'qdrop'], ['a DenseNet', tinyDenseNet, 'pdquant'], ['a DenseNet', tinyDenseNet, 'adaround'], ['an EfficientNet', tinyEfficientNet, 'pdquant'], ['a ConvNeXt', tinyConvNeXt, 'pdquant']] as const) {
  test(`${method} on ${name}: every layer but the first reads quantized values in the export, and onnxruntime agrees`, async () => {
    const { quantizeModel } = await import('../src/index.js');
    const { readOnnx } = await import('../src/onnx/index.js');
    const ws = await tinyWorkspace(2);
    const model = join(ws.dir, 'm.onnx');
    writeFileSync(model, bytes());
    const output = join(ws.dir, 'm.q.onnx');
    const { record } = await quantizeModel({
      model, calib: ws.images, wBits: 4, aBits: 2, method, preset: 'cifar', eval: ws.images, output, runDir: join(ws.dir, 'run'),
      recon: { iters: 20, batch: 8, dcSteps: 5 },
    });
    assert.equal(record.export!.ort_top1, record.top1);
    assert.ok(record.export!.max_logit_diff! <= 1e-4 * Math.max(1, record.export!.max_logit!));
    const q = readOnnx(output);
    const producer = new Map(q.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
    // What a layer reads, past pooling and flatten (which §3's models feed as they are).
    const source = (v: string): string => {
      const p = producer.get(v)!;
      return ['GlobalAveragePool', 'Flatten'].includes(p.opType) ? source(p.inputs[0]!) : p.opType;
    };
    const layers = q.nodes.filter((n) => n.opType === 'Conv' || n.opType === 'Gemm' || n.opType === 'MatMul');
    assert.deepEqual(layers.slice(1).map((n) => `${n.name}:${source(n.inputs[0]!)}`), layers.slice(1).map((n) => `${n.name}:DequantizeLinear`));
  });
}

test('bit rules set other bit-widths for the layers they match and the quantizer after each; a later rule wins', () => {
  const m = loadModel(tinyResNet());
  const place = (bitRules: { match: string; wBits: number; aBits: number }[]) => {
    const p = placeQuantizers(m.folded, m.units, { wBits: 4, aBits: 4, bitRules });
    return [...p.weights.map((w) => `${w.node}:W${w.bits}`), ...p.acts.map((a) => `${a.value}:A${a.bits}`)];
  };
  const base = place([]);
  const changed = (rules: Parameters<typeof place>[0]) => place(rules).filter((x, i) => x !== base[i]);
  // A layer: its weights and the quantizer after its ReLU; a block's Add (through its trailing ReLU) reaches the block output.
  assert.deepEqual(changed([{ match: '/layer1/layer1.0/conv1/', wBits: 8, aBits: 6 }]), ['/layer1/layer1.0/conv1/conv/Conv:W8', '/layer1/layer1.0/relu1/Relu_output_0:A6']);
  assert.deepEqual(changed([{ match: '/layer1/', wBits: 6, aBits: 6 }]), [
    '/layer1/layer1.0/conv1/conv/Conv:W6', '/layer1/layer1.0/conv2/conv/Conv:W6', '/layer1/layer1.0/relu1/Relu_output_0:A6', '/layer1/layer1.0/relu2/Relu_output_0:A6',
  ]);
  // After the 8-bit head and stem, and in order.
  assert.deepEqual(changed([{ match: 're:^/(stem|fc)/', wBits: 5, aBits: 5 }, { match: '/fc/', wBits: 3, aBits: 3 }]), ['/stem/conv/Conv:W5', '/fc/Gemm:W3', '/relu/Relu_output_0:A5']);
  assert.throws(() => place([{ match: '/layr1/', wBits: 8, aBits: 8 }]), /^Error: bit rule \/layr1\/=8\/8 matches no weight layer or activation quantizer \(node names look like '\/stem\/conv\/Conv', '\/layer1\/layer1\.0\/conv1\/conv\/Conv'; pdquant inspect --quant lists them\)$/);
  assert.throws(() => place([{ match: 're:[a', wBits: 8, aBits: 8 }]), /^Error: bit rule re:\[a=8\/8: 're:\[a' is not a regular expression \(/);
});

test('activations at 32 bits stay float: no quantizer at all (weight-only), or none where a bit rule says 32', () => {
  const m = loadModel(tinyResNet());
  const place = (aBits: number, bitRules: { match: string; wBits: number; aBits: number }[] = [], eightBitHeadStem = true) =>
    placeQuantizers(m.folded, m.units, { wBits: 4, aBits, bitRules, eightBitHeadStem });
  const all = place(4);
  const weightOnly = place(FLOAT_ACTIVATIONS);
  assert.ok(all.acts.length >= 4);
  // Not even the 8-bit classifier input: the head and stem keep 8-bit weights, and their activations stay float too.
  assert.deepEqual(weightOnly.acts, []);
  assert.deepEqual(place(FLOAT_ACTIVATIONS, [], false).acts, []);
  assert.deepEqual(weightOnly.weights, all.weights);
  assert.deepEqual([weightOnly.weights[0]!.bits, weightOnly.weights.at(-1)!.bits, weightOnly.weights[1]!.bits], [8, 8, 4]);
  // A rule takes away just the quantizers it reaches; the others keep their bits.
  const kept = place(4, [{ match: '/layer1/', wBits: 6, aBits: FLOAT_ACTIVATIONS }]);
  const gone = ['/layer1/layer1.0/relu1/Relu_output_0', '/layer1/layer1.0/relu2/Relu_output_0'];
  assert.deepEqual(kept.acts, all.acts.filter((a) => !gone.includes(a.value)));
  assert.equal(kept.acts.length, all.acts.length - 2);
  // And a later rule puts one back.
  const back = place(4, [{ match: '/layer1/', wBits: 6, aBits: FLOAT_ACTIVATIONS }, { match: '/layer1/layer1.0/conv1/', wBits: 6, aBits: 5 }]);
  assert.deepEqual(back.acts.filter((a) => gone.includes(a.value)).map((a) => `${a.value}:${a.bits}`), ['/layer1/layer1.0/relu1/Relu_output_0:5']);
});

test('weights at 32 bits stay float: no weight quantizer at all (activation-only), or none where a bit rule says 32', () => {
  const m = loadModel(tinyResNet());
  const place = (wBits: number, bitRules: { match: string; wBits: number; aBits: number }[] = [], eightBitHeadStem = true) =>
    placeQuantizers(m.folded, m.units, { wBits, aBits: 4, bitRules, eightBitHeadStem });
  const all = place(4);
  const actOnly = place(FLOAT_WEIGHTS);
  // Not even the 8-bit first and last layers; the activations are those of any weight width, the classifier input at 8 bits.
  assert.deepEqual(actOnly.weights, []);
  assert.deepEqual(place(FLOAT_WEIGHTS, [], false).weights, []);
  assert.deepEqual(actOnly.acts, all.acts);
  assert.ok(actOnly.acts.some((a) => a.bits === 8) && actOnly.acts.some((a) => a.bits === 4));
  // A rule keeps just the weights it reaches float, and may leave their activations quantized.
  const kept = place(4, [{ match: '/stem/', wBits: FLOAT_WEIGHTS, aBits: 4 }]);
  assert.deepEqual(kept.weights, all.weights.filter((w) => w.node !== '/stem/conv/Conv'));
  assert.deepEqual(kept.acts.map((a) => `${a.value}:${a.bits}`), all.acts.map((a) => `${a.value}:${a.bits}`));
  // A later rule quantizes one again; a rule with 32/32 takes both away.
  const back = place(FLOAT_WEIGHTS, [{ match: '/layer1/layer1.0/conv1/', wBits: 3, aBits: 4 }]);
  assert.deepEqual(back.weights.map((w) => `${w.node}:${w.bits}`), ['/layer1/layer1.0/conv1/conv/Conv:3']);
  const neither = place(4, [{ match: '/layer1/layer1.0/conv1/', wBits: FLOAT_WEIGHTS, aBits: FLOAT_ACTIVATIONS }]);
  assert.deepEqual([all.weights.length - neither.weights.length, all.acts.length - neither.acts.length], [1, 1]);
});

test('bit rules travel with the run: record, export, saved parameters; a resume with other rules is refused', async () => {
  const pdq = await import('../src/index.js');
  const { readOnnx } = await import('../src/onnx/index.js');
  const { summarizeQdq } = await import('../src/onnx/qdq-summary.js');
  const ws = await tinyWorkspace(2);
  const bitRules = [{ match: '/layer2/layer2.0/conv2/', wBits: 2, aBits: 8 }];
  const output = join(ws.dir, 'mixed.onnx');
  const { record, qparams } = await pdq.quantizeModel({ model: ws.model, calib: ws.images, wBits: 6, aBits: 6, method: 'mse', preset: 'cifar', eval: ws.images, output, bitRules });
  assert.deepEqual([record.bit_rules, qparams.bitRules], [bitRules, bitRules]);
  assert.match(await pdq.renderReport(record), /<th>bit rules<\/th><td>\/layer2\/layer2\.0\/conv2\/ → W2A8<\/td>/);
  assert.equal(record.export!.ort_top1, record.top1);
  const file = readOnnx(output);
  assert.equal(file.metadata['pdquant.bit_rules'], '/layer2/layer2.0/conv2/=2/8');
  const codes = summarizeQdq(file)!.weights.map((w) => `${w.node.replace('_bnfolded', '').replace('_DequantizeLinear', '')}:${w.maxCode}`);
  assert.deepEqual(codes.filter((c) => !c.endsWith(':63')), ['stem.weight:255', 'layer2.layer2.0.conv2.weight:3', 'fc.weight:255']);
  assert.equal((await pdq.evaluateModel(ws.model, ws.images, { preset: 'cifar', qparams })).top1, record.top1);
  const runDir = join(ws.dir, 'run');
  const base = { model: ws.model, calib: ws.images, wBits: 4, aBits: 4, method: 'brecq', preset: 'cifar', runDir, recon: { iters: 2 }, numSamples: 8 };
  await pdq.quantizeModel({ ...base, bitRules });
  await assert.rejects(pdq.quantizeModel({ ...base, resume: true }), /belongs to another run \(it differs in: bits\)/);
  await assert.rejects(pdq.quantizeModel({ ...base, bitRules: [{ match: '/fc/', wBits: 9, aBits: 8 }] }), /^RangeError: Expected integer 2\.\.8, or 32 for float, for the weights of bit rule \/fc\/ but received 9$/);
});
