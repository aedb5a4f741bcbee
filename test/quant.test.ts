// Quantizers: argument errors, straight-through gradients, learnable steps, AdaRound hardening and serialisation,
// QDrop masks, and the sanity of the minmax / mse / cosine initialisations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tensor, randn, rand, manualSeed, tidy, keep, noGrad, liveTensors, Adam, engineInfo, setThreads, type Tensor } from '../src/engine/index.js';
import { parallelSearchCount } from '../src/quant/row-pool.js';
import { UniformQuantizer, AdaRoundQuantizer, QDropQuantizer, dropMix, type UniformQuantizerState } from '../src/quant/index.js';

const perTensor = (bits: number, delta: number, zeroPoint: number) =>
  UniformQuantizer.fromState({ bits, channelWise: false, shape: [], delta: [delta], zeroPoint: [zeroPoint] });

test('bit-widths outside 2..8 are refused with a RangeError', () => {
  for (const bits of [9, 1, 0, 2.5, NaN]) {
    assert.throws(() => new UniformQuantizer({ bits }), { name: 'RangeError', message: `Expected integer 2..8 for bits but received ${bits}` });
  }
  for (const bits of [2, 8]) assert.equal(new UniformQuantizer({ bits }).levels, 2 ** bits);
});

test('bad calls: unknown init method, use before init, per-channel on rank 1, mismatched state', () => {
  const q = new UniformQuantizer({ bits: 4 });
  const x = tensor([1, 2, 3]);
  assert.throws(() => q.forward(x), { name: 'Error', message: /not initialised/ });
  assert.throws(() => q.init(x, 'max' as never), { name: 'RangeError', message: /Expected one of minmax, mse, cosine for the init method but received max/ });
  assert.throws(() => new UniformQuantizer({ bits: 4, channelWise: true }).init(x), { name: 'RangeError', message: /rank >= 2/ });
  const s: UniformQuantizerState = { bits: 8, channelWise: false, shape: [], delta: [1], zeroPoint: [0] };
  assert.throws(() => q.load(s), { name: 'Error', message: /state is 8-bit per-tensor, quantizer is 4-bit per-tensor/ });
  assert.throws(() => q.load({ ...s, bits: 4, shape: [2] }), { name: 'RangeError', message: /needs 2 values/ });
  x.dispose();
});

test('forward: round half to even, clamping, and per-channel broadcasting ([C,1] for rank-2 weights)', () => {
  const q = perTensor(3, 0.5, 2); // grid −1 … 2.5
  tidy(() => {
    assert.deepEqual(q.forward(tensor([0.25, 0.75, -3, 9, 1.1])).toArray(), [0, 1, -1, 2.5, 1]);
    assert.deepEqual(q.quantizeInt(tensor([0.25, -3, 9])).toArray(), [2, 0, 7]);
  });
  const w = new UniformQuantizer({ bits: 2, channelWise: true }).init(tensor([0, 3, 0, 30], [2, 2]), 'minmax');
  assert.deepEqual(w.delta.shape, [2, 1]);
  close(w.delta.toArray(), [1, 10]);
  tidy(() => assert.deepEqual(w.forward(tensor([1.2, 2.9, 12, 31], [2, 2])).toArray(), [1, 3, 10, 30]));
  q.dispose();
  w.dispose();
});

function close(a: number[], e: number[], tol = 1e-6): void {
  assert.equal(a.length, e.length);
  a.forEach((v, k) => assert.ok(Math.abs(v - e[k]!) <= tol * (1 + Math.abs(e[k]!)), `[${k}] ${v} vs ${e[k]}`));
}

test('straight-through gradients match finite differences of the STE surrogate (non-boundary points)', () => {
  // bits 3, δ = 0.1, z = 3: inside, clamped low, clamped high, inside.
  const xs = [0.123, -0.75, 0.9, -0.17];
  const wts = [0.7, -1.3, 0.4, 2.1];
  const d0 = 0.1, z = 3, n = 8;
  const q = perTensor(3, d0, z).learnable(true);
  const x = tensor(xs).requiresGrad_(true);
  tidy(() => q.forward(x).mul(tensor(wts)).sum().backward());
  const gx = x.grad!.toArray(), gd = q.delta.grad!.item();
  // The surrogate: round(u) replaced by u + (round(u0) − u0) with u0 = x/δ0 held fixed.
  const off = xs.map((v) => Math.round(v / d0) - v / d0);
  const f = (d: number, xv = xs) => xv.reduce((s, v, k) => s + wts[k]! * (Math.min(n - 1, Math.max(0, v / d + off[k]! + z)) - z) * d, 0);
  const h = 1e-5;
  close([gd], [(f(d0 + h) - f(d0 - h)) / (2 * h)], 1e-4);
  const fdx = xs.map((_, k) => {
    const plus = xs.map((v, j) => (j === k ? v + h : v)), minus = xs.map((v, j) => (j === k ? v - h : v));
    return (f(d0, plus) - f(d0, minus)) / (2 * h);
  });
  close(gx, fdx, 1e-4);
  close(gx, [wts[0]!, 0, 0, wts[3]!]);
  for (const t of [x.grad!, q.delta.grad!, x]) t.dispose();
  q.learnable(false);
  assert.equal(q.params.length, 0);
  assert.equal(q.delta.requiresGrad, false);
  q.dispose();
});

test('learnable(): delta becomes an Adam parameter and keeps its value', () => {
  manualSeed(3);
  const x = keep(randn([64, 8]));
  const q = new UniformQuantizer({ bits: 4 }).init(x);
  const d0 = q.delta.item();
  q.learnable(true);
  assert.equal(q.params.length, 1);
  assert.equal(q.delta.item(), d0);
  const opt = new Adam([{ params: q.params, lr: 1e-3 }]);
  tidy(() => q.forward(x).sub(x).pow(2).sum().backward());
  opt.step();
  assert.ok(Math.abs(q.delta.item() - d0) > 1e-5, 'Adam moved delta');
  opt.dispose();
  q.dispose();
  x.dispose();
});

test('state() / load() round trip through JSON', () => {
  manualSeed(4);
  const w = keep(randn([6, 3, 3, 3]));
  const q = new UniformQuantizer({ bits: 4, channelWise: true }).init(w, 'mse');
  const s = JSON.parse(JSON.stringify(q.state())) as UniformQuantizerState;
  assert.deepEqual(s.shape, [6, 1, 1, 1]);
  assert.equal(s.delta.length, 6);
  const r = UniformQuantizer.fromState(s);
  tidy(() => assert.deepEqual(r.forward(w).toArray(), q.forward(w).toArray()));
  for (const t of [q, r, w]) t.dispose();
});

test('init: minmax, mse and cosine give sane ranges; one-sided data get zero point 0 or n − 1', () => {
  manualSeed(5);
  const before = liveTensors();
  const x = keep(randn([32, 64]));
  const pos = keep(x.relu());
  const neg = keep(pos.neg());
  const bits = 4, n = 16;
  const mm = new UniformQuantizer({ bits }).init(x, 'minmax');
  const [lo, hi] = tidy(() => [x.amin().item(), x.amax().item()]);
  close([mm.delta.item()], [(hi - lo) / (n - 1)], 1e-6);
  assert.equal(mm.zeroPoint.item(), Math.round(-lo / mm.delta.item()));
  const mse = new UniformQuantizer({ bits }).init(x, 'mse');
  const cos = new UniformQuantizer({ bits }).init(x, 'cosine');
  const err = (q: UniformQuantizer) => tidy(() => q.forward(x).sub(x).abs().pow(2.4).mean().item());
  const cosine = (q: UniformQuantizer) => tidy(() => { const y = q.forward(x); return y.mul(x).sum().item() / Math.sqrt(y.mul(y).sum().item() * x.mul(x).sum().item()); });
  // Each search beats minmax on its own metric (minmax is one of the 2-D search's candidates, up to rounding).
  assert.ok(err(mse) < err(mm));
  assert.ok(cosine(cos) >= cosine(mm));
  assert.ok(cosine(cos) > 0.99);
  for (const q of [mse, cos]) assert.ok(q.delta.item() * (n - 1) <= hi - lo + 1e-6, 'range within the data range');
  const p = new UniformQuantizer({ bits }).init(pos, 'mse');
  const m = new UniformQuantizer({ bits }).init(neg, 'mse');
  assert.equal(p.zeroPoint.item(), 0);
  assert.equal(m.zeroPoint.item(), n - 1);
  close([p.delta.item()], [m.delta.item()], 1e-6);
  for (const t of [mm, mse, cos, p, m, x, pos, neg]) t.dispose();
  assert.equal(liveTensors(), before);
});

test('the fast search picks the same candidates as the exhaustive one', () => {
  manualSeed(6);
  const cases: [number[], number, boolean][] = [[[700], 8, false], [[8000], 3, false], [[12, 200], 4, true], [[6, 40], 8, true]];
  for (const [shape, bits, channelWise] of cases) {
    const x = keep(tidy(() => { const y = randn(shape); return randn(shape).mul(y.mul(y).add(0.1)); }));
    for (const method of ['mse', 'cosine'] as const) {
      const [a, b] = (['exhaustive', 'fast'] as const).map((s) => new UniformQuantizer({ bits, channelWise }).init(x, method, s));
      assert.deepEqual(b!.delta.toArray(), a!.delta.toArray(), `${method} ${bits}-bit [${shape}] delta`);
      assert.deepEqual(b!.zeroPoint.toArray(), a!.zeroPoint.toArray(), `${method} ${bits}-bit [${shape}] zero point`);
      a!.dispose();
      b!.dispose();
    }
    x.dispose();
  }
});

test('the fast search gives the same candidates when its rows are split over threads', () => {
  manualSeed(16);
  const threads = engineInfo().threads;
  setThreads(2);
  try {
    // 24 channels × 2048 values × 1600 candidates: above the size that the search splits over threads.
    const x = keep(tidy(() => { const y = randn([24, 2048]); return randn([24, 2048]).mul(y.mul(y).add(0.1)); }));
    for (const method of ['mse', 'cosine'] as const) {
      const before = parallelSearchCount();
      const [a, b] = (['exhaustive', 'fast'] as const).map((s) => new UniformQuantizer({ bits: 4, channelWise: true }).init(x, method, s));
      assert.equal(parallelSearchCount(), before + 1, `${method}: the fast search ran on two threads`);
      assert.deepEqual(b!.delta.toArray(), a!.delta.toArray(), `${method} delta`);
      assert.deepEqual(b!.zeroPoint.toArray(), a!.zeroPoint.toArray(), `${method} zero point`);
      a!.dispose();
      b!.dispose();
    }
    x.dispose();
  } finally {
    setThreads(threads);
  }
});

function setAlpha(ada: AdaRoundQuantizer, values: Tensor): void {
  noGrad(() => ada.alpha.assign(values));
}

test('AdaRound: soft weight starts at w, hardening rounds up exactly where α ≥ 0, α is freed', () => {
  manualSeed(7);
  const w = keep(randn([4, 3, 3, 3]).mul(0.1));
  const uq = new UniformQuantizer({ bits: 4, channelWise: true }).init(w, 'mse');
  const ada = new AdaRoundQuantizer(uq, w);
  tidy(() => {
    // Inside the grid the initial soft weight reproduces w.
    const inside = w.div(uq.delta).floor().add(uq.zeroPoint);
    const mask = inside.ge(0).logicalAnd(inside.le(14)).to({ dtype: 'float32' });
    const diff = ada.forward().sub(w).abs().mul(mask).amax().item();
    assert.ok(diff < 1e-6, `soft − w = ${diff}`);
  });
  setAlpha(ada, tidy(() => randn([4, 3, 3, 3])));
  const expected = tidy(() => w.div(uq.delta).floor().add(ada.alpha.ge(0).to({ dtype: 'float32' })).add(uq.zeroPoint).clamp(0, 15).toArray());
  ada.soft = false;
  const hardBefore = tidy(() => ada.forward().toArray());
  ada.harden();
  assert.ok(ada.hardened);
  assert.throws(() => ada.alpha, /freed/);
  const q = ada.hardWeightInt();
  assert.deepEqual(q.toArray(), expected);
  assert.ok(q.toArray().every((v) => Number.isInteger(v) && v >= 0 && v <= 15));
  tidy(() => {
    assert.deepEqual(ada.forward().toArray(), hardBefore);
    assert.deepEqual(ada.hardWeight().toArray(), q.sub(uq.zeroPoint).mul(uq.delta).toArray());
  });
  // Serialised as a bit mask; load() restores the same integer weights on a fresh quantizer.
  const s = JSON.parse(JSON.stringify(ada.state()));
  assert.equal(Buffer.from(s.roundUp, 'base64').length, Math.ceil(108 / 8));
  const again = new AdaRoundQuantizer(uq, w).load(s);
  tidy(() => assert.deepEqual(again.hardWeightInt().toArray(), expected));
  assert.throws(() => new AdaRoundQuantizer(uq, w).load({ ...s, shape: [4, 27] }), /state is 4-bit/);
  for (const t of [q, ada, again, uq, w]) t.dispose();
});

test('AdaRound: Adam on α lowers reconstruction + rounding loss, and the regulariser pushes h to 0 or 1', () => {
  manualSeed(8);
  const w = keep(randn([8, 16]).mul(0.2));
  const x = keep(randn([32, 16]));
  const uq = new UniformQuantizer({ bits: 3, channelWise: true }).init(w, 'mse');
  const ada = new AdaRoundQuantizer(uq, w);
  const opt = new Adam([{ params: [ada.alpha], lr: 1e-2 }]);
  const target = keep(x.matmul(w.permute([1, 0])));
  const loss = (beta: number) => {
    const y = x.matmul(ada.forward().permute([1, 0]));
    return y.sub(target).pow(2).mean().add(ada.roundingLoss(beta).mul(0.01));
  };
  const first = tidy(() => loss(20).item());
  for (let k = 0; k < 200; k++) {
    tidy(() => loss(k < 100 ? 20 : 2).backward());
    opt.step();
    opt.zeroGrad();
  }
  const last = tidy(() => loss(2).item());
  assert.ok(last < first, `${last} < ${first}`);
  const undecided = tidy(() => ada.softTargets().sub(0.5).abs().lt(0.4).to({ dtype: 'float32' }).mean().item());
  assert.ok(undecided < 0.5, `share of h in (0.1, 0.9): ${undecided}`);
  opt.dispose();
  for (const t of [ada, uq, w, x, target]) t.dispose();
});

test('QDrop: fp / quant / drop modes, drop rate ≈ p with a fresh mask per call, seeded', () => {
  const q = perTensor(4, 0.1, 8);
  const size = 100_000;
  const x = keep(tensor(new Float32Array(size).fill(0.04))); // x̂ = 0 ≠ x everywhere
  const act = new QDropQuantizer(q, { mode: 'drop', p: 0.3 });
  const rate = (y: Tensor) => tidy(() => y.eq(0).to({ dtype: 'float32' }).mean().item());
  manualSeed(9);
  const [a, b] = [act.forward(x), act.forward(x)];
  assert.ok(Math.abs(rate(a) - 0.3) < 0.01, `rate ${rate(a)}`);
  assert.ok(tidy(() => a.ne(b).to({ dtype: 'float32' }).sum().item()) > 0, 'fresh mask each call');
  manualSeed(9);
  const c = act.forward(x);
  tidy(() => assert.equal(a.ne(c).to({ dtype: 'float32' }).sum().item(), 0, 'same seed, same mask'));
  act.mode = 'fp';
  assert.equal(act.forward(x), x);
  act.mode = 'quant';
  tidy(() => assert.equal(rate(act.forward(x)), 1));
  act.p = 1;
  assert.throws(() => (act.p = 1.5), { name: 'RangeError', message: 'Expected a probability 0..1 for p but received 1.5' });
  assert.throws(() => (act.mode = 'train' as never), { name: 'RangeError', message: /Expected one of fp, quant, drop/ });
  // Input drop: xq where the draw is below p.
  const xq = keep(tensor(new Float32Array(size).fill(1)));
  const m = dropMix(xq, x, 0.7);
  assert.ok(Math.abs(tidy(() => m.eq(1).to({ dtype: 'float32' }).mean().item()) - 0.7) < 0.01);
  assert.throws(() => dropMix(xq, tensor([1, 2]), 0.5), { name: 'RangeError', message: /shapes differ/ });
  // p = 1 is no drop at all: every element quantized, xq taken whole, and no draw from the random stream.
  act.mode = 'drop';
  act.p = 1;
  manualSeed(4);
  const fresh = tidy(() => rand([4]).toArray());
  manualSeed(4);
  tidy(() => assert.equal(rate(act.forward(x)), 1));
  assert.equal(dropMix(xq, x, 1), xq);
  assert.deepEqual(tidy(() => rand([4]).toArray()), fresh);
  for (const t of [a, b, c, m, x, xq, q]) t.dispose();
});
