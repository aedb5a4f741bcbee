// pdquant sensitivity: each unit alone quantized against the float model, and the --bits pattern of each unit.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as E from '../src/engine/index.js';
import { execute } from '../src/graph/index.js';
import { loadModel } from '../src/graph/load.js';
import { QuantizedModel } from '../src/quant/qmodel.js';
import { placeQuantizers } from '../src/quant/placement.js';
import { tinyWorkspace } from './helpers/tiny-resnet.js';

const ws = await tinyWorkspace(4);

test('hooks limited to some units quantize those units only; none at all is the float model', () => {
  const m = loadModel(ws.model);
  const q = new QuantizedModel(m.folded, m.units, { wBits: 2, aBits: 2 });
  E.manualSeed(1);
  const x = E.keep(E.rand([8, 3, 8, 8]));
  try {
    q.initWeights('mse');
    q.initActs(x, 'mse');
    const run = (units?: Set<string>) => E.tidy(() => Float32Array.from(execute(m.folded, { feeds: new Map([['input', x]]), outputs: [m.folded.output.name], hooks: q.hooks({ weights: true, acts: true }, { units }) }).get(m.folded.output.name)!.data() as Float32Array));
    const fp = E.tidy(() => Float32Array.from(execute(m.folded, { feeds: new Map([['input', x]]), outputs: [m.folded.output.name] }).get(m.folded.output.name)!.data() as Float32Array));
    assert.deepEqual(run(new Set()), fp);
    assert.notDeepEqual(run(new Set(['layer1.0'])), fp);
    assert.notDeepEqual(run(new Set(['layer1.0'])), run());
  } finally {
    x.dispose();
    q.dispose();
  }
});

test('analyzeSensitivity: one row per unit in network order, each with the pattern that selects exactly its layers', async () => {
  const pdq = await import('../src/index.js');
  const low = await pdq.analyzeSensitivity({ model: ws.model, calib: ws.images, wBits: 2, aBits: 2, preset: 'cifar', eval: ws.images, numSamples: 16 });
  const m = loadModel(ws.model);
  assert.deepEqual(low.units.map((u) => u.unit), m.units.map((u) => u.name));
  assert.deepEqual(low.units.map((u) => u.pattern), ['/stem/conv/', '/layer1/layer1.0/', '/layer2/layer2.0/', '/fc/']);
  for (const u of low.units) {
    const p = placeQuantizers(m.folded, m.units, { wBits: 2, aBits: 2, bitRules: [{ match: u.pattern, wBits: 7, aBits: 7 }] });
    assert.deepEqual(p.weights.filter((w) => w.bits === 7).map((w) => w.node), u.layers, u.unit);
    // The rule reaches every activation quantizer the unit-alone pass quantized, its block output included.
    assert.deepEqual(p.acts.filter((a) => a.unit === u.unit).map((a) => `${a.value}:${a.bits}`), p.acts.filter((a) => a.unit === u.unit).map((a) => `${a.value}:7`), u.unit);
    assert.ok(u.kl >= 0 && u.agreement >= 0 && u.agreement <= 100 && u.top1 !== undefined);
  }
  // The classifier's unit has weights and no activation quantizer of its own: quantizing only its activations is the float model.
  const fc = low.units.at(-1)!;
  assert.deepEqual([fc.actsOnly.kl, fc.actsOnly.agreement, fc.weightsOnly.kl], [0, 100, fc.kl]);
  assert.ok(low.units.every((u) => u.weightsOnly.kl >= 0 && u.actsOnly.kl >= 0));
  assert.equal(low.images, 16);
  assert.equal(low.n, 16);
  assert.ok(low.fp_top1 !== undefined && low.all.top1 !== undefined);
  // More bits, less divergence: everything quantized, and each unit.
  const high = await pdq.analyzeSensitivity({ model: ws.model, calib: ws.images, wBits: 8, aBits: 8, preset: 'cifar', numSamples: 16 });
  assert.ok(high.all.kl < low.all.kl, `${high.all.kl} < ${low.all.kl}`);
  high.units.forEach((u, i) => assert.ok(u.kl <= low.units[i]!.kl, `${u.unit}: ${u.kl} <= ${low.units[i]!.kl}`));
  assert.equal(high.all.top1, undefined);
  await assert.rejects(pdq.analyzeSensitivity({ model: ws.model, calib: ws.images, wBits: 1, aBits: 2 }), /Expected integer 2\.\.8, or 32 for float, for wBits but received 1/);
});

test('analyzeSensitivity with float weights or activations runs no pass that would quantize nothing', async () => {
  const pdq = await import('../src/index.js');
  const o = { model: ws.model, calib: ws.images, preset: 'cifar', numSamples: 16 };
  const actOnly = await pdq.analyzeSensitivity({ ...o, wBits: 32, aBits: 3 });
  const weightOnly = await pdq.analyzeSensitivity({ ...o, wBits: 3, aBits: 32 });
  const unchanged = { kl: 0, agreement: 100 };
  for (const u of actOnly.units) {
    assert.deepEqual(u.weightsOnly, unchanged, u.unit);
    assert.deepEqual(u.actsOnly, { kl: u.kl, agreement: u.agreement }, u.unit);
  }
  // The classifier's unit quantizes nothing at all there; its pattern still selects its layer.
  assert.deepEqual([actOnly.units.at(-1)!.kl, actOnly.units.at(-1)!.agreement, actOnly.units.at(-1)!.pattern], [0, 100, '/fc/']);
  assert.ok(actOnly.units[0]!.kl > 0);
  for (const u of weightOnly.units) {
    assert.deepEqual(u.actsOnly, unchanged, u.unit);
    assert.deepEqual(u.weightsOnly, { kl: u.kl, agreement: u.agreement }, u.unit);
    assert.ok(u.kl > 0, u.unit);
  }
});

test('analyzeSensitivity with int8Kernels analyses the placement quantize --int8-kernels uses', async () => {
  const pdq = await import('../src/index.js');
  const o = { model: ws.model, calib: ws.images, wBits: 4, aBits: 8, preset: 'cifar', numSamples: 16 };
  const plain = await pdq.analyzeSensitivity(o);
  const kernels = await pdq.analyzeSensitivity({ ...o, int8Kernels: true });
  assert.equal(kernels.int8_kernels, true);
  assert.equal(plain.int8_kernels, undefined);
  // The stem unit owns the image's quantizer there, so its activations alone diverge differently.
  assert.notEqual(kernels.units[0]!.actsOnly.kl, plain.units[0]!.actsOnly.kl);
  await assert.rejects(pdq.analyzeSensitivity({ ...o, aBits: 4, int8Kernels: true }), /need 8-bit activations/);
});

test('pdquant sensitivity prints the units most sensitive first with their --bits patterns, and writes the analysis', () => {
  const bin = join(resolve(fileURLToPath(import.meta.url), '../../..'), 'bin', 'pdquant.js');
  const json = join(ws.dir, 'sensitivity.json');
  const r = spawnSync(process.execPath, [bin, 'sensitivity', ws.model, '--calib', ws.images, '--w', '3', '--a', '3', '--preset', 'cifar', '--json', json], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const saved = JSON.parse(readFileSync(json, 'utf8')) as { units: { unit: string; kl: number; pattern: string }[] };
  const rows = r.stdout.split('\n').filter((l) => /^ {2}\S+ +(layer|block) /.test(l));
  assert.deepEqual(rows.map((l) => l.trim().split(/\s+/)[0]), [...saved.units].sort((a, b) => b.kl - a.kl).map((u) => u.unit));
  assert.match(r.stdout, /^every unit quantized: KL /m);
  assert.match(r.stdout, new RegExp(`--bits '${[...saved.units].sort((a, b) => b.kl - a.kl)[0]!.pattern}=(3/8|8/3|8/8)'`));
  const bad = spawnSync(process.execPath, [bin, 'sensitivity', ws.model, '--calib', ws.images, '--w', '3', '--a', '3', '--bits', '/nothing/=8/8'], { encoding: 'utf8' });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /bit rule \/nothing\/=8\/8 matches no weight layer or activation quantizer/);
  assert.doesNotMatch(bad.stderr, /^\s+at /m);
});

test('a unit whose layers share no module path is selected by a regular expression of their names', async () => {
  const { unitPattern } = await import('../src/methods/sensitivity.js');
  const { namePattern } = await import('../src/graph/index.js');
  const graph = { nodes: ['conv.1', 'conv_2', 'conv_3', '/a/b/Conv', '/a/b/Conv_1', '/a/bc/Conv'].map((name) => ({ name, opType: 'Conv' })) } as unknown as Parameters<typeof unitPattern>[0];
  const p = unitPattern(graph, ['conv.1', 'conv_2']);
  assert.equal(p, 're:^(conv\\.1|conv_2)$');
  assert.deepEqual(['conv.1', 'conv_2', 'conv_3', 'convx1'].filter(namePattern('t', p)), ['conv.1', 'conv_2']);
  assert.equal(unitPattern(graph, ['/a/b/Conv', '/a/b/Conv_1']), '/a/b/');
  assert.equal(unitPattern(graph, ['/a/b/Conv']), 're:^(/a/b/Conv)$');
  // A block: the module path of all its nodes, or its layers and the node computing its output.
  assert.equal(unitPattern(graph, ['/a/b/Conv', '/a/b/Conv_1'], ['/a/b/Conv', '/a/b/Relu', '/a/b/Conv_1', '/a/b/Add']), '/a/b/');
  assert.equal(unitPattern(graph, ['conv.1', 'conv_2'], ['conv.1', 'relu', 'conv_2', 'add'], 'add'), 're:^(conv\\.1|conv_2|add)$');
});
