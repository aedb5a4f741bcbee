/** Adam and SGD steps against the torch.optim update formulas. */
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, tensor, tidy, keep, dispose, liveTensors, Adam, SGD, manualSeed, rngState, setRngState, rand, randint } from '../src/engine/index.js';
import { assertClose, assertThrows, seq, vals } from './helpers/engine-check.js';

let live0 = 0;
beforeEach(() => {
  live0 = liveTensors();
});
afterEach(() => {
  assert.equal(liveTensors(), live0, 'native tensors leaked by the test (optimiser state not disposed?)');
});

const P0 = seq(6, 1);
const G1 = seq(6, 2);
const param = (dtype: 'float64' | 'float32' = 'float64'): Tensor =>
  keep(tensor(dtype === 'float64' ? Float64Array.from(P0) : Float32Array.from(P0), [2, 3]).requiresGrad_());

/** Sets p.grad to exactly g (through backward of Σ p·g). */
function setGrad(p: Tensor, g: number[]): void {
  p.zeroGrad();
  tidy(() => p.mul(tensor(p.dtype === 'float64' ? Float64Array.from(g) : Float32Array.from(g), p.shape)).sum().backward());
}

/** Reference Adam (torch.optim.Adam, amsgrad off) over flat arrays; lr is one number or one per element. */
class RefAdam {
  m: number[];
  v: number[];
  t = 0;
  constructor(n: number, readonly b1 = 0.9, readonly b2 = 0.999, readonly eps = 1e-8, readonly wd = 0) {
    this.m = new Array(n).fill(0);
    this.v = new Array(n).fill(0);
  }
  step(p: number[], g: number[], lr: number | number[]): number[] {
    this.t++;
    const bc1 = 1 - this.b1 ** this.t, bc2 = 1 - this.b2 ** this.t;
    return p.map((pi, i) => {
      const gi = g[i]! + this.wd * pi;
      this.m[i] = this.b1 * this.m[i]! + (1 - this.b1) * gi;
      this.v[i] = this.b2 * this.v[i]! + (1 - this.b2) * gi * gi;
      const denom = Math.sqrt(this.v[i]!) / Math.sqrt(bc2) + this.eps;
      const l = typeof lr === 'number' ? lr : lr[i]!;
      return pi - (l / bc1) * (this.m[i]! / denom);
    });
  }
}

describe('Adam', () => {
  it('two steps with a learning rate changed between them match the formula (bias correction)', () => {
    const p = param();
    const opt = new Adam([{ params: [p], lr: 0.1 }]);
    try {
      const ref = new RefAdam(6);
      setGrad(p, G1);
      opt.step();
      let expected = ref.step(P0, G1, 0.1);
      assertClose(vals(p), expected, 1e-14, 1e-12, 'after step 1');
      // first step moves every element by ≈ lr·sign(g) (bias-corrected m/√v = g/|g|)
      assertClose(vals(p).map((v, i) => v - P0[i]!), G1.map((g) => -0.1 * Math.sign(g)), 1e-6, 1e-5);

      const G2 = vals(p).map((v) => 2 * v); // gradient of Σ p² at the new point
      p.zeroGrad();
      tidy(() => p.pow(2).sum().backward());
      opt.groups[0]!.lr = 0.01;
      opt.step();
      expected = ref.step(expected, G2, 0.01);
      assertClose(vals(p), expected, 1e-14, 1e-12, 'after step 2');
    } finally {
      opt.dispose();
      dispose(p);
    }
  });

  it('a per-row tensor learning rate [2,1] broadcasts over the parameter', () => {
    const p = param();
    const lr = keep(tensor(new Float64Array([0.1, 0.001]), [2, 1]));
    const opt = new Adam([{ params: [p], lr }]);
    try {
      const ref = new RefAdam(6);
      const lrs = [0.1, 0.1, 0.1, 0.001, 0.001, 0.001];
      setGrad(p, G1);
      opt.step();
      let expected = ref.step(P0, G1, lrs);
      assertClose(vals(p), expected, 1e-14, 1e-12, 'step 1');
      const G2 = seq(6, 3);
      setGrad(p, G2);
      opt.step();
      expected = ref.step(expected, G2, lrs);
      assertClose(vals(p), expected, 1e-14, 1e-12, 'step 2');
    } finally {
      opt.dispose();
      dispose([p, lr]);
    }
  });

  it('betas, eps and weight decay (L2 added to the gradient, as torch.optim.Adam)', () => {
    const p = param();
    const opt = new Adam([{ params: [p], lr: 0.05 }], { betas: [0.8, 0.9], eps: 1e-3, weightDecay: 0.1 });
    try {
      const ref = new RefAdam(6, 0.8, 0.9, 1e-3, 0.1);
      let expected = P0;
      for (let k = 0; k < 3; k++) {
        const g = seq(6, 10 + k);
        setGrad(p, g);
        opt.step();
        expected = ref.step(expected, g, 0.05);
      }
      assertClose(vals(p), expected, 1e-14, 1e-12);
    } finally {
      opt.dispose();
      dispose(p);
    }
  });

  it('several groups; parameters without a gradient are skipped; zeroGrad clears all', () => {
    const a = param();
    const b = keep(tensor(new Float64Array([1, 2])).requiresGrad_());
    const c = keep(tensor(new Float64Array([5])).requiresGrad_());
    const opt = new Adam([{ params: [a, c], lr: 0.1 }, { params: [b], lr: 0.2 }]);
    try {
      setGrad(a, G1);
      setGrad(b, [1, -1]);
      opt.step();
      assertClose(vals(a), new RefAdam(6).step(P0, G1, 0.1), 1e-14, 1e-12);
      assertClose(vals(b), [0.8, 2.2], 1e-7, 1e-7);
      assert.deepEqual(vals(c), [5], 'no gradient, no update');
      opt.zeroGrad();
      for (const t of [a, b, c]) assert.equal(t.grad, null);
    } finally {
      opt.dispose();
      dispose([a, b, c]);
    }
  });

  it('float32 parameters follow the same formula (to float32 precision)', () => {
    const p = param('float32');
    const opt = new Adam([{ params: [p], lr: 0.1 }]);
    try {
      const ref = new RefAdam(6);
      setGrad(p, G1);
      opt.step();
      const expected = ref.step(Array.from(Float32Array.from(P0)), Array.from(Float32Array.from(G1)), 0.1);
      assertClose(vals(p), expected, 1e-6, 1e-5);
      assert.equal(p.dtype, 'float32');
    } finally {
      opt.dispose();
      dispose(p);
    }
  });
});

describe('SGD', () => {
  it('momentum: two steps (buf = g at the first step, then momentum·buf + g)', () => {
    const p = param();
    const opt = new SGD([{ params: [p], lr: 0.1 }], { momentum: 0.9 });
    try {
      setGrad(p, G1);
      opt.step();
      const p1 = P0.map((v, i) => v - 0.1 * G1[i]!);
      assertClose(vals(p), p1, 1e-15, 1e-14, 'step 1');
      const G2 = seq(6, 4);
      setGrad(p, G2);
      opt.groups[0]!.lr = 0.05;
      opt.step();
      const p2 = p1.map((v, i) => v - 0.05 * (0.9 * G1[i]! + G2[i]!));
      assertClose(vals(p), p2, 1e-15, 1e-14, 'step 2');
    } finally {
      opt.dispose();
      dispose(p);
    }
  });

  it('plain SGD and weight decay', () => {
    const p = param();
    const q = keep(tensor(Float64Array.from(P0), [2, 3]).requiresGrad_());
    const plain = new SGD([{ params: [p], lr: 0.5 }]);
    const wd = new SGD([{ params: [q], lr: 0.5 }], { momentum: 0.5, weightDecay: 0.01 });
    try {
      setGrad(p, G1);
      plain.step();
      assertClose(vals(p), P0.map((v, i) => v - 0.5 * G1[i]!), 1e-15, 1e-14);
      setGrad(q, G1);
      wd.step();
      const g1 = P0.map((v, i) => G1[i]! + 0.01 * v);
      const q1 = P0.map((v, i) => v - 0.5 * g1[i]!);
      assertClose(vals(q), q1, 1e-15, 1e-14);
      setGrad(q, G1);
      wd.step();
      const q2 = q1.map((v, i) => v - 0.5 * (0.5 * g1[i]! + G1[i]! + 0.01 * v));
      assertClose(vals(q), q2, 1e-15, 1e-14);
    } finally {
      plain.dispose();
      wd.dispose();
      dispose([p, q]);
    }
  });

  it('a tensor learning rate is refused with a clear error', () => {
    const p = param();
    const lr = keep(tensor([0.1]));
    const opt = new SGD([{ params: [p], lr }]);
    try {
      setGrad(p, G1);
      assertThrows(() => opt.step(), TypeError, /^Error in SGD\.step: lr must be a number$/);
    } finally {
      dispose([p, lr]);
    }
  });
});

describe('continuing an optimisation exactly (a run resumed inside a unit)', () => {
  for (const dtype of ['float32', 'float64'] as const) it(`Adam restored from a snapshot takes the steps the original would have taken (${dtype})`, () => {
    const grads = [G1, seq(6, -3), seq(6, 5), seq(6, 0.5)];
    const [p, q] = [param(dtype), param(dtype)];
    const a = new Adam([{ params: [p], lr: 0.05 }]);
    const b = new Adam([{ params: [q], lr: 0.05 }]);
    try {
      assert.deepEqual(a.snapshot(), [null], 'no state before the first step');
      for (const g of grads.slice(0, 2)) {
        setGrad(p, g);
        a.step();
      }
      const saved = a.snapshot();
      assert.equal(saved[0]!.step, 2);
      assert.ok(saved[0]!.m instanceof (dtype === 'float32' ? Float32Array : Float64Array), 'moments in the parameter\'s dtype');
      tidy(() => q.assign(p));
      b.restore(saved);
      for (const g of grads.slice(2)) {
        setGrad(p, g);
        a.step();
        setGrad(q, g);
        b.step();
      }
      assert.deepEqual(vals(q), vals(p));
      assert.throws(() => b.restore([]), /Adam\.restore: 0 saved states for 1 parameters/);
    } finally {
      a.dispose();
      b.dispose();
      dispose([p, q]);
    }
  });

  it('a random generator set back to a saved state draws the same numbers again', () => {
    manualSeed(7);
    const state = rngState('cpu');
    const draw = () => tidy(() => [...vals(rand([5])), ...vals(randint(0, 1000, [4]))]);
    const first = draw();
    assert.notDeepEqual(draw(), first);
    setRngState('cpu', state);
    assert.deepEqual(draw(), first);
    assert.throws(() => setRngState('cpu', new Uint8Array(3)), /Error in setRngState: .*RNG state size to be 3/);
  });
});
