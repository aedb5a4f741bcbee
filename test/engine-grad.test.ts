/** Autograd: gradients against central finite differences (float64), the straight-through path, and the switches. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  Tensor, tensor, zeros, int64, tidy, keep, dispose, noGrad, conv2d, linear, batchNorm, softmax, logSoftmax,
  klDivBatchmean, mseLoss, crossEntropy, maxPool2d, avgPool2d, adaptiveAvgPool2d, pad, cat, hardtanh, sigmoid,
} from '../src/engine/index.js';
import { assertClose, assertThrows, f64, gradCheck, vals } from './helpers/engine-check.js';
import { failOnLeaks } from './helpers/engine-check.js';

failOnLeaks();

/** Leaf float64 parameters (kept out of tidy so finite differences can perturb them), disposed after fn. */
function withLeaves(specs: { shape: number[]; seed: number; scale?: number }[], fn: (...ts: Tensor[]) => void): void {
  const ts = specs.map((s) => keep(f64(s.shape, s.seed, s.scale ?? 1).requiresGrad_()));
  try {
    tidy(() => fn(...ts));
  } finally {
    dispose(ts);
  }
}

/** Σ y·R for a fixed pseudo-random R of y's shape: a loss whose gradient reaches every output element. */
function weighted(y: Tensor, seed = 99): Tensor {
  return y.mul(f64(y.shape, seed)).sum();
}

describe('gradients vs central finite differences (float64)', () => {
  it('conv2d: input, weight, bias with groups 2 and stride 2', () => {
    withLeaves([{ shape: [2, 4, 5, 5], seed: 1 }, { shape: [6, 2, 3, 3], seed: 2 }, { shape: [6], seed: 3 }], (x, w, b) => {
      gradCheck(() => weighted(conv2d(x!, w!, b!, { stride: 2, padding: 1, groups: 2 })), [x!, w!, b!], 1e-7);
    });
  });

  it('conv2d: depthwise, dilation 2, asymmetric stride', () => {
    withLeaves([{ shape: [1, 3, 6, 6], seed: 4 }, { shape: [3, 1, 3, 3], seed: 5 }, { shape: [3], seed: 6 }], (x, w, b) => {
      gradCheck(() => weighted(conv2d(x!, w!, b!, { stride: [1, 2], padding: 2, dilation: 2, groups: 3 })), [x!, w!, b!], 1e-7);
    });
  });

  it('conv2d: squared loss (non-linear in the output)', () => {
    withLeaves([{ shape: [1, 2, 4, 4], seed: 7 }, { shape: [3, 2, 3, 3], seed: 8 }], (x, w) => {
      gradCheck(() => conv2d(x!, w!, null, { padding: 1 }).pow(2).sum(), [x!, w!], 1e-6);
    });
  });

  it('linear: input, weight, bias (batched input)', () => {
    withLeaves([{ shape: [2, 3, 4], seed: 9 }, { shape: [5, 4], seed: 10 }, { shape: [5], seed: 11 }], (x, w, b) => {
      gradCheck(() => weighted(linear(x!, w!, b!)).add(linear(x!, w!, b!).pow(2).sum()), [x!, w!, b!], 1e-6);
    });
  });

  it('batchNorm train mode: input, weight, bias (through the batch statistics)', () => {
    withLeaves([{ shape: [3, 2, 2, 2], seed: 12, scale: 2 }, { shape: [2], seed: 13 }, { shape: [2], seed: 14 }], (x, w, b) => {
      const f = () => weighted(batchNorm(x!, { weight: w!, bias: b!, runningMean: null, runningVar: null, eps: 1e-5 }, true));
      gradCheck(f, [x!, w!, b!], 1e-6);
    });
  });

  it('batchNorm train mode with running stats (their update does not disturb the gradient)', () => {
    const rm = keep(zeros([2], { dtype: 'float64' }));
    const rv = tidy(() => zeros([2], { dtype: 'float64' }).add(1)); // outside any scope: kept
    try {
      withLeaves([{ shape: [4, 2, 3, 1], seed: 15 }, { shape: [2], seed: 16 }, { shape: [2], seed: 17 }], (x, w, b) => {
        gradCheck(() => batchNorm(x!, { weight: w!, bias: b!, runningMean: rm, runningVar: rv, eps: 1e-3 }, true).pow(2).mul(f64([4, 2, 3, 1], 3)).sum(), [x!, w!, b!], 1e-6);
      });
    } finally {
      dispose([rm, rv]);
    }
  });

  it('batchNorm eval mode: input, weight, bias', () => {
    const rm = keep(f64([3], 20));
    const rv = tidy(() => f64([3], 21).abs().add(0.5));
    try {
      withLeaves([{ shape: [2, 3, 2, 2], seed: 18 }, { shape: [3], seed: 19 }, { shape: [3], seed: 22 }], (x, w, b) => {
        gradCheck(() => weighted(batchNorm(x!, { weight: w!, bias: b!, runningMean: rm, runningVar: rv, eps: 1e-5 })), [x!, w!, b!], 1e-7);
      });
    } finally {
      dispose([rm, rv]);
    }
  });

  it('softmax, logSoftmax, klDivBatchmean (both arguments)', () => {
    withLeaves([{ shape: [3, 4], seed: 23 }, { shape: [3, 4], seed: 24 }], (a, b) => {
      gradCheck(() => klDivBatchmean(logSoftmax(a!, 1), softmax(b!, 1)), [a!, b!], 1e-7);
      gradCheck(() => weighted(softmax(a!, 0)), [a!], 1e-7);
    });
  });

  it('crossEntropy and mseLoss', () => {
    withLeaves([{ shape: [4, 3], seed: 25 }, { shape: [4, 3], seed: 26 }], (a, b) => {
      const targets = int64([0, 2, 1, 2]);
      gradCheck(() => crossEntropy(a!, targets), [a!], 1e-7);
      gradCheck(() => mseLoss(a!, b!), [a!, b!], 1e-7);
    });
  });

  it('pooling, pad (with crop), cat, slice, indexSelect with repeats, expand, var', () => {
    withLeaves([{ shape: [1, 2, 4, 4], seed: 27 }, { shape: [3, 2], seed: 28 }], (x, m) => {
      gradCheck(() => weighted(maxPool2d(x!, { kernel: 2, stride: 1 })), [x!], 1e-7);
      gradCheck(() => weighted(avgPool2d(x!, { kernel: 3, stride: 2, padding: 1, countIncludePad: false })), [x!], 1e-7);
      gradCheck(() => weighted(adaptiveAvgPool2d(x!, 3)), [x!], 1e-7);
      gradCheck(() => weighted(pad(x!, [1, -1, -1, 2])), [x!], 1e-7);
      gradCheck(() => weighted(cat([m!, m!.mul(2)], 1)), [m!], 1e-7);
      gradCheck(() => weighted(x!.slice(3, 0, 4, 2)), [x!], 1e-7);
      gradCheck(() => weighted(m!.indexSelect(0, int64([2, 0, 2]))), [m!], 1e-7);
      gradCheck(() => weighted(m!.reshape([3, 1, 2]).expand([3, 4, 2])), [m!], 1e-7);
      gradCheck(() => m!.var([0]).add(m!.var(undefined, false)).sum(), [m!], 1e-6);
      gradCheck(() => weighted(sigmoid(m!).add(hardtanh(m!, -0.5, 0.5))), [m!], 1e-7);
    });
  });
});

describe('straight-through round path', () => {
  // Values chosen away from the .5 rounding boundaries.
  const xs = [0.26, -0.61, 1.37, -2.2, 0.04, 3.33, -0.35];
  const s0 = 0.3;

  it('loss = Σ (roundSte(x/s)·s)² matches the analytic STE gradient for x and s', () => {
    const x = keep(tensor(Float64Array.from(xs)).requiresGrad_());
    const s = keep(tensor(new Float64Array([s0]), []).requiresGrad_());
    try {
      tidy(() => {
        const loss = x.div(s).roundSte().mul(s).pow(2).sum();
        loss.backward();
        // y = q·s with q = round(x/s); STE: ∂q/∂x = 1/s, ∂q/∂s = −x/s²
        const q = xs.map((v) => Math.round(v / s0));
        const y = q.map((qi) => qi * s0);
        const gx = y.map((yi) => 2 * yi);
        const gs = xs.reduce((acc, v, i) => acc + 2 * y[i]! * (q[i]! - v / s0), 0);
        assertClose([loss.item()], [y.reduce((a, v) => a + v * v, 0)], 1e-12, 1e-12);
        assertClose(vals(x.grad!), gx, 1e-12, 1e-12);
        assertClose([s.grad!.item()], [gs], 1e-12, 1e-12);
      });
    } finally {
      dispose([x, s]);
    }
  });

  it('with clamping to the integer grid (LSQ-style): clamped elements pass the bound to s and nothing to x', () => {
    const lo = -4, hi = 3;
    const x = keep(tensor(Float64Array.from(xs)).requiresGrad_());
    const s = keep(tensor(new Float64Array([s0]), []).requiresGrad_());
    try {
      tidy(() => {
        x.div(s).clamp(lo, hi).roundSte().mul(s).sub(x).pow(2).sum().backward();
        let gs = 0;
        const gx: number[] = [];
        xs.forEach((v) => {
          const u = v / s0;
          const inside = u > lo && u < hi;
          const q = inside ? Math.round(u) : u <= lo ? lo : hi;
          const r = 2 * (q * s0 - v); // ∂loss/∂y
          gx.push(r * ((inside ? 1 : 0) - 1)); // y depends on x through q (STE) and the −x term
          gs += r * (inside ? q - u : q);
        });
        assertClose(vals(x.grad!), gx, 1e-12, 1e-12);
        assertClose([s.grad!.item()], [gs], 1e-12, 1e-12);
        assert.ok(xs.some((v) => v / s0 > hi) && xs.some((v) => v / s0 < lo), 'the data exercises both bounds');
      });
    } finally {
      dispose([x, s]);
    }
  });

  it('per-channel scale [C,1] broadcast over rows', () => {
    const x = keep(f64([2, 3], 30, 2).requiresGrad_());
    const s = keep(tensor(new Float64Array([0.25, 0.4]), [2, 1]).requiresGrad_());
    try {
      tidy(() => {
        x.div(s).roundSte().mul(s).pow(2).sum().backward();
        const xv = vals(x), sv = [0.25, 0.4];
        const gs = [0, 0];
        const gx = xv.map((v, i) => {
          const c = Math.floor(i / 3);
          const q = Math.round(v / sv[c]!);
          gs[c]! += 2 * q * sv[c]! * (q - v / sv[c]!);
          return 2 * q * sv[c]!;
        });
        assertClose(vals(x.grad!), gx, 1e-12, 1e-12);
        assertClose(vals(s.grad!), gs, 1e-12, 1e-12);
      });
    } finally {
      dispose([x, s]);
    }
  });
});

describe('autograd switches', () => {
  it('requiresGrad_ and requiresGrad', () => tidy(() => {
    const x = tensor([1, 2]);
    assert.equal(x.requiresGrad, false);
    x.requiresGrad_();
    assert.equal(x.requiresGrad, true);
    assert.equal(x.mul(2).requiresGrad, true);
    x.requiresGrad_(false);
    assert.equal(x.mul(2).requiresGrad, false);
    assert.equal(x.grad, null);
  }));

  it('noGrad turns off recording, restores it (also after a throw), nests', () => tidy(() => {
    const x = tensor([1, 2]).requiresGrad_();
    const y = noGrad(() => x.mul(3));
    assert.equal(y.requiresGrad, false);
    assertThrows(() => y.sum().backward(), Error, /^Error in backward: element 0 of tensors does not require grad/);
    assert.equal(x.mul(3).requiresGrad, true, 'recording is back on');
    assert.throws(() => noGrad(() => { throw new Error('boom'); }), /boom/);
    assert.equal(x.mul(3).requiresGrad, true, 'restored after a throw');
    noGrad(() => {
      noGrad(() => assert.equal(x.mul(2).requiresGrad, false));
      assert.equal(x.mul(2).requiresGrad, false, 'inner noGrad does not turn recording back on');
    });
    assert.equal(noGrad(() => 42), 42);
  }));

  it('zeroGrad clears the gradient; backward then starts afresh', () => tidy(() => {
    const x = tensor([1, 2]).requiresGrad_();
    x.mul(x).sum().backward();
    assert.deepEqual(vals(x.grad!), [2, 4]);
    x.zeroGrad();
    assert.equal(x.grad, null);
    x.mul(5).sum().backward();
    assert.deepEqual(vals(x.grad!), [5, 5]);
  }));

  it('gradients accumulate over two backward calls', () => tidy(() => {
    const x = tensor([1, 2, 3]).requiresGrad_();
    x.mul(x).sum().backward();
    x.mul(10).sum().backward();
    assert.deepEqual(vals(x.grad!), [12, 14, 16]);
  }));

  it('retainGraph allows a second backward through the same graph; without it the error is clear', () => tidy(() => {
    const x = tensor([1, 2]).requiresGrad_();
    const loss = x.exp().sum();
    loss.backward(undefined, true);
    loss.backward();
    assertClose(vals(x.grad!), [2 * Math.E, 2 * Math.exp(2)]);
    const l2 = x.exp().sum();
    l2.backward();
    assertThrows(() => l2.backward(), Error, /^Error in backward: Trying to backward through the graph a second time/);
  }));

  it('backward of a non-scalar takes an explicit gradient', () => tidy(() => {
    const x = tensor([1, 2, 3]).requiresGrad_();
    x.mul(x).backward(tensor([1, 0, 2]));
    assert.deepEqual(vals(x.grad!), [2, 0, 12]);
    assertThrows(() => x.mul(2).backward(), Error, /^Error in backward: backward\(\) without a gradient needs a scalar, got 3 elements/);
  }));

  it('detach cuts the graph but shares the values', () => tidy(() => {
    const x = tensor([1, 2]).requiresGrad_();
    const d = x.mul(3).detach();
    assert.equal(d.requiresGrad, false);
    assert.deepEqual(vals(d), [3, 6]);
    x.mul(d).sum().backward(); // ∂/∂x (x·d) with d constant = d
    assert.deepEqual(vals(x.grad!), [3, 6]);
  }));

  it('assign() writes into a parameter in place without touching its grad flag', () => tidy(() => {
    const p = tensor([1, 2]).requiresGrad_();
    p.assign(tensor([5, 6]));
    assert.deepEqual(vals(p), [5, 6]);
    assert.equal(p.requiresGrad, true);
    p.mul(p).sum().backward();
    assert.deepEqual(vals(p.grad!), [10, 12]);
    p.assign(tensor([0]));
    assert.deepEqual(vals(p), [0, 0], 'broadcasts');
  }));
});
