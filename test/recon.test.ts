// Reconstruction on a small synthetic ResNet: every method end to end, resume, DC, the PD gradient path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as E from '../src/engine/index.js';
import { quantize, type QuantizeOptions } from '../src/methods/pipeline.js';
import { methodNames } from '../src/methods/registry.js';
import { unverifiedPath } from '../src/methods/export.js';
import { loadModel } from '../src/graph/load.js';
import { distributionCorrection, unitBatchNorms } from '../src/recon/dc.js';
import { BackgroundDc } from '../src/recon/dc-background.js';
import { capture } from '../src/recon/caches.js';
import { DEFAULTS } from '../src/recon/config.js';
import { tinyWorkspace } from './helpers/tiny-resnet.js';
import { tinyDenseNet } from './helpers/tiny-densenet.js';
import { tailFrom } from '../src/graph/index.js';
import { QuantizedModel } from '../src/quant/qmodel.js';
import { UniformQuantizer } from '../src/quant/uniform.js';
import { MIN_STEP } from '../src/quant/search.js';
import { initUnitActs, reconstructUnit, unitActs, unitInputQuantizer } from '../src/recon/unit.js';

const ws = await tinyWorkspace();

const base = (method: string, extra: Partial<QuantizeOptions> = {}): QuantizeOptions => ({
  model: ws.model, calib: ws.images, method, wBits: 4, aBits: 4, numSamples: 64, seed: 3,
  transform: { mean: [0.5], std: [0.25] }, eightBitHeadStem: true, evalBatch: 32,
  recon: { iters: 60, batch: 8, dcSteps: 20, actInitRows: 32, cacheBatch: 32 }, ...extra,
});

test('the units of the tiny model, and a user-given grouping (a pattern matching no node is an error)', () => {
  const m = loadModel(ws.model);
  assert.deepEqual(m.units.map((u) => `${u.name}:${u.kind}`), ['conv:layer', 'layer1.0:block', 'layer2.0:block', 'fc:layer']);
  const o = loadModel(ws.model, { units: [{ name: 'body', match: ['/layer1/', 're:^/layer2/'] }] });
  assert.deepEqual(o.units.map((u) => `${u.name}:${u.kind}`), ['conv:layer', 'body:block', 'fc:layer']);
  assert.throws(() => loadModel(ws.model, { units: [{ name: 'split', match: ['/layer2/layer2.0/conv2', '/layer2/layer2.0/Add'] }] }), /unit .* must read one value and hand on one value/);
  assert.throws(() => loadModel(ws.model, { units: [{ name: 'typo', match: ['/layer1/', '/layr2/'] }] }), /^Error: unit typo: '\/layr2\/' matches no node of the model \(its node names look like '\/stem\/conv\/Conv', '\/relu\/Relu'; pdquant inspect lists them\)$/);
  assert.throws(() => loadModel(ws.model, { units: [{ name: 'bad', match: ['re:[layer'] }] }), /^Error: unit bad: 're:\[layer' is not a regular expression \(/);
});

for (const name of methodNames()) {
  test(`${name} runs end to end${['minmax', 'mse', 'cosine'].includes(name) ? '' : ' and lowers its own loss'}, and its QDQ export computes the same in onnxruntime`, async () => {
    const output = join(ws.dir, `${name}.onnx`);
    const { record, qmodel } = await quantize(base(name, { eval: ws.images, output }), 'test');
    assert.ok(record.top1! >= 0 && record.top1! <= 100);
    // Checked beside the output path, then moved there.
    assert.ok(existsSync(output) && !existsSync(unverifiedPath(output)));
    // The pipeline throws when onnxruntime's top-1 differs by more than 0.05 points. From onnxruntime's own quantized
    // values the logits agree to float precision; end to end, a value that float sums in another order move across a
    // rounding boundary (one step, allowed to 0.1 % of them) carries on to the logits.
    assert.equal(record.export?.ort_top1, record.top1);
    const l = record.export!.layerwise!;
    assert.ok(l.max_logit_diff <= 1e-4 * Math.max(1, record.export!.max_logit!), `max |Δlogit| from onnxruntime's quantized values ${l.max_logit_diff}`);
    assert.ok(l.failed_at === null && l.rounding_flips <= 1e-3 * l.values, `${l.rounding_flips} of ${l.values} values one step apart`);
    assert.ok(record.export!.max_logit_diff! <= 1e-2 * Math.max(1, record.export!.max_logit!), `max |Δlogit| ${record.export!.max_logit_diff}`);
    for (const w of qmodel.weights.values()) assert.ok(w.q.initialized);
    for (const a of qmodel.acts.values()) assert.ok(a.q.initialized, `activation ${a.site.value} initialised`);
    if (record.recon) {
      for (const u of record.recon.units) {
        const first = u.curve[0]!, last = u.curve[u.curve.length - 1]!;
        const total = (p: typeof first) => p.rec + p.pd;
        assert.ok(total(last) <= total(first) * 1.05, `${name} ${u.name}: loss ${total(first)} → ${total(last)}`);
      }
      // Hardened: every layer's weight is on its integer grid.
      for (const w of qmodel.weights.values()) assert.ok(w.hard, `${w.site.node} hardened`);
    }
    qmodel.dispose();
  });
}

test('the PD loss runs where later layers also read values from before the unit (DenseNet concatenations)', async () => {
  const model = join(ws.dir, 'dense.onnx');
  writeFileSync(model, tinyDenseNet());
  const loaded = loadModel(model);
  const unit = loaded.units.find((u) => u.name === 'conv1')!;
  const tail = tailFrom(loaded.folded, unit.output, loaded.folded.output.name);
  assert.deepEqual(tail.sideInputs, ['/features/relu0_out']);
  assert.ok(!tail.nodes.some((n) => n.name === '/features/conv0/Conv'));
  const { record, qmodel } = await quantize(base('pd-only', { model, eval: ws.images, output: join(ws.dir, 'dense.q.onnx') }), 'test');
  assert.equal(record.export?.ort_top1, record.top1);
  for (const u of record.recon!.units) assert.ok(u.curve.at(-1)!.pd <= u.curve[0]!.pd * 1.05, `${u.name}: pd ${u.curve[0]!.pd} → ${u.curve.at(-1)!.pd}`);
  qmodel.dispose();
});

test('a unit calibrates the quantizer on its own input: taken off its cached input, set on it, its step learned with the unit', () => {
  const loaded = loadModel(tinyDenseNet());
  const g = loaded.folded;
  const qmodel = new QuantizedModel(g, loaded.units, { wBits: 4, aBits: 2 });
  E.manualSeed(2);
  const images = E.keep(E.rand([32, 3, 8, 8]).sub(0.5).mul(4));
  try {
    qmodel.initWeights('mse');
    qmodel.initActs(images, 'mse');
    const unit = loaded.units.find((u) => u.name === 'conv1')!;
    const own = unitInputQuantizer(qmodel, unit)!;
    assert.equal(own?.site.value, '/features/denseblock1/denselayer1/relu1_out');
    assert.equal(unitActs(qmodel, unit)[0], unit.input);
    own.q.dispose();
    own.q = new UniformQuantizer({ bits: 2 });
    const all = qmodel.hooks({ weights: true, acts: true });
    assert.throws(() => capture(g, images, g.input.name, unit.input, 16, all), /activation quantizer at .*relu1_out is not initialised/);
    const xq = capture(g, images, g.input.name, unit.input, 16, qmodel.hooks({ weights: true, acts: true }, { skip: new Set([unit.input]) }));
    const xfp = capture(loaded.fp, images, g.input.name, unit.input, 16);
    const preset = { unit: 'block', learnActSteps: true, rec: true, pd: false, drop: false, dc: false } as const;
    const cfg = { ...DEFAULTS, iters: 30, batch: 8, actInitRows: 32, actLr: 1e-2 };
    initUnitActs({ qmodel, graph: g, preset, cfg }, unit, xq);
    assert.ok(own.q.initialized);
    const start = own.q.delta.item();
    const yfp = capture(loaded.fp, xfp, unit.input, unit.output, 16);
    reconstructUnit({ qmodel, graph: g, preset, cfg }, unit, { xq, xfp, yfp, logitsFp: null, tailInputs: new Map() });
    assert.notEqual(own.q.delta.item(), start, 'step learned');
    // Later units read it quantized with that step, as the export computes it.
    const after = capture(g, images, g.input.name, unit.input, 16, all);
    assert.equal(E.tidy(() => after.sub(own.q.forward(xq)).abs().amax().item()), 0);
    E.dispose([xq, xfp, yfp, after]);
  } finally {
    images.dispose();
    qmodel.dispose();
  }
});

test('an export waits for its check beside the output path', () => {
  assert.equal(unverifiedPath('out/model.q.onnx'), 'out/model.q.unverified.onnx');
  assert.equal(unverifiedPath('model.bin'), 'model.bin.unverified');
});

test('a learned activation step that Adam would drive below zero stays at the floor, and the run exports', async () => {
  // Adam moves each step by about |lr| per iteration. Here the loss pulls every step up (to 12-21 with lr 10), so a
  // learning rate of -10 pushes them all below zero in the first iteration.
  const o = base('brecq', { output: join(ws.dir, 'steep.onnx') });
  const { record, qmodel } = await quantize({ ...o, recon: { ...o.recon, iters: 5, actLr: -10 } }, 'test');
  const steps = [...qmodel.acts.values()].flatMap((a) => a.q.delta.toArray());
  assert.ok(steps.some((d) => d === Math.fround(MIN_STEP)), `some step at the floor: ${steps.join(', ')}`);
  assert.ok(steps.every((d) => d >= Math.fround(MIN_STEP)), `every step ≥ the floor: ${steps.join(', ')}`);
  assert.ok(record.export!.agreement! >= 0.95);
  qmodel.dispose();
});

test('units with nothing to learn (float weights, no learned activation step) are left out; the others learn their steps', async () => {
  const skippedBy = async (method: string, extra: Partial<QuantizeOptions>) => {
    const skipped: string[] = [];
    const r = await quantize(base(method, extra), 'test', { unitsSkipped: (units) => skipped.push(...units.map((u) => u.name)) });
    return { ...r, skipped };
  };
  const mse = await quantize(base('mse', { wBits: 32 }), 'test');
  const initial = mse.qmodel.state().acts;
  mse.qmodel.dispose();
  // Activation-only BRECQ: the classifier's unit has no quantizer (its input's belongs to the unit before), so it goes.
  const brecq = await skippedBy('brecq', { wBits: 32 });
  assert.equal(brecq.qmodel.weights.size, 0);
  assert.deepEqual([brecq.skipped, brecq.record.recon!.skipped], [['fc'], ['fc']]);
  const done = brecq.record.recon!.units.map((u) => u.name);
  assert.ok(done.length >= 3 && !done.includes('fc'), done.join(', '));
  assert.notDeepEqual(brecq.qmodel.state().acts, initial, 'the steps are learned');
  brecq.qmodel.dispose();
  // AdaRound learns roundings only: with float weights no unit has anything to learn.
  const ada = await skippedBy('adaround', { wBits: 32 });
  assert.deepEqual(ada.record.recon!.units, []);
  assert.deepEqual(ada.record.recon!.skipped, ada.skipped);
  assert.ok(ada.skipped.length >= 5);
  ada.qmodel.dispose();
  // With a bit rule that keeps one layer float, only units with nothing at all to learn go.
  const ruled = await skippedBy('adaround', { bitRules: [{ match: '/fc/', wBits: 32, aBits: 4 }] });
  assert.deepEqual(ruled.skipped, ['fc']);
  ruled.qmodel.dispose();
});

test('QDrop with both drop probabilities at 1 is BRECQ; each probability alone changes the result', async () => {
  const run = async (method: string, recon: Partial<QuantizeOptions['recon']> = {}) => {
    const o = base(method);
    const { qmodel } = await quantize({ ...o, recon: { ...o.recon, ...recon } }, 'test');
    const state = qmodel.state();
    qmodel.dispose();
    return state;
  };
  const brecq = await run('brecq');
  assert.deepEqual(await run('qdrop', { dropP: 1, inputDropP: 1 }), brecq);
  assert.notDeepEqual(await run('qdrop', { dropP: 1, inputDropP: 0.5 }), brecq, 'the input drop alone');
  assert.notDeepEqual(await run('qdrop', { dropP: 0.5, inputDropP: 1 }), brecq, 'the quantizer drop alone');
});

const resumeVariants: Record<string, string> = {
  '': '',
  dense: ' (DenseNet: units that quantize their own input)',
  int8: ' (int8Kernels: the first unit quantizes the image)',
  handover: ' (units that go to every intra-op thread mid-way, once the next unit\'s DC is done)',
};
for (const [variant, what] of Object.entries(resumeVariants)) test(`a resumed run ends exactly where an uninterrupted one does${what}`, async (t) => {
  const dense = variant === 'dense';
  const model = join(ws.dir, 'resume-dense.onnx');
  if (dense) writeFileSync(model, tinyDenseNet());
  const extra = dense ? { model } : variant === 'int8' ? { aBits: 8, int8Kernels: true } : variant === 'handover' ? { recon: { ...base('pdquant').recon, dcSteps: 2 } } : {};
  const threads = E.engineInfo().threads;
  // Background DC, and with it the handover, needs more than one intra-op thread.
  if (variant === 'handover') E.setThreads(2);
  t.after(() => E.setThreads(threads));
  const full = await quantize(base('pdquant', { ...extra, runDir: join(ws.dir, `run-full${variant}`) }), 'test');
  if (variant === 'handover') {
    const switched = full.record.recon!.units.filter((u) => u.allThreadsFrom !== undefined);
    assert.ok(switched.length >= 2 && switched.every((u) => u.allThreadsFrom! > 1 && u.allThreadsFrom! < 60), JSON.stringify(full.record.recon!.units.map((u) => u.allThreadsFrom)));
  }
  const crashDir = join(ws.dir, `run-crash${variant}`);
  await assert.rejects(
    quantize(base('pdquant', { ...extra, runDir: crashDir }), 'test', {
      unitStart: (k) => {
        if (k === 2) throw new Error('simulated crash');
      },
    }),
    /simulated crash/,
  );
  const resumed = await quantize(base('pdquant', { ...extra, runDir: crashDir, resume: true }), 'test');
  assert.deepEqual(resumed.qmodel.state(), full.qmodel.state());
  assert.deepEqual(resumed.record.recon!.units.map((u) => u.name), full.record.recon!.units.map((u) => u.name));
  if (variant !== '' && variant !== 'handover') return;
  // Inside a unit, its progress saved after every iteration: the resumed run continues after the last one saved. With
  // the handover, before it (the resumed run makes it in the loop) and after it (at once, on resuming).
  const at = variant === 'handover' ? full.record.recon!.units.findIndex((u) => u.allThreadsFrom !== undefined) : 2;
  const switchAt = full.record.recon!.units[at]!.allThreadsFrom;
  const stops = variant === 'handover' ? [switchAt! - 2, switchAt! + 3] : [25];
  for (const stop of stops) {
    const dir = join(ws.dir, `run-crash-mid${variant}-${stop}`);
    await assert.rejects(
      quantize(base('pdquant', { ...extra, runDir: dir, unitCheckpointSeconds: 0 }), 'test', {
        iteration: (_u, k, it) => {
          if (k === at && it === stop) throw new Error('simulated crash');
        },
      }),
      /simulated crash/,
    );
    assert.ok(existsSync(join(dir, 'unit-progress.bin')));
    const iterations: number[] = [];
    const threadsUsed = new Set<number>();
    const mid = await quantize(base('pdquant', { ...extra, runDir: dir, resume: true, unitCheckpointSeconds: 0 }), 'test', {
      iteration: (_u, k, it) => {
        if (k !== at) return;
        iterations.push(it);
        threadsUsed.add(E.engineInfo().threads);
      },
    });
    assert.equal(iterations[0], stop + 1, 'continues after the last iteration saved (saved before it was reported)');
    // The thread count (which can change float sums, though not on this tiny model) follows the uninterrupted run.
    if (variant === 'handover') assert.deepEqual([...threadsUsed], stop < switchAt! ? [1, 2] : [2]);
    assert.deepEqual(mid.qmodel.state(), full.qmodel.state(), `resumed inside the unit after iteration ${stop}`);
    const unit = mid.record.recon!.units[at]!;
    assert.equal(unit.resumedAfter, stop);
    assert.deepEqual(unit.curve, full.record.recon!.units[at]!.curve);
    assert.ok(!existsSync(join(dir, 'unit-progress.bin')), 'removed once its unit is finished');
    mid.qmodel.dispose();
  }
});

test('a run interrupted in its first unit resumes from that unit\'s progress; progress of another run is refused', async () => {
  const dir = join(ws.dir, 'run-first-unit');
  await assert.rejects(
    quantize(base('qdrop', { runDir: dir, unitCheckpointSeconds: 0 }), 'test', {
      iteration: (_u, k, it) => {
        if (k === 0 && it === 10) throw new Error('simulated crash');
      },
    }),
    /simulated crash/,
  );
  assert.ok(!existsSync(join(dir, 'checkpoint.json')) && existsSync(join(dir, 'unit-progress.bin')));
  const first: number[] = [];
  const resumed = await quantize(base('qdrop', { runDir: dir, resume: true }), 'test', { iteration: (_u, k, it) => k === 0 && first.push(it) });
  assert.equal(first[0], 11);
  const full = await quantize(base('qdrop', { runDir: join(ws.dir, 'run-first-unit-full') }), 'test');
  assert.deepEqual(resumed.qmodel.state(), full.qmodel.state());
  resumed.qmodel.dispose();
  full.qmodel.dispose();
  // The same folder, another run: its progress is not this run's.
  const other = join(ws.dir, 'run-first-unit-other');
  await assert.rejects(
    quantize(base('qdrop', { runDir: other, unitCheckpointSeconds: 0 }), 'test', { iteration: (_u, k, it) => { if (k === 0 && it === 5) throw new Error('simulated crash'); } }),
    /simulated crash/,
  );
  await assert.rejects(quantize(base('qdrop', { runDir: other, resume: true, wBits: 2 }), 'test'), /^Error: The unit progress in .* belongs to another run \(it differs in: w\); start a new --run-dir$/);
  writeFileSync(join(other, 'unit-progress.bin'), 'not what a run writes');
  await assert.rejects(quantize(base('qdrop', { runDir: other, resume: true }), 'test'), /^Error: The unit progress file .*unit-progress\.bin cannot be read \(.*\); delete it to redo that unit from its start$/);
});

test('the cache estimate inspect prints is what a run holds per unit', async () => {
  const { unitCacheBytesPerImage } = await import('../src/recon/caches.js');
  const { inferShapes } = await import('../src/onnx/shapes.js');
  const { record, loaded, qmodel } = await quantize(base('brecq', { recon: { ...base('brecq').recon, iters: 1 } }), 'test');
  qmodel.dispose();
  const shapes = inferShapes(loaded.folded.model);
  assert.deepEqual(record.recon!.units.map((u) => u.cacheBytes), loaded.units.map((u) => 64 * unitCacheBytesPerImage(u, shapes)!));
});

test('a run whose caches would not fit in memory is warned before it starts, with a --num-samples that fits', async () => {
  const { largestUnitCache, cacheMemoryWarning, PEAK_PER_CACHE } = await import('../src/methods/memory.js');
  const run = async (memoryBytes?: number) => {
    const warnings: string[] = [];
    const { record, qmodel } = await quantize(base('brecq', { memoryBytes, recon: { ...base('brecq').recon, iters: 1 } }), 'test', { warning: (m) => warnings.push(m) });
    qmodel.dispose();
    return { record, warnings };
  };
  const { record, warnings } = await run();
  assert.deepEqual(warnings, [], 'this machine holds the tiny model');
  const loaded = loadModel(ws.model);
  const largest = largestUnitCache(loaded.units, loaded.folded.model)!;
  assert.equal(64 * largest.bytesPerImage, Math.max(...record.recon!.units.map((u) => u.cacheBytes)));
  // Memory for 40 images' worth of the estimated peak: 64 do not fit, 0.7 of it holds 28, so no multiple of 32.
  const small = await run(Math.round(40 * PEAK_PER_CACHE * largest.bytesPerImage));
  assert.equal(small.warnings.length, 1);
  assert.match(small.warnings[0]!, new RegExp(`^unit ${largest.unit.name}'s calibration caches take .* GiB with 64 images, and a run peaks at about 2\\.2× its largest caches .*; even 32 images would not fit`));
  assert.match(cacheMemoryWarning(largest, 1024, 200 * PEAK_PER_CACHE * largest.bytesPerImage)!, /use --num-samples 128 or fewer$/);
  assert.equal(cacheMemoryWarning(largest, 1024, 1200 * PEAK_PER_CACHE * largest.bytesPerImage), undefined);
  assert.equal(cacheMemoryWarning(undefined, 1024, 1), undefined);
});

test('resume refuses a checkpoint of another run', async () => {
  const dir = join(ws.dir, 'run-other');
  await quantize(base('qdrop', { runDir: dir }), 'test');
  await assert.rejects(quantize(base('qdrop', { runDir: dir, resume: true, wBits: 2 }), 'test'), /belongs to another run/);
});

test('DC moves the BN input statistics towards the running statistics', () => {
  const m = loadModel(ws.model);
  const u = m.units[1]!;
  E.manualSeed(0);
  const x = E.keep(E.rand([16, 8, 8, 8]).mul(3));
  const r = distributionCorrection(m.fp, u.input, u.output, x, { ...DEFAULTS, dcSteps: 60, dcLr: 0.02, lambdaC: 1e6 }, 8);
  assert.ok(r.lossEnd < r.lossStart * 0.9, `DC loss ${r.lossStart} → ${r.lossEnd}`);
  r.xdc.dispose();
  x.dispose();
});

test('DC on a worker thread, a unit ahead, equals DC on this thread, also when finished ahead of its take', () => {
  const m = loadModel(ws.model);
  const units = m.units.filter((u) => unitBatchNorms(m.fp, u.input, u.output).length > 0).slice(0, 3);
  assert.equal(units.length, 3);
  E.manualSeed(1);
  const images = E.keep(E.rand([48, 3, 8, 8]));
  // 3 chunks of 16 rows per unit, shared out between the two threads.
  const cfg = { ...DEFAULTS, dcSteps: 30, dcLr: 0.02, dcChunk: 16, cacheBatch: 32 };
  const background = new BackgroundDc(m.fp, images, m.fp.input.name, units, cfg, 8);
  try {
    units.forEach((u, i) => {
      const r = background.take(i);
      const xfp = capture(m.fp, images, m.fp.input.name, u.input, 32);
      const s = distributionCorrection(m.fp, u.input, u.output, xfp, cfg, 8);
      assert.ok(r.lossEnd < r.lossStart, `${u.name}: DC lowers its loss`);
      assert.ok(r.xdc.sub(s.xdc).abs().amax().item() <= 1e-6, `${u.name}: same corrected input`);
      assert.ok(Math.abs(r.lossEnd - s.lossEnd) <= 1e-6 * Math.abs(s.lossEnd), `${u.name}: loss ${r.lossEnd} vs ${s.lossEnd}`);
      assert.equal(r.curve.length, s.curve.length);
      E.dispose([r.xdc, s.xdc, xfp]);
      // The last unit's DC is finished ahead of its take (as at a handover to every intra-op thread).
      if (i === 1) background.complete(2);
    });
  } finally {
    background.close();
    images.dispose();
  }
});

test('a DC failure is one error on the main thread', () => {
  const m = loadModel(ws.model);
  const images = E.keep(E.rand([16, 3, 8, 8]));
  const background = new BackgroundDc(m.fp, images, m.fp.input.name, [{ input: 'no-such-value', output: m.units[1]!.output }], { ...DEFAULTS, dcSteps: 5 }, 8);
  try {
    assert.throws(() => background.take(0), /no-such-value/);
  } finally {
    background.close();
    images.dispose();
  }
});

test('a cache holds, row for row, what the network computes batch by batch, in the layout it computes in', async () => {
  const { captureValues } = await import('../src/recon/caches.js');
  const { execute } = await import('../src/graph/index.js');
  const m = loadModel(ws.model);
  const g = m.fp;
  const images = E.keep(E.randn([20, 3, 8, 8]));
  try {
    const unit = m.units[1]!;
    const values = [g.input.name, unit.input, unit.output];
    for (const batch of [1, 7, 32]) {
      const cached = E.noGrad(() => captureValues(g, images, g.input.name, values, batch));
      // What each batch gives, stacked (a convolution's float result can depend on the batch size).
      const stacked = E.noGrad(() => E.tidy(() => {
        const runs: E.Tensor[][] = [];
        for (let s = 0; s < 20; s += batch) {
          const x = images.slice(0, s, Math.min(20, s + batch));
          const got = execute(g, { feeds: new Map([[g.input.name, x]]), outputs: values.slice(1) });
          runs.push(values.map((v) => (v === g.input.name ? x : got.get(v)!)));
        }
        return values.map((_, i) => E.cat(runs.map((r) => r[i]!), 0));
      }));
      values.forEach((v, i) => {
        assert.deepEqual(cached.get(v)!.shape, stacked[i]!.shape);
        assert.deepEqual(cached.get(v)!.data(), stacked[i]!.data(), `${v}, batch ${batch}`);
        assert.equal(cached.get(v)!.layout, stacked[i]!.layout, `${v}, batch ${batch}`);
      });
      assert.equal(cached.get(unit.output)!.layout, 'channels-last');
      E.dispose([...cached.values(), ...stacked]);
    }
  } finally {
    images.dispose();
  }
});
