// Reconstruction losses and schedules: lp, PD, DC statistics; β decay, cosine annealing, ReduceLROnPlateau.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tensor, randn, manualSeed, tidy } from '../src/engine/index.js';
import { lpLoss, pdLoss, dcStatLoss } from '../src/recon/losses.js';
import { linearTempDecay, cosineAnnealing, ReduceLROnPlateau, PlateauSchedules } from '../src/recon/schedule.js';

const near = (a: number, e: number, tol = 1e-6) => assert.ok(Math.abs(a - e) <= tol * (1 + Math.abs(e)), `${a} vs ${e}`);

test('linearTempDecay: constant during warm-up, then linear from start to end', () => {
  const beta = linearTempDecay({ iters: 100, warmup: 0.2, start: 20, end: 2 });
  for (const t of [0, 1, 19]) assert.equal(beta(t), 20);
  assert.equal(beta(20), 20);
  near(beta(60), 11);
  assert.equal(beta(100), 2);
  assert.equal(beta(150), 2);
  assert.throws(() => linearTempDecay({ iters: 0, warmup: 0.2, start: 20, end: 2 }), RangeError);
  assert.throws(() => linearTempDecay({ iters: 10, warmup: 1, start: 20, end: 2 }), RangeError);
});

test('cosineAnnealing: lr0·(1 + cos(πt/T))/2', () => {
  const lr = cosineAnnealing(4e-5, 1000);
  assert.equal(lr(0), 4e-5);
  near(lr(500), 2e-5);
  near(lr(250), 4e-5 * (1 + Math.SQRT1_2) / 2);
  near(lr(1000), 0, 1e-12);
  assert.throws(() => cosineAnnealing(1, 0), RangeError);
});

test('ReduceLROnPlateau: patience, relative threshold, min_lr and eps as torch', () => {
  const s = new ReduceLROnPlateau({ lr: 1, factor: 0.5, patience: 2, minLr: 0.3 });
  // Hand-computed: best, bad-step count and lr after each step.
  const metrics = [10, 9, 9, 9, 9, 8.9995, 8.99, 9, 9, 9, 9, 9, 9];
  const lrs = [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.3, 0.3, 0.3, 0.3];
  // step 5: third bad step (> patience 2) → 0.5. step 6: 8.9995 is not below 9·(1 − 1e-4) = 8.9991 → bad.
  // step 7: 8.99 is → new best. steps 8–10: bad → max(0.25, 0.3) = 0.3. step 13: max(0.15, 0.3) − 0.3 ≤ eps: unchanged.
  metrics.forEach((m, k) => assert.equal(s.step(m), lrs[k], `step ${k + 1}`));
  assert.equal(s.lr, 0.3);
});

test('ReduceLROnPlateau: cooldown resets the bad-step count', () => {
  const s = new ReduceLROnPlateau({ lr: 1, factor: 0.1, patience: 0, cooldown: 2 });
  const got = [5, 6, 6, 6, 6, 6].map((m) => s.step(m));
  // 5 best; 6 bad (> 0) → 0.1, cooldown 2; two cooldown steps; then bad → 0.01 (float products as torch).
  assert.deepEqual(got, [1, 0.1, 0.1, 0.1, 0.1 * 0.1, 0.1 * 0.1]);
});

test('PlateauSchedules: K independent schedules stepped together equal K single ones', () => {
  const k = 4;
  const o = { lr: 1e-3, factor: 0.1, patience: 3, minLr: 1e-5 };
  const many = new PlateauSchedules(k, o);
  const single = Array.from({ length: k }, () => new ReduceLROnPlateau(o));
  let seed = 1;
  const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
  for (let step = 0; step < 60; step++) {
    const metrics = Float32Array.from({ length: k }, (_, j) => (j === 0 ? 1 : 1 / (1 + step * rnd() * j)));
    const lrs = many.step(metrics);
    single.forEach((s, j) => assert.equal(lrs[j], s.step(metrics[j]!)));
  }
  assert.ok(many.lrs[0]! < 1e-3, 'the flat metric was reduced');
  assert.throws(() => many.step([1, 2]), { name: 'RangeError', message: /expected 4 metrics, got 2/ });
});

test('lpLoss: Σ over channels, mean over batch and positions; p ≠ 2; bad shapes', () => {
  const a = tensor([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2]);
  const b = tensor([0, 0, 0, 0, 0, 0, 0, 0], [2, 2, 2]);
  tidy(() => {
    // per (sample, position): 1+9, 4+16, 25+49, 36+64 → mean 51
    assert.equal(lpLoss(a, b).item(), 51);
    near(lpLoss(a, b, 3).item(), (1 + 27 + 8 + 64 + 125 + 343 + 216 + 512) / 4);
    assert.throws(() => lpLoss(a, tensor([1, 2])), { name: 'RangeError', message: /shapes differ/ });
  });
  a.dispose();
  b.dispose();
});

test('pdLoss: 0 for equal logits, positive otherwise, gradient reaches the quantized logits', () => {
  manualSeed(11);
  const fp = randn([4, 10]);
  const q = randn([4, 10]).requiresGrad_(true);
  tidy(() => {
    near(pdLoss(fp, fp, 4).item(), 0, 1e-6);
    const l = pdLoss(q, fp, 1);
    assert.ok(l.item() > 0);
    l.backward();
  });
  const g = q.grad!;
  assert.ok(tidy(() => g.abs().sum().item()) > 0);
  assert.throws(() => pdLoss(q, fp, 0), { name: 'RangeError', message: 'Expected a positive temperature T but received 0' });
  for (const t of [fp, q, g]) t.dispose();
});

test('dcStatLoss: per-sample statistics against BN running statistics, and its errors', () => {
  // One sample, one channel, values 1..4: mean 2.5, unbiased var 5/3.
  const x = tensor([1, 2, 3, 4], [1, 1, 2, 2]);
  tidy(() => {
    const { mean, std } = dcStatLoss(x, tensor([0.5]), tensor([2]));
    near(mean.item(), 4);
    near(std.item(), (Math.sqrt(2 + 1e-6) - Math.sqrt(5 / 3 + 1e-6)) ** 2, 1e-5);
    assert.throws(() => dcStatLoss(x, tensor([0, 0]), tensor([1, 1])), { name: 'RangeError', message: /1 channels but the running statistics have 2 and 2/ });
    assert.throws(() => dcStatLoss(tensor([1, 2]), tensor([0]), tensor([1])), { name: 'RangeError', message: /rank 3 or more/ });
  });
  x.dispose();
});
