/** Every engine op against small hand-computed values (forward only; gradients are in engine-grad). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  Tensor, tensor, int64, scalar, zeros, ones, full, arange, randn, rand, randint, bernoulli, manualSeed, tidy,
  where, maxPool2d, avgPool2d, adaptiveAvgPool2d, pad, cat, softmax, logSoftmax, klDivBatchmean, mseLoss, crossEntropy,
  relu, relu6, hardtanh, sigmoid, conv2d, linear, batchNorm, engineInfo, setThreads, noGrad,
} from '../src/engine/index.js';
import { assertClose, vals, f64, naiveConv2d, analyticGrads, type ConvOpts } from './helpers/engine-check.js';
import { failOnLeaks } from './helpers/engine-check.js';

failOnLeaks();
const t = (fn: () => void) => () => tidy(fn);

describe('creation', () => {
  it('tensor() takes its dtype from the typed array', t(() => {
    const f = tensor(new Float32Array([1, 2, 3, 4]), [2, 2]);
    assert.deepEqual(f.shape, [2, 2]);
    assert.equal(f.dtype, 'float32');
    assert.equal(f.device, 'cpu');
    assert.equal(f.rank, 2);
    assert.equal(f.size, 4);
    assert.ok(f.data() instanceof Float32Array);
    assert.deepEqual(vals(f), [1, 2, 3, 4]);

    const d = tensor(new Float64Array([0.1, 0.2]));
    assert.equal(d.dtype, 'float64');
    assert.deepEqual(Array.from(d.data() as Float64Array), [0.1, 0.2]); // exact: no float32 rounding

    const i = tensor(new Int32Array([-7, 8]), [2, 1]);
    assert.equal(i.dtype, 'int32');
    assert.deepEqual(i.shape, [2, 1]);
    assert.ok(i.data() instanceof Int32Array);
    assert.deepEqual(vals(i), [-7, 8]);

    const l = tensor(new BigInt64Array([1n, -2n, 9007199254740993n]));
    assert.equal(l.dtype, 'int64');
    const ld = l.data() as BigInt64Array;
    assert.ok(ld instanceof BigInt64Array);
    assert.equal(ld[2], 9007199254740993n); // beyond 2^53 survives the round trip

    const b = tensor(new Uint8Array([1, 0, 1]), [3], { dtype: 'bool' });
    assert.equal(b.dtype, 'bool');
    assert.deepEqual(vals(b), [1, 0, 1]);
    // any non-zero byte is true (and stored as 1: ops on the bool stay right)
    const b2 = tensor(new Uint8Array([2, 0, 255]), [3], { dtype: 'bool' });
    assert.deepEqual(vals(b2), [1, 0, 1]);
    assert.deepEqual(vals(b2.logicalNot()), [0, 1, 0]);
    assert.deepEqual(vals(b2.eq(b)), [1, 1, 1]);
    assert.equal(tensor(new Uint8Array([200])).dtype, 'uint8');
    assert.equal(tensor(new Int8Array([-3])).dtype, 'int8');

    const plain = tensor([1.5, 2.5]);
    assert.equal(plain.dtype, 'float32');
    assert.deepEqual(vals(plain), [1.5, 2.5]);

    // opts.dtype is honoured for plain numbers and converts a typed array of another type
    const cases: [ReturnType<typeof tensor>, string, number[]][] = [
      [tensor([1.5, -2], [2], { dtype: 'float64' }), 'float64', [1.5, -2]],
      [tensor([3, -4], [2], { dtype: 'int32' }), 'int32', [3, -4]],
      [tensor([3, -4], [2], { dtype: 'int64' }), 'int64', [3, -4]],
      [tensor([1, 0, 2], [3], { dtype: 'bool' }), 'bool', [1, 0, 1]],
      [tensor([7], [1], { dtype: 'uint8' }), 'uint8', [7]],
      [tensor(new Float32Array([1.5, 2]), [2], { dtype: 'float64' }), 'float64', [1.5, 2]],
      [tensor(new Int32Array([1, 0]), [2], { dtype: 'float32' }), 'float32', [1, 0]],
    ];
    for (const [x, dtype, v] of cases) {
      assert.equal(x.dtype, dtype);
      assert.deepEqual(vals(x), v);
    }

    assert.deepEqual(vals(int64([3, 1])), [3, 1]);
    assert.equal(int64([3, 1]).dtype, 'int64');
    const s = scalar(3.5);
    assert.deepEqual(s.shape, []);
    assert.equal(s.rank, 0);
    assert.equal(s.size, 1);
    assert.equal(s.item(), 3.5);
    assert.equal(s.toString(), 'Tensor(float32, [])');
  }));

  it('tensor() copies the data (later writes to the array do not show)', t(() => {
    const arr = new Float32Array([1, 2]);
    const x = tensor(arr);
    arr[0] = 100;
    assert.deepEqual(vals(x), [1, 2]);
    const out = x.data();
    out[1] = 50;
    assert.deepEqual(vals(x), [1, 2]);
  }));

  it('tensor() reads a typed array view at its byte offset', t(() => {
    const buf = new Float32Array([9, 9, 1, 2, 3, 9]);
    const view = new Float32Array(buf.buffer, 8, 3);
    assert.deepEqual(vals(tensor(view)), [1, 2, 3]);
  }));

  it('zeros, ones, full, arange', t(() => {
    const z = zeros([2, 3]);
    assert.deepEqual(z.shape, [2, 3]);
    assert.equal(z.dtype, 'float32');
    assert.deepEqual(vals(z), [0, 0, 0, 0, 0, 0]);
    assert.deepEqual(vals(ones([3], { dtype: 'int32' })), [1, 1, 1]);
    assert.equal(ones([3], { dtype: 'int32' }).dtype, 'int32');
    assert.equal(zeros([2], { dtype: 'float64' }).dtype, 'float64');
    assert.deepEqual(zeros([0, 3]).shape, [0, 3]);
    assert.deepEqual(vals(full([2, 2], 7.5)), [7.5, 7.5, 7.5, 7.5]);
    assert.deepEqual(vals(full([2], -1, { dtype: 'int64' })), [-1, -1]);
    const a = arange(0, 5);
    assert.equal(a.dtype, 'int64');
    assert.deepEqual(vals(a), [0, 1, 2, 3, 4]);
    assert.deepEqual(vals(arange(1, 2, 0.25, { dtype: 'float32' })), [1, 1.25, 1.5, 1.75]);
    assert.deepEqual(vals(arange(5, 0, -2)), [5, 3, 1]);
  }));

  it('randn is reproducible with manualSeed and roughly standard normal', t(() => {
    manualSeed(42);
    const a = randn([2000]);
    const b = randn([2000]);
    manualSeed(42);
    const a2 = randn([2000]);
    assert.deepEqual(vals(a), vals(a2));
    assert.notDeepEqual(vals(a), vals(b));
    manualSeed(43);
    assert.notDeepEqual(vals(randn([2000])), vals(a));
    assert.ok(Math.abs(a.mean().item()) < 0.1);
    assert.ok(Math.abs(a.var().item() - 1) < 0.15);
    assert.equal(randn([2], { dtype: 'float64' }).dtype, 'float64');
  }));

  it('rand is in [0, 1), reproducible', t(() => {
    manualSeed(7);
    const r = rand([5000]);
    manualSeed(7);
    assert.deepEqual(vals(rand([5000])), vals(r));
    const v = vals(r);
    assert.ok(v.every((x) => x >= 0 && x < 1));
    assert.ok(Math.min(...v) < 0.01 && Math.max(...v) > 0.99);
    assert.ok(Math.abs(r.mean().item() - 0.5) < 0.03);
  }));

  it('randint is in [low, high), int64, hits every value, reproducible', t(() => {
    manualSeed(3);
    const r = randint(3, 7, [2000]);
    assert.equal(r.dtype, 'int64');
    assert.deepEqual(r.shape, [2000]);
    const v = vals(r);
    assert.ok(v.every((x) => Number.isInteger(x) && x >= 3 && x < 7));
    assert.deepEqual([...new Set(v)].sort(), [3, 4, 5, 6]);
    manualSeed(3);
    assert.deepEqual(vals(randint(3, 7, [2000])), v);
  }));

  it('bernoulli gives 0/1 with the given probability, reproducible', t(() => {
    const p = full([4000], 0.3);
    manualSeed(11);
    const b = bernoulli(p);
    assert.equal(b.dtype, 'float32');
    const v = vals(b);
    assert.ok(v.every((x) => x === 0 || x === 1));
    assert.ok(Math.abs(b.mean().item() - 0.3) < 0.04);
    manualSeed(11);
    assert.deepEqual(vals(bernoulli(p)), v);
    assert.deepEqual(vals(bernoulli(tensor([0, 1, 0, 1]))), [0, 1, 0, 1]);
  }));

  it('engineInfo reports torch version, threads and the BLAS it was built with', () => {
    const info = engineInfo();
    assert.match(info.torch, /^\d+\.\d+\.\d+$/);
    assert.ok(Number.isInteger(info.threads) && info.threads >= 1);
    assert.equal(typeof info.cuda, 'boolean');
    assert.match(info.blas, /^[a-z0-9_]+$/i); // one word: generic, mkl, open, ...
  });
});

describe('elementwise', () => {
  const A = () => tensor([1, 2, 3, 4], [2, 2]);
  it('add/sub/mul/div with broadcasting', t(() => {
    const b = tensor([10, 20]);
    assert.deepEqual(vals(A().add(b)), [11, 22, 13, 24]);
    assert.deepEqual(vals(A().sub(b)), [-9, -18, -7, -16]);
    assert.deepEqual(vals(A().mul(b)), [10, 40, 30, 80]);
    assertClose(vals(A().div(b)), [0.1, 0.1, 0.3, 0.2]);
    const col = tensor([1, 2], [2, 1]);
    const row = tensor([10, 20, 30], [1, 3]);
    const s = col.add(row);
    assert.deepEqual(s.shape, [2, 3]);
    assert.deepEqual(vals(s), [11, 21, 31, 12, 22, 32]);
    assert.deepEqual(A().add(tensor([5], [])).shape, [2, 2]);
  }));

  it('scalars on either side keep the tensor dtype', t(() => {
    assert.deepEqual(vals(A().add(1)), [2, 3, 4, 5]);
    assert.deepEqual(vals(A().sub(0.5)), [0.5, 1.5, 2.5, 3.5]);
    assert.deepEqual(vals(A().mul(-2)), [-2, -4, -6, -8]);
    assert.deepEqual(vals(A().div(4)), [0.25, 0.5, 0.75, 1]);
    assert.equal(A().add(1).dtype, 'float32');
    // A number never widens: a 0-dim float32 stays float32 (like a Python scalar in torch).
    const s = scalar(3).div(4);
    assert.equal(s.dtype, 'float32');
    assert.equal(s.item(), 0.75);
    assert.equal(f64([2]).mul(3).dtype, 'float64');
    assert.equal(tensor(new Int32Array([1, 2])).add(tensor(new Int32Array([3, 4]))).dtype, 'int32');
  }));

  it('neg, abs, pow, exp, log, sqrt', t(() => {
    const x = tensor([-2, -0.5, 0.5, 3]);
    assert.deepEqual(vals(x.neg()), [2, 0.5, -0.5, -3]);
    assert.deepEqual(vals(x.abs()), [2, 0.5, 0.5, 3]);
    assert.deepEqual(vals(x.pow(2)), [4, 0.25, 0.25, 9]);
    assert.deepEqual(vals(tensor([2, 3, 4]).pow(tensor([3, 2, 0.5]))), [8, 9, 2]);
    assert.deepEqual(vals(tensor([1, 2], [2, 1]).pow(tensor([1, 2, 3]))), [1, 1, 1, 2, 4, 8]);
    assertClose(vals(tensor([0, 1, -1]).exp()), [1, Math.E, 1 / Math.E]);
    assertClose(vals(tensor([1, Math.E, 10]).log()), [0, 1, Math.log(10)]);
    assert.deepEqual(vals(tensor([0, 4, 2.25]).sqrt()), [0, 2, 1.5]);
    assert.ok(Number.isNaN(vals(tensor([-1]).sqrt())[0]));
    assert.equal(vals(tensor([0]).log())[0], -Infinity);
  }));

  it('floor and ceil', t(() => {
    assert.deepEqual(vals(tensor([-1.5, -0.5, 0.5, 1.7, 2]).floor()), [-2, -1, 0, 1, 2]);
    assert.deepEqual(vals(tensor([-1.5, 0.2, 1]).ceil()), [-1, 1, 1]);
  }));

  it('round is half to even, -0.5 → -0', t(() => {
    const r = vals(tensor([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49, 0.51, 3.5]).round());
    assert.deepEqual(r, [0, 2, 2, -0, -2, -2, 0, 1, 4]);
    assert.ok(Object.is(r[3], -0), 'round(-0.5) is -0');
    assert.ok(Object.is(r[0], 0), 'round(0.5) is +0');
  }));

  it('roundSte rounds forward (half to even) with gradient exactly 1', t(() => {
    const x = tensor([0.5, 1.5, 2.5, -0.5, 0.3, 1.7]).requiresGrad_();
    const y = x.roundSte();
    // (round(x) − x).detach() + x is exact (Sterbenz), except that −0 comes out as +0
    assert.deepEqual(vals(y).map((v) => v + 0), [0, 2, 2, 0, 0, 2]);
    manualSeed(5);
    const big = randn([10000]).mul(50);
    assert.deepEqual(vals(big.roundSte()).map((v) => v + 0), vals(big.round()).map((v) => v + 0));
    y.mul(tensor([1, 2, 3, 4, 5, 6])).sum().backward();
    assert.deepEqual(vals(x.grad!), [1, 2, 3, 4, 5, 6]);
  }));

  it('sign, tanh, clone, contiguous, to', t(() => {
    assert.deepEqual(vals(tensor([-3, 0, 2]).sign()), [-1, 0, 1]);
    assertClose(vals(tensor([0, 1]).tanh()), [0, Math.tanh(1)]);
    const x = tensor([1, 2]);
    const c = x.clone();
    x.assign(tensor([5, 6]));
    assert.deepEqual(vals(c), [1, 2]);
    assert.deepEqual(vals(x), [5, 6]);
    const p = tensor([1, 2, 3, 4, 5, 6], [2, 3]).permute([1, 0]).contiguous();
    assert.deepEqual(vals(p), [1, 4, 2, 5, 3, 6]);
    const d = tensor([1.7, -2.2]).to({ dtype: 'int64' });
    assert.equal(d.dtype, 'int64');
    assert.deepEqual(vals(d), [1, -2]);
    assert.equal(tensor([1]).to({ dtype: 'float64' }).dtype, 'float64');
  }));

  it('clamp with scalar bounds, open ends, tensor bounds', t(() => {
    const x = tensor([-2, -0.5, 0.5, 2]);
    assert.deepEqual(vals(x.clamp(-1, 1)), [-1, -0.5, 0.5, 1]);
    assert.deepEqual(vals(x.clamp(null, 0)), [-2, -0.5, 0, 0]);
    assert.deepEqual(vals(x.clamp(0, null)), [0, 0, 0.5, 2]);
    const lo = tensor([0, 0, 1, 1]);
    const hi = tensor([1, 1, 1.5, 1.5]);
    assert.deepEqual(vals(x.clamp(lo, hi)), [0, 0, 1, 1.5]);
    assert.deepEqual(vals(x.clamp(lo, 0.75)), [0, 0, 0.75, 0.75]); // min(max(x, lo), hi) as torch
    // per-row bounds broadcast
    const m = tensor([-5, 0, 5, -5, 0, 5], [2, 3]);
    assert.deepEqual(vals(m.clamp(tensor([-1, -2], [2, 1]), tensor([1, 2], [2, 1]))), [-1, 0, 1, -2, 0, 2]);
  }));

  it('clamp has gradient 0 where clamped (scalar and tensor bounds)', t(() => {
    const x = tensor([-2, -0.5, 0.5, 2]).requiresGrad_();
    x.clamp(-1, 1).mul(tensor([1, 2, 3, 4])).sum().backward();
    assert.deepEqual(vals(x.grad!), [0, 2, 3, 0]);
    x.zeroGrad();
    x.clamp(tensor([0, -1, 0, 0]), tensor([1, 1, 1, 3])).sum().backward();
    assert.deepEqual(vals(x.grad!), [0, 1, 1, 1]);
  }));

  it('where with tensors, scalars and broadcasting', t(() => {
    const c = tensor([1, 5, 2, 8]).gt(3);
    assert.deepEqual(vals(where(c, tensor([10, 20, 30, 40]), tensor([-1, -2, -3, -4]))), [-1, 20, -3, 40]);
    const s = where(c, 1, 0);
    assert.equal(s.dtype, 'float32');
    assert.deepEqual(vals(s), [0, 1, 0, 1]);
    assert.deepEqual(vals(where(c, tensor([7, 7, 7, 7]), 0)), [0, 7, 0, 7]);
    assert.deepEqual(vals(where(c, 0.5, tensor([1, 2, 3, 4]))), [1, 0.5, 3, 0.5]);
    const rowCond = tensor(new Uint8Array([1, 0]), [2, 1], { dtype: 'bool' });
    assert.deepEqual(vals(where(rowCond, tensor([1, 2, 3]), 0)), [1, 2, 3, 0, 0, 0]);
  }));

  it('comparisons and logical ops give bool', t(() => {
    const x = tensor([1, 2, 3]);
    const y = tensor([2, 2, 2]);
    const cases: [Tensor, number[]][] = [
      [x.lt(y), [1, 0, 0]], [x.le(y), [1, 1, 0]], [x.gt(y), [0, 0, 1]],
      [x.ge(y), [0, 1, 1]], [x.eq(y), [0, 1, 0]], [x.ne(y), [1, 0, 1]],
      [x.gt(1.5), [0, 1, 1]], [x.eq(3), [0, 0, 1]],
      [x.gt(1).logicalAnd(x.lt(3)), [0, 1, 0]], [x.gt(1).logicalNot(), [1, 0, 0]],
    ];
    for (const [r, e] of cases) {
      assert.equal(r.dtype, 'bool');
      assert.ok(r.data() instanceof Uint8Array);
      assert.deepEqual(vals(r), e);
    }
  }));

  it('maximum, minimum, matmul', t(() => {
    assert.deepEqual(vals(tensor([1, 5]).maximum(tensor([3, 2]))), [3, 5]);
    assert.deepEqual(vals(tensor([1, 5]).minimum(2)), [1, 2]);
    const m = tensor([1, 2, 3, 4, 5, 6], [2, 3]).matmul(tensor([1, 0, 0, 1, 1, 1], [3, 2]));
    assert.deepEqual(m.shape, [2, 2]);
    assert.deepEqual(vals(m), [4, 5, 10, 11]);
  }));
});

describe('reductions', () => {
  const X = () => tensor([1, 2, 3, 4, 5, 6], [2, 3]);
  it('sum and mean over all, one dim, several dims, keepdim', t(() => {
    const s = X().sum();
    assert.deepEqual(s.shape, []);
    assert.equal(s.item(), 21);
    assert.deepEqual(vals(X().sum([0])), [5, 7, 9]);
    const k = X().sum([1], true);
    assert.deepEqual(k.shape, [2, 1]);
    assert.deepEqual(vals(k), [6, 15]);
    assert.deepEqual(vals(X().sum([-1])), [6, 15]);
    assert.equal(X().mean().item(), 3.5);
    assert.deepEqual(vals(X().mean([1])), [2, 5]);
    assert.deepEqual(X().mean([0, 1], true).shape, [1, 1]);
    assert.equal(X().mean([0, 1]).item(), 3.5);
    const c = tensor([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2]);
    assert.deepEqual(vals(c.sum([0, 2])), [1 + 2 + 5 + 6, 3 + 4 + 7 + 8]);
  }));

  it('var unbiased (n−1) and biased (n)', t(() => {
    assertClose(vals(X().var([1])), [1, 1]);
    assertClose(vals(X().var([1], false)), [2 / 3, 2 / 3]);
    assertClose([X().var().item()], [17.5 / 5]);
    assertClose([X().var(undefined, false).item()], [17.5 / 6]);
    assertClose(vals(X().var([0])), [4.5, 4.5, 4.5]);
    const k = X().var([0], false, true);
    assert.deepEqual(k.shape, [1, 3]);
    assertClose(vals(k), [2.25, 2.25, 2.25]);
  }));

  it('amin and amax over dims', t(() => {
    const x = tensor([3, -1, 7, 0, 9, 2], [2, 3]);
    assert.equal(x.amax().item(), 9);
    assert.equal(x.amin().item(), -1);
    assert.deepEqual(vals(x.amin([1])), [-1, 0]);
    assert.deepEqual(vals(x.amax([0])), [3, 9, 7]);
    const k = x.amax([1], true);
    assert.deepEqual(k.shape, [2, 1]);
    assert.deepEqual(vals(k), [7, 9]);
    assert.deepEqual(x.amin([0, 1], true).shape, [1, 1]);
  }));

  it('argmax and topk', t(() => {
    const x = tensor([3, -1, 7, 0, 9, 2], [2, 3]);
    assert.deepEqual(vals(x.argmax(1)), [2, 1]);
    assert.equal(x.argmax(1).dtype, 'int64');
    assert.deepEqual(vals(x.topk(2, 1)), [2, 0, 1, 2]);
  }));
});

describe('pooling', () => {
  const G = () => arange(0, 16, 1, { dtype: 'float32' }).reshape([1, 1, 4, 4]);
  it('maxPool2d: kernel 2, stride 1, padding', t(() => {
    const m = maxPool2d(G(), { kernel: 2 });
    assert.deepEqual(m.shape, [1, 1, 2, 2]);
    assert.deepEqual(vals(m), [5, 7, 13, 15]);
    assert.deepEqual(vals(maxPool2d(G(), { kernel: 3, stride: 1 })), [10, 11, 14, 15]);
    assert.deepEqual(vals(maxPool2d(G(), { kernel: 2, stride: 2, padding: 1 })), [0, 2, 3, 8, 10, 11, 12, 14, 15]);
    assert.deepEqual(maxPool2d(arange(0, 25, 1, { dtype: 'float32' }).reshape([1, 1, 5, 5]), { kernel: 2, ceilMode: true }).shape, [1, 1, 3, 3]);
  }));

  it('avgPool2d: kernel 2, padding counted or not', t(() => {
    assert.deepEqual(vals(avgPool2d(G(), { kernel: 2 })), [2.5, 4.5, 10.5, 12.5]);
    const inc = avgPool2d(G(), { kernel: 2, stride: 2, padding: 1 });
    assert.deepEqual(inc.shape, [1, 1, 3, 3]);
    assert.deepEqual(vals(inc).slice(0, 3), [0, 0.75, 0.75]);
    const exc = avgPool2d(G(), { kernel: 2, stride: 2, padding: 1, countIncludePad: false });
    assert.deepEqual(vals(exc).slice(0, 3), [0, 1.5, 3]);
  }));

  it('adaptiveAvgPool2d: global, even and uneven bins', t(() => {
    const g = adaptiveAvgPool2d(G(), 1);
    assert.deepEqual(g.shape, [1, 1, 1, 1]);
    assert.equal(g.item(), 7.5);
    assert.deepEqual(vals(adaptiveAvgPool2d(G(), [2, 2])), [2.5, 4.5, 10.5, 12.5]);
    // 3×3 → 2×2: bins [0,2) and [1,3) in each direction
    const x = arange(0, 9, 1, { dtype: 'float32' }).reshape([1, 1, 3, 3]);
    assert.deepEqual(vals(adaptiveAvgPool2d(x, 2)), [2, 3, 5, 6]);
    const two = cat([G(), G().mul(2)], 1);
    assert.deepEqual(vals(adaptiveAvgPool2d(two, 1)), [7.5, 15]);
  }));
});

describe('shape ops', () => {
  const X = () => tensor([1, 2, 3, 4, 5, 6], [2, 3]);
  it('pad: constant, several dims, negative = crop', t(() => {
    const p = pad(X(), [1, 0]);
    assert.deepEqual(p.shape, [2, 4]);
    assert.deepEqual(vals(p), [0, 1, 2, 3, 0, 4, 5, 6]);
    const q = pad(X(), [0, 0, 1, 1], 9);
    assert.deepEqual(q.shape, [4, 3]);
    assert.deepEqual(vals(q), [9, 9, 9, 1, 2, 3, 4, 5, 6, 9, 9, 9]);
    assert.deepEqual(vals(pad(X(), [-1, 0])), [2, 3, 5, 6]);
    const c = pad(X(), [0, -1, -1, 0]);
    assert.deepEqual(c.shape, [1, 2]);
    assert.deepEqual(vals(c), [4, 5]);
    assert.deepEqual(vals(pad(X(), [1, -1])), [0, 1, 2, 0, 4, 5]);
  }));

  it('strided slice', t(() => {
    const a = arange(0, 10);
    assert.deepEqual(vals(a.slice(0, 1, 8, 2)), [1, 3, 5, 7]);
    assert.deepEqual(vals(a.slice(0, 5, 100, 2)), [5, 7, 9]);
    assert.deepEqual(vals(a.slice(0, -3, 10)), [7, 8, 9]);
    const m = arange(0, 12).reshape([3, 4]);
    const s = m.slice(1, 0, 4, 2);
    assert.deepEqual(s.shape, [3, 2]);
    assert.deepEqual(vals(s), [0, 2, 4, 6, 8, 10]);
    assert.deepEqual(vals(m.slice(0, 1, 3)), [4, 5, 6, 7, 8, 9, 10, 11]);
  }));

  it('indexSelect rows and columns, flip', t(() => {
    const x = tensor([1, 2, 3, 4, 5, 6], [3, 2]);
    const r = x.indexSelect(0, int64([2, 0, 2]));
    assert.deepEqual(r.shape, [3, 2]);
    assert.deepEqual(vals(r), [5, 6, 1, 2, 5, 6]);
    assert.deepEqual(vals(x.indexSelect(1, int64([1]))), [2, 4, 6]);
    assert.deepEqual(vals(x.flip([0])), [5, 6, 3, 4, 1, 2]);
  }));

  it('cat along dims', t(() => {
    const a = tensor([1, 2], [1, 2]);
    const b = tensor([3, 4, 5, 6], [2, 2]);
    const c0 = cat([a, b]);
    assert.deepEqual(c0.shape, [3, 2]);
    assert.deepEqual(vals(c0), [1, 2, 3, 4, 5, 6]);
    const c1 = cat([b, b], 1);
    assert.deepEqual(c1.shape, [2, 4]);
    assert.deepEqual(vals(c1), [3, 4, 3, 4, 5, 6, 5, 6]);
    assert.deepEqual(vals(cat([b, b], -1)), vals(c1));
  }));

  it('reshape, permute, flatten, unsqueeze, expand', t(() => {
    const x = arange(0, 6, 1, { dtype: 'float32' });
    const r = x.reshape([2, 3]);
    assert.deepEqual(r.shape, [2, 3]);
    assert.deepEqual(x.reshape([3, -1]).shape, [3, 2]);
    const p = r.permute([1, 0]);
    assert.deepEqual(p.shape, [3, 2]);
    assert.deepEqual(vals(p), [0, 3, 1, 4, 2, 5]);
    const y = arange(0, 24).reshape([2, 3, 4]);
    assert.deepEqual(y.flatten().shape, [24]);
    assert.deepEqual(y.flatten(1).shape, [2, 12]);
    assert.deepEqual(y.flatten(0, 1).shape, [6, 4]);
    assert.deepEqual(vals(y.permute([2, 0, 1]).flatten()).slice(0, 6), [0, 4, 8, 12, 16, 20]);
    assert.deepEqual(r.unsqueeze(0).shape, [1, 2, 3]);
    assert.deepEqual(r.unsqueeze(1).shape, [2, 1, 3]);
    assert.deepEqual(r.unsqueeze(-1).shape, [2, 3, 1]);
    const e = tensor([1, 2, 3], [3, 1]).expand([3, 4]);
    assert.deepEqual(e.shape, [3, 4]);
    assert.deepEqual(vals(e), [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]);
    assert.deepEqual(vals(tensor([1, 2]).expand([2, 2])), [1, 2, 1, 2]);
  }));
});

describe('activations and losses', () => {
  it('relu, relu6, hardtanh, sigmoid', t(() => {
    const x = tensor([-3, -0.5, 0, 0.5, 4, 7]);
    assert.deepEqual(vals(relu(x)), [0, 0, 0, 0.5, 4, 7]);
    assert.deepEqual(vals(x.relu()), [0, 0, 0, 0.5, 4, 7]);
    assert.deepEqual(vals(relu6(x)), [0, 0, 0, 0.5, 4, 6]);
    assert.deepEqual(vals(hardtanh(x, -1, 1)), [-1, -0.5, 0, 0.5, 1, 1]);
    assertClose(vals(sigmoid(x)), [-3, -0.5, 0, 0.5, 4, 7].map((v) => 1 / (1 + Math.exp(-v))));
    assertClose(vals(x.sigmoid()), vals(sigmoid(x)));
  }));

  it('softmax and logSoftmax along a dim', t(() => {
    const x = tensor([1, 2, 3, 1, 1, 1], [2, 3]);
    const e = [1, 2, 3].map(Math.exp);
    const z = e[0]! + e[1]! + e[2]!;
    assertClose(vals(softmax(x)), [e[0]! / z, e[1]! / z, e[2]! / z, 1 / 3, 1 / 3, 1 / 3]);
    assertClose(vals(logSoftmax(x, 1)), [1 - Math.log(z), 2 - Math.log(z), 3 - Math.log(z), -Math.log(3), -Math.log(3), -Math.log(3)]);
    const s0 = vals(softmax(x, 0));
    const a = 1 / (1 + Math.exp(-0)), b = 1 / (1 + Math.exp(-1)), c = 1 / (1 + Math.exp(-2));
    assertClose(s0, [a, b, c, 1 - a, 1 - b, 1 - c]);
  }));

  it('klDivBatchmean = Σ p·(log p − log q) / N', t(() => {
    const logits = tensor([0.2, -1, 0.5, 2, 0, 0.1], [2, 3]);
    const targetLogits = tensor([1, 0, -1, 0.3, 0.3, 0.1], [2, 3]);
    const logq = logSoftmax(logits, 1);
    const p = softmax(targetLogits, 1);
    const pv = vals(p), lq = vals(logq);
    let s = 0;
    for (let i = 0; i < 6; i++) s += pv[i]! * (Math.log(pv[i]!) - lq[i]!);
    const kl = klDivBatchmean(logq, p);
    assert.deepEqual(kl.shape, []);
    assert.equal(kl.dtype, 'float32');
    assertClose([kl.item()], [s / 2]);
    // a target with zeros contributes 0 there (0·log 0 = 0)
    const pz = tensor([1, 0, 0, 0.5, 0.5, 0], [2, 3]);
    const e = (0 - lq[0]!) + 0.5 * (Math.log(0.5) - lq[3]!) + 0.5 * (Math.log(0.5) - lq[4]!);
    assertClose([klDivBatchmean(logq, pz).item()], [e / 2]);
    assert.ok(Math.abs(klDivBatchmean(logq, softmax(logits, 1)).item()) < 1e-6);
  }));

  it('mseLoss is the mean of squared differences', t(() => {
    assertClose([mseLoss(tensor([1, 2, 3]), tensor([2, 2, 5])).item()], [5 / 3]);
    assertClose([mseLoss(tensor([1, 2, 3, 4], [2, 2]), zeros([2, 2])).item()], [30 / 4]);
  }));

  it('crossEntropy = mean −log softmax at the target', t(() => {
    const logits = tensor([1, 2, 3, 1, 0, 0], [2, 3]);
    const ce = crossEntropy(logits, int64([2, 0]));
    const l0 = -(3 - Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3)));
    const l1 = -(1 - Math.log(Math.exp(1) + 2));
    assert.deepEqual(ce.shape, []);
    assertClose([ce.item()], [(l0 + l1) / 2]);
  }));
});

describe('conv2d against a naive convolution', () => {
  const cases: { name: string; x: number[]; w: number[]; bias: boolean; o: ConvOpts }[] = [
    { name: '3×3 plain', x: [1, 2, 5, 5], w: [3, 2, 3, 3], bias: true, o: {} },
    { name: 'stride 2, padding 1', x: [2, 3, 6, 5], w: [4, 3, 3, 3], bias: true, o: { stride: [2, 2], padding: [1, 1] } },
    { name: 'asymmetric stride/padding, 2×3 kernel', x: [1, 2, 7, 6], w: [2, 2, 2, 3], bias: false, o: { stride: [1, 2], padding: [0, 2] } },
    { name: 'dilation 2', x: [1, 2, 7, 7], w: [2, 2, 3, 3], bias: true, o: { dilation: [2, 2], padding: [2, 2] } },
    { name: 'groups 2', x: [2, 4, 5, 5], w: [6, 2, 3, 3], bias: true, o: { groups: 2, padding: [1, 1] } },
    { name: 'depthwise', x: [2, 3, 6, 6], w: [3, 1, 3, 3], bias: true, o: { groups: 3, stride: [2, 2], padding: [1, 1] } },
    { name: 'depthwise multiplier 2', x: [1, 3, 5, 5], w: [6, 1, 3, 3], bias: false, o: { groups: 3 } },
    { name: '1×1', x: [2, 4, 3, 3], w: [5, 4, 1, 1], bias: true, o: {} },
  ];
  for (const c of cases) {
    it(c.name, t(() => {
      const x = f64(c.x, 1);
      const w = f64(c.w, 2);
      const b = c.bias ? f64([c.w[0]!], 3) : null;
      const y = conv2d(x, w, b, c.o);
      const [ref, shape] = naiveConv2d(x.data() as Float64Array, c.x, w.data() as Float64Array, c.w, b ? (b.data() as Float64Array) : null, c.o);
      assert.deepEqual(y.shape, shape);
      assertClose(vals(y), ref, 1e-12, 1e-10);
      // float32 agrees too
      const y32 = conv2d(x.to({ dtype: 'float32' }), w.to({ dtype: 'float32' }), b?.to({ dtype: 'float32' }) ?? null, c.o);
      assert.equal(y32.dtype, 'float32');
      assertClose(vals(y32), ref, 1e-5, 1e-4);
    }));
  }
  it('scalar stride/padding options are pairs', t(() => {
    const x = f64([1, 1, 5, 5]);
    const w = f64([1, 1, 3, 3], 5);
    assert.deepEqual(vals(conv2d(x, w, null, { stride: 2, padding: 1 })), vals(conv2d(x, w, null, { stride: [2, 2], padding: [1, 1] })));
  }));
});

// LibTorch would run these on its im2col + BLAS kernel; the addon runs them on their pixels instead (ops.cc).
describe('1×1 convolutions of few images on one thread', () => {
  const cases = [
    { name: '2 images', x: [2, 4, 3, 3], w: [5, 4, 1, 1], groups: 1, threads: 1 },
    { name: '3 images, groups 2', x: [3, 4, 4, 2], w: [6, 2, 1, 1], groups: 2, threads: 1 },
    { name: 'one image on two threads', x: [1, 3, 5, 4], w: [2, 3, 1, 1], groups: 1, threads: 2 },
  ];
  for (const c of cases)
    for (const layout of ['contiguous', 'channels-last'] as const)
      it(`${c.name}, ${layout}: the float64 convolution's values and gradients, in the input's layout`, () => {
        const threads = engineInfo().threads;
        setThreads(c.threads);
        try {
          tidy(() => {
            const o = { groups: c.groups };
            const [x64, w64, b64] = [f64(c.x, 1), f64(c.w, 2), f64([c.w[0]!], 3)];
            const outShape = [c.x[0]!, c.w[0]!, c.x[2]!, c.x[3]!];
            const weighting = f64(outShape, 4);
            const [x, w, b] = noGrad(() => [x64, w64, b64].map((v, k) => {
              const v32 = v.to({ dtype: 'float32' });
              return (k === 0 && layout === 'channels-last' ? v32.channelsLast() : v32).requiresGrad_();
            }));
            const y = conv2d(x!, w!, b!, o);
            assert.equal(x!.layout, layout);
            assert.equal(y.layout, layout);
            assertClose(vals(y), vals(conv2d(x64, w64, b64, o)), 1e-5, 1e-4);
            const [ref, shape] = naiveConv2d(x64.data() as Float64Array, c.x, w64.data() as Float64Array, c.w, b64.data() as Float64Array, o);
            assert.deepEqual(y.shape, shape);
            assertClose(vals(y), ref, 1e-5, 1e-4);
            const [gx, gw, gb] = analyticGrads(() => conv2d(x!, w!, b!, o).mul(weighting.to({ dtype: 'float32' })).sum(), [x!, w!, b!]);
            for (const v of [x64, w64, b64]) v.requiresGrad_();
            const [rx, rw, rb] = analyticGrads(() => conv2d(x64, w64, b64, o).mul(weighting).sum(), [x64, w64, b64]);
            assertClose(gx!, rx!, 1e-5, 1e-4, 'input gradient');
            assertClose(gw!, rw!, 1e-5, 1e-4, 'weight gradient');
            assertClose(gb!, rb!, 1e-5, 1e-4, 'bias gradient');
          });
        } finally {
          setThreads(threads);
        }
      });
});

// The addon runs these as 1×1 convolutions on oneDNN rather than on the reference BLAS's matrix product (ops.cc).
describe('linear layers of 16+ rows (2+ on several threads) and 128×128+ weights', () => {
  const cases = [
    { name: 'the smallest such layer', rows: 16, inF: 128, outF: 128, bias: true, transposed: false, threads: 1 },
    { name: 'a classifier, 2 threads', rows: 32, inF: 200, outF: 130, bias: true, transposed: false, threads: 2 },
    { name: 'no bias, a transposed (non-contiguous) input', rows: 20, inF: 130, outF: 140, bias: false, transposed: true, threads: 1 },
    { name: '4 rows on 2 threads', rows: 4, inF: 128, outF: 130, bias: true, transposed: false, threads: 2 },
  ];
  for (const c of cases)
    it(`${c.name}: the float64 product's values and gradients`, () => {
      const threads = engineInfo().threads;
      setThreads(c.threads);
      try {
        tidy(() => {
          const x64 = c.transposed ? f64([c.inF, c.rows], 1).permute([1, 0]) : f64([c.rows, c.inF], 1);
          const [w64, b64] = [f64([c.outF, c.inF], 2).mul(0.1), f64([c.outF], 3)];
          const weighting = f64([c.rows, c.outF], 4);
          const [x, w, b] = noGrad(() => [x64, w64, b64].map((v) => v.to({ dtype: 'float32' }).requiresGrad_()));
          const bias = (v: Tensor | undefined) => (c.bias ? v! : null);
          const y = linear(x!, w!, bias(b));
          assert.deepEqual(y.shape, [c.rows, c.outF]);
          const ref = linear(x64, w64, bias(b64));
          assertClose(vals(y), vals(ref), 1e-5, 1e-4);
          // A few entries by hand, so that the reference is not the same kernel as the value under test.
          const xv = vals(x64), wv = vals(w64), bv = vals(b64);
          for (const [r, o] of [[0, 0], [c.rows - 1, c.outF - 1], [Math.min(7, c.rows - 1), 100]] as const) {
            let sum = c.bias ? bv[o]! : 0;
            for (let k = 0; k < c.inF; k++) sum += xv[r * c.inF + k]! * wv[o * c.inF + k]!;
            assertClose([vals(y)[r * c.outF + o]!], [sum], 1e-5, 1e-4, `y[${r}, ${o}]`);
          }
          const params = c.bias ? [x!, w!, b!] : [x!, w!];
          const grads = analyticGrads(() => linear(x!, w!, bias(b)).mul(weighting.to({ dtype: 'float32' })).sum(), params);
          const params64 = c.bias ? [x64, w64, b64] : [x64, w64];
          for (const v of params64) v.requiresGrad_();
          const refGrads = analyticGrads(() => linear(x64, w64, bias(b64)).mul(weighting).sum(), params64);
          grads.forEach((g, k) => assertClose(g!, refGrads[k]!, 1e-5, 1e-4, ['input', 'weight', 'bias'][k] + ' gradient'));
        });
      } finally {
        setThreads(threads);
      }
    });
});

describe('linear and batchNorm', () => {
  it('linear: y = x Wᵀ + b, also with leading batch dims', t(() => {
    const x = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    const w = tensor([1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1], [4, 3]);
    const b = tensor([0.5, 0, 0, -1]);
    const y = linear(x, w, b);
    assert.deepEqual(y.shape, [2, 4]);
    assert.deepEqual(vals(y), [1.5, 2, 3, 5, 4.5, 5, 6, 14]);
    assert.deepEqual(vals(linear(x, w)), [1, 2, 3, 6, 4, 5, 6, 15]);
    const x3 = f64([2, 5, 3], 4);
    const w3 = f64([4, 3], 5);
    const y3 = linear(x3, w3);
    assert.deepEqual(y3.shape, [2, 5, 4]);
    const xv = x3.data() as Float64Array, wv = w3.data() as Float64Array;
    const ref: number[] = [];
    for (let r = 0; r < 10; r++) for (let o = 0; o < 4; o++) ref.push(xv[r * 3]! * wv[o * 3]! + xv[r * 3 + 1]! * wv[o * 3 + 1]! + xv[r * 3 + 2]! * wv[o * 3 + 2]!);
    assertClose(vals(y3), ref, 1e-12, 1e-12);
  }));

  // x [N=2, C=3, H=2, W=2]
  const N = 2, C = 3, HW = 4;
  const bnRef = (x: number[], mean: number[], v: number[], w: number[], b: number[], eps: number): number[] =>
    x.map((val, i) => {
      const c = Math.floor(i / HW) % C;
      return ((val - mean[c]!) / Math.sqrt(v[c]! + eps)) * w[c]! + b[c]!;
    });
  const stats = (x: number[]): { mean: number[]; biased: number[]; unbiased: number[] } => {
    const mean: number[] = [], biased: number[] = [], unbiased: number[] = [];
    for (let c = 0; c < C; c++) {
      const v: number[] = [];
      for (let n = 0; n < N; n++) for (let k = 0; k < HW; k++) v.push(x[(n * C + c) * HW + k]!);
      const m = v.reduce((a, b) => a + b, 0) / v.length;
      const ss = v.reduce((a, b) => a + (b - m) ** 2, 0);
      mean.push(m);
      biased.push(ss / v.length);
      unbiased.push(ss / (v.length - 1));
    }
    return { mean, biased, unbiased };
  };

  it('batchNorm eval uses the running statistics', t(() => {
    const x = f64([N, C, 2, 2], 7, 3);
    const rm = [0.5, -1, 2], rv = [1, 4, 0.25], w = [1, 2, -1], b = [0, 0.5, 1];
    const runningMean = tensor(Float64Array.from(rm)), runningVar = tensor(Float64Array.from(rv));
    const y = batchNorm(x, { weight: tensor(Float64Array.from(w)), bias: tensor(Float64Array.from(b)), runningMean, runningVar, eps: 1e-5 });
    assert.deepEqual(y.shape, [N, C, 2, 2]);
    assertClose(vals(y), bnRef(vals(x), rm, rv, w, b, 1e-5), 1e-12, 1e-10);
    assert.deepEqual(vals(runningMean), rm, 'eval mode leaves running stats alone');
    assert.deepEqual(vals(runningVar), rv);
    // no affine parameters
    const y2 = batchNorm(x, { weight: null, bias: null, runningMean, runningVar, eps: 1e-3 });
    assertClose(vals(y2), bnRef(vals(x), rm, rv, [1, 1, 1], [0, 0, 0], 1e-3), 1e-12, 1e-10);
  }));

  it('batchNorm train uses batch statistics and updates running ones with momentum', t(() => {
    const x = f64([N, C, 2, 2], 8, 2);
    const xv = vals(x);
    const { mean, biased, unbiased } = stats(xv);
    const rm = [0.5, -1, 2], rv = [1, 4, 0.25], w = [1, 2, -1], b = [0, 0.5, 1];
    const runningMean = tensor(Float64Array.from(rm)), runningVar = tensor(Float64Array.from(rv));
    const p = { weight: tensor(Float64Array.from(w)), bias: tensor(Float64Array.from(b)), runningMean, runningVar, eps: 1e-5, momentum: 0.3 };
    const y = batchNorm(x, p, true);
    assertClose(vals(y), bnRef(xv, mean, biased, w, b, 1e-5), 1e-12, 1e-10);
    assertClose(vals(runningMean), rm.map((r, c) => 0.7 * r + 0.3 * mean[c]!), 1e-12, 1e-12);
    assertClose(vals(runningVar), rv.map((r, c) => 0.7 * r + 0.3 * unbiased[c]!), 1e-12, 1e-12);
    // default momentum 0.1, second call compounds
    const rm1 = vals(runningMean);
    batchNorm(x, { ...p, momentum: undefined }, true);
    assertClose(vals(runningMean), rm1.map((r, c) => 0.9 * r + 0.1 * mean[c]!), 1e-12, 1e-12);
    // training without running stats works too
    const y3 = batchNorm(x, { weight: null, bias: null, runningMean: null, runningVar: null, eps: 1e-5 }, true);
    assertClose(vals(y3), bnRef(xv, mean, biased, [1, 1, 1], [0, 0, 0], 1e-5), 1e-12, 1e-10);
  }));
});
