/**
 * The fused engine ops (rowMomentLoss, rowSqDist, the one-pass float32 Adam) against their composite definitions,
 * values and gradients, for contiguous and channels-last layouts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  Tensor, tensor, tidy, keep, dispose, Adam, rowMomentLoss, rowSqDist, fakeQuantize, dropSelect, dropFakeQuantize, manualSeed, setThreads,
  engineInfo, ones, zeros, where, shareTensor, takeShared,
} from '../src/engine/index.js';
import { dcStatPerSample } from '../src/recon/losses.js';
import { assertClose, assertThrows, failOnLeaks, seq, vals } from './helpers/engine-check.js';

failOnLeaks();

const f32 = (v: number[], shape: number[]): Tensor => tensor(Float32Array.from(v), shape);

/** The gradient of Σ_b w_b · f(x)_b with respect to x, for a fixed weight per row. */
function gradOf(x0: Tensor, f: (x: Tensor) => Tensor, weights: number[]): { value: number[]; grad: number[] } {
  const x = keep(x0.detach().clone().requiresGrad_(true));
  try {
    const value = tidy(() => {
      const out = f(x);
      out.mul(f32(weights, [weights.length])).sum().backward();
      return vals(out);
    });
    return { value, grad: vals(x.grad!.contiguous()) };
  } finally {
    dispose(x);
  }
}

/** Composite reference: dcStatPerSample's two terms summed, with eps added to the running variance. */
const composite = (mean: Tensor, variance: Tensor, eps: number) => (x: Tensor) => {
  const s = dcStatPerSample(x, mean, variance, eps);
  return s.mean.add(s.std);
};

describe('rowMomentLoss', () => {
  const [B, C, H, W] = [3, 4, 5, 6];
  const weights = [1, -0.5, 2];
  for (const layout of ['contiguous', 'channels-last'] as const) {
    it(`equals the composite mean/var expression and its gradient (${layout})`, () => {
      tidy(() => {
        const x0 = f32(seq(B * C * H * W, 7).map((v, i) => 2 * v + (i % 5) * 0.3), [B, C, H, W]);
        const x = layout === 'channels-last' ? x0.channelsLast() : x0;
        const mean = f32([0.1, -0.2, 0.3, 0.05], [C]);
        const variance = f32([0.5, 1.5, 0.8, 2.0], [C]);
        const eps = 1e-5;
        const fused = gradOf(x, (t) => rowMomentLoss(t, mean, variance.add(eps).sqrt(), eps), weights);
        const ref = gradOf(x0, composite(mean, variance, eps), weights);
        assertClose(fused.value, ref.value, 1e-5, 1e-5, 'value');
        assertClose(fused.grad, ref.grad, 1e-6, 1e-4, 'gradient');
        assert.ok(fused.grad.some((g) => Math.abs(g) > 1e-3), 'the gradient is not trivially zero');
      });
    });
  }

  it('takes rank-3 input and float64 (the composite path) with the same values', () => {
    tidy(() => {
      const x = f32(seq(2 * 3 * 7, 3), [2, 3, 7]);
      const mean = f32([0, 0.1, -0.1], [3]);
      const std = f32([1, 0.5, 0.25], [3]);
      const a = vals(rowMomentLoss(x, mean, std, 1e-6));
      const b = vals(rowMomentLoss(x.to({ dtype: 'float64' }), mean.to({ dtype: 'float64' }), std.to({ dtype: 'float64' }), 1e-6));
      assertClose(a, b, 1e-5, 1e-5);
    });
  });

  it('rejects a channel mismatch and rank below 3', () => {
    tidy(() => {
      assert.throws(() => rowMomentLoss(f32([1, 2, 3, 4], [1, 2, 2]), f32([0], [1]), f32([1], [1]), 1e-6), /2 channels but the statistics have 1 and 1/);
      assert.throws(() => rowMomentLoss(f32([1, 2], [1, 2]), f32([0, 0], [2]), f32([1, 1], [2]), 1e-6), /rank 3 or more/);
    });
  });
});

describe('rowSqDist', () => {
  for (const layout of ['contiguous', 'channels-last'] as const) {
    it(`equals Σ (x − y)² per row and its gradient 2(x − y) (${layout} x, contiguous y)`, () => {
      tidy(() => {
        const shape = [3, 2, 4, 5];
        const x0 = f32(seq(120, 11), shape);
        const y = f32(seq(120, 12), shape);
        const x = layout === 'channels-last' ? x0.channelsLast() : x0;
        const fused = gradOf(x, (t) => rowSqDist(t, y), [1, 2, -1]);
        const ref = gradOf(x0, (t) => { const d = t.sub(y); return d.mul(d).reshape([3, -1]).sum([1]); }, [1, 2, -1]);
        assertClose(fused.value, ref.value, 1e-5, 1e-6, 'value');
        assertClose(fused.grad, ref.grad, 1e-6, 1e-6, 'gradient');
      });
    });
  }
  it('rejects different shapes', () => {
    tidy(() => assert.throws(() => rowSqDist(f32([1, 2], [2, 1]), f32([1, 2], [1, 2])), /shapes differ/));
  });
});

describe('Adam on float32 (the one-pass path)', () => {
  /** torch.optim.Adam in float64 over flat arrays; lr is one number or one per element. */
  function refAdam(p: number[], grads: number[][], lr: (i: number) => number): number[] {
    const m = p.map(() => 0), v = p.map(() => 0);
    let out = p;
    grads.forEach((g, k) => {
      const t = k + 1;
      const bc1 = 1 - 0.9 ** t, bc2 = 1 - 0.999 ** t;
      out = out.map((pi, i) => {
        m[i] = 0.9 * m[i]! + 0.1 * g[i]!;
        v[i] = 0.999 * v[i]! + 0.001 * g[i]! * g[i]!;
        return pi - (lr(i) / bc1) * (m[i]! / (Math.sqrt(v[i]!) / Math.sqrt(bc2) + 1e-8));
      });
    });
    return out;
  }

  const shape = [4, 2, 3, 3];
  const n = 72;
  const rowLr = [0.1, 0.01, 0.001, 0.05];
  const cases: { name: string; lr: () => number | Tensor; at: (i: number) => number; channelsLast?: boolean }[] = [
    { name: 'a number', lr: () => 0.02, at: () => 0.02 },
    { name: 'one rate per row [4,1,1,1]', lr: () => f32(rowLr, [4, 1, 1, 1]), at: (i) => rowLr[Math.floor(i / 18)]! },
    { name: 'one rate per row, channels-last parameter', lr: () => f32(rowLr, [4, 1, 1, 1]), at: (i) => rowLr[Math.floor(i / 18)]!, channelsLast: true },
    { name: 'a single-element tensor', lr: () => f32([0.03], [1]), at: () => 0.03 },
    // Not one rate per row: must take the broadcasting path and still be right.
    { name: 'one rate per channel [1,2,1,1]', lr: () => f32([0.1, 0.001], [1, 2, 1, 1]), at: (i) => [0.1, 0.001][Math.floor(i / 9) % 2]! },
  ];
  for (const c of cases) {
    it(`matches torch.optim.Adam with lr as ${c.name}`, () => {
      const p0 = seq(n, 21);
      const grads = [seq(n, 22), seq(n, 23), seq(n, 24)];
      const p = keep(tidy(() => (c.channelsLast ? f32(p0, shape).channelsLast() : f32(p0, shape))).requiresGrad_(true));
      const lr = c.lr();
      if (typeof lr !== 'number') keep(lr);
      const opt = new Adam([{ params: [p], lr }]);
      try {
        for (const g of grads) {
          p.zeroGrad();
          // gradient exactly g in logical (NCHW) order
          tidy(() => p.mul(f32(g, shape)).sum().backward());
          opt.step();
        }
        assertClose(tidy(() => vals(p.contiguous())), refAdam(p0, grads, c.at), 2e-6, 1e-5);
      } finally {
        opt.dispose();
        dispose(typeof lr === 'number' ? [p] : [p, lr]);
      }
    });
  }
});

describe('fakeQuantize', () => {
  /** The composite expression the reference writes: x/δ → round (straight-through) → +z → clamp → −z → ·δ. */
  const composite = (x: Tensor, d: Tensor, z: Tensor, hi: number) => x.div(d).roundSte().add(z).clamp(0, hi).sub(z).mul(d);

  function both(x0: Tensor, delta: number[], deltaShape: number[], z: number[], hi: number, channelsLast: boolean) {
    const run = (fused: boolean) =>
      tidy(() => {
        const x = keep(x0.detach().clone().requiresGrad_(true));
        const d = keep(f32(delta, deltaShape).requiresGrad_(true));
        const zt = f32(z, deltaShape);
        const input = channelsLast ? x.channelsLast() : x;
        const y = fused ? fakeQuantize(input, d, zt, 0, hi) : composite(input, d, zt, hi);
        // a gradient that differs per element
        y.mul(f32(seq(x0.size, 5), x0.shape)).sum().backward();
        const out = { y: vals(y.contiguous()), gx: vals(x.grad!.contiguous()), gd: vals(d.grad!) };
        dispose([x, d]);
        return out;
      });
    return { fused: run(true), ref: run(false) };
  }

  for (const channelsLast of [false, true]) {
    it(`per tensor: the composite's values and x gradient exactly, its δ gradient closely (${channelsLast ? 'channels-last' : 'contiguous'})`, () => {
      // x/δ spans the clamp range on both sides and hits exact .5 ties (round half to even).
      const x0 = keep(f32(seq(2 * 3 * 4 * 4, 9).map((v, i) => (i % 7 === 0 ? 0.25 * ((i % 5) + 0.5) : 3 * v)), [2, 3, 4, 4]));
      const { fused, ref } = both(x0, [0.25], [], [3], 7, channelsLast);
      x0.dispose();
      assert.deepEqual(fused.y, ref.y);
      assert.deepEqual(fused.gx, ref.gx);
      assert.ok(fused.gx.some((g) => g === 0) && fused.gx.some((g) => g !== 0), 'some elements are clamped, some not');
      assertClose(fused.gd, ref.gd, 1e-5, 1e-5, 'δ gradient');
    });
  }

  it('per channel (the composite path inside the engine) equals the composite', () => {
    const x0 = keep(f32(seq(2 * 3 * 2 * 2, 4).map((v) => 2 * v), [2, 3, 2, 2]));
    const { fused, ref } = both(x0, [0.1, 0.2, 0.3], [1, 3, 1, 1], [1, 2, 0], 3, false);
    x0.dispose();
    assert.deepEqual(fused.y, ref.y);
    assert.deepEqual(fused.gx, ref.gx);
    assertClose(fused.gd, ref.gd, 1e-6, 1e-6);
  });
});

/** The mask a seeded drop op draws: 1 where it takes its first operand. */
function maskFor(seed: number, shape: number[], p: number, layout: 'contiguous' | 'channels-last'): Tensor {
  manualSeed(seed);
  const a = layout === 'channels-last' ? ones(shape).channelsLast() : ones(shape);
  const b = layout === 'channels-last' ? zeros(shape).channelsLast() : zeros(shape);
  return dropSelect(a, b, p);
}

describe('dropSelect', () => {
  it('takes a with probability p, b elsewhere, the same mask for a seed whatever the thread count', () => {
    tidy(() => {
      const threads = engineInfo().threads;
      try {
        for (const p of [0.5, 0.2]) {
          setThreads(1);
          const one = vals(maskFor(11, [64, 4, 16, 16], p, 'contiguous'));
          setThreads(2);
          const two = vals(maskFor(11, [64, 4, 16, 16], p, 'contiguous'));
          assert.deepEqual(one, two);
          const mean = one.reduce((s, v) => s + v, 0) / one.length;
          assert.ok(Math.abs(mean - p) < 0.01, `mask mean ${mean} for p ${p}`);
          assert.ok(one.every((v) => v === 0 || v === 1));
        }
        assert.notDeepEqual(vals(maskFor(11, [4096], 0.5, 'contiguous')), vals(maskFor(12, [4096], 0.5, 'contiguous')), 'another seed, another mask');
        manualSeed(5);
        const first = vals(dropSelect(ones([4096]), zeros([4096]), 0.5));
        const second = vals(dropSelect(ones([4096]), zeros([4096]), 0.5));
        assert.notDeepEqual(first, second, 'a fresh mask every call');
        assert.deepEqual(vals(dropSelect(ones([100]), zeros([100]), 1)), Array(100).fill(1));
        assert.deepEqual(vals(dropSelect(ones([100]), zeros([100]), 0)), Array(100).fill(0));
      } finally {
        setThreads(threads);
      }
    });
  });

  for (const layout of ['contiguous', 'channels-last'] as const) {
    it(`passes each gradient to the operand it took (${layout})`, () => {
      tidy(() => {
        const shape = [3, 4, 5, 6];
        const n = 3 * 4 * 5 * 6;
        const m = maskFor(21, shape, 0.5, layout);
        const a = keep(f32(seq(n, 1), shape).requiresGrad_(true));
        const b = keep(f32(seq(n, 2), shape).requiresGrad_(true));
        const g = f32(seq(n, 3), shape);
        manualSeed(21);
        const y = dropSelect(layout === 'channels-last' ? a.channelsLast() : a, layout === 'channels-last' ? b.channelsLast() : b, 0.5);
        y.mul(g).sum().backward();
        const take = m.gt(0.5);
        assert.deepEqual(vals(y.contiguous()), vals(where(take, a, b)));
        assert.deepEqual(vals(a.grad!), vals(where(take, g, zeros(shape))));
        assert.deepEqual(vals(b.grad!), vals(where(take, zeros(shape), g)));
        dispose([a, b]);
      });
    });
  }

  it('refuses tensors of different shapes and probabilities outside 0..1', () => {
    tidy(() => {
      assertThrows(() => dropSelect(ones([2, 3]), ones([3, 2]), 0.5), RangeError, /shapes differ/);
      assertThrows(() => dropSelect(ones([2]), ones([2]), 1.5), RangeError, /probability/);
    });
  });
});

describe('dropFakeQuantize', () => {
  for (const layout of ['contiguous', 'channels-last'] as const) {
    it(`equals where(mask, fakeQuantize(x), x) in value and gradients (${layout})`, () => {
      tidy(() => {
        const shape = [4, 3, 8, 8];
        const n = 4 * 3 * 8 * 8;
        const m = maskFor(31, shape, 0.5, layout).gt(0.5);
        const x0 = f32(seq(n, 4).map((v) => 3 * v), shape);
        const g = f32(seq(n, 5), shape);
        const run = (fused: boolean) => {
          const x = keep(x0.clone().requiresGrad_(true));
          const d = keep(f32([0.25], []).requiresGrad_(true));
          const z = f32([2], []);
          const input = layout === 'channels-last' ? x.channelsLast() : x;
          manualSeed(31);
          const y = fused ? dropFakeQuantize(input, d, z, 0, 3, 0.5) : where(m, fakeQuantize(input, d, z, 0, 3), input);
          y.mul(g).sum().backward();
          const out = { y: vals(y.contiguous()), gx: vals(x.grad!), gd: vals(d.grad!) };
          dispose([x, d]);
          return out;
        };
        const fused = run(true);
        const ref = run(false);
        assert.deepEqual(fused.y, ref.y);
        assert.deepEqual(fused.gx, ref.gx);
        assertClose(fused.gd, ref.gd, 1e-5, 1e-5, 'δ gradient');
        assert.ok(fused.gd[0] !== 0);
      });
    });
  }

  it('with p = 1 is fakeQuantize, with p = 0 the identity', () => {
    tidy(() => {
      const x = f32(seq(200, 6).map((v) => 2 * v), [200]);
      const d = f32([0.1], []);
      const z = f32([1], []);
      assert.deepEqual(vals(dropFakeQuantize(x, d, z, 0, 7, 1)), vals(fakeQuantize(x, d, z, 0, 7)));
      assert.deepEqual(vals(dropFakeQuantize(x, d, z, 0, 7, 0)), vals(x));
    });
  });

  it('takes per-channel steps and float64 through the composite path', () => {
    tidy(() => {
      const x = f32(seq(2 * 3 * 4, 7), [2, 3, 4]);
      const d = f32([0.1, 0.2, 0.3], [1, 3, 1]);
      const z = f32([0, 1, 2], [1, 3, 1]);
      const y = vals(dropFakeQuantize(x, d, z, 0, 3, 0.5));
      const q = vals(fakeQuantize(x, d, z, 0, 3));
      const xs = vals(x);
      assert.ok(y.every((v, i) => v === q[i] || v === xs[i]));
      const y64 = dropFakeQuantize(x.to({ dtype: 'float64' }), d.to({ dtype: 'float64' }), z.to({ dtype: 'float64' }), 0, 3, 0.5);
      assert.equal(y64.dtype, 'float64');
    });
  });
});

describe('split, channels-last rows and shared tensors', () => {
  it('split gives the pieces and one gradient for all of them', () => {
    tidy(() => {
      const x = keep(f32(seq(6 * 4, 8), [6, 4]).requiresGrad_(true));
      const [a, b] = x.split([2, 4], 0);
      assert.deepEqual(vals(a!), vals(x.slice(0, 0, 2)));
      assert.deepEqual(vals(b!), vals(x.slice(0, 2, 6)));
      a!.mul(2).sum().add(b!.mul(3).sum()).backward();
      assert.deepEqual(vals(x.grad!), [...Array(8).fill(2), ...Array(16).fill(3)]);
      assertThrows(() => x.split([2, 2], 0), RangeError, /add up to 4 but dim 0 has 6/);
      dispose(x);
    });
  });

  it('indexSelect of rows keeps a channels-last tensor channels-last, with the same values', () => {
    tidy(() => {
      const x = f32(seq(5 * 3 * 4 * 4, 9), [5, 3, 4, 4]);
      const idx = tensor(BigInt64Array.from([4n, 0n, 4n]), [3]);
      const cl = x.channelsLast().indexSelect(0, idx);
      assert.equal(cl.layout, 'channels-last');
      assert.deepEqual(vals(cl.contiguous()), vals(x.indexSelect(0, idx)));
      assert.equal(x.indexSelect(0, idx).layout, 'contiguous');
    });
  });

  it('a shared tensor is taken once', () => {
    tidy(() => {
      const x = keep(f32([1, 2, 3], [3]));
      const id = shareTensor(x);
      const y = takeShared(id);
      assert.deepEqual(vals(y), [1, 2, 3]);
      assertThrows(() => takeShared(id), Error, /no shared tensor/);
      dispose(x);
    });
  });
});
