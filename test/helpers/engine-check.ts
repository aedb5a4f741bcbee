/** Shared checks for the engine tests: closeness, error shape, a naive convolution and finite differences. */
import assert from 'node:assert/strict';
import { beforeEach, afterEach } from 'node:test';
import { Tensor, tensor, tidy, noGrad, liveTensors } from '../../src/engine/index.js';

/** Asserts |a − e| ≤ atol + rtol·|e| elementwise (and equal lengths). */
export function assertClose(actual: ArrayLike<number | bigint>, expected: ArrayLike<number>, atol = 1e-6, rtol = 1e-5, what = ''): void {
  assert.equal(actual.length, expected.length, `${what} length ${actual.length} ≠ ${expected.length}`);
  for (let i = 0; i < expected.length; i++) {
    const a = Number(actual[i]);
    const e = expected[i]!;
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e)))
      assert.fail(`${what}[${i}]: got ${a}, expected ${e} (atol ${atol}, rtol ${rtol})\n  got      [${Array.from(actual, Number).slice(0, 16).join(', ')}]\n  expected [${Array.from(expected).slice(0, 16).join(', ')}]`);
  }
}

/** The values of a tensor as numbers (for deepEqual). */
export function vals(t: Tensor): number[] {
  return t.toArray();
}

/** Asserts fn throws exactly the class Cls with a message matching re. */
export function assertThrows(fn: () => unknown, Cls: ErrorConstructor | TypeErrorConstructor | RangeErrorConstructor, re: RegExp): void {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  assert.ok(thrown !== undefined, `expected ${Cls.name} matching ${re}, but nothing was thrown`);
  assert.ok(thrown instanceof Error, `expected an Error, got ${String(thrown)}`);
  assert.equal(thrown.constructor, Cls, `expected ${Cls.name}, got ${thrown.constructor.name}: ${thrown.message}`);
  assert.match(thrown.message, re);
}

/** Deterministic pseudo-random values in [-1, 1) (xorshift32), independent of the engine's generator. */
export function seq(n: number, seed = 1): number[] {
  let s = seed >>> 0 || 1;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out.push((s / 4294967296) * 2 - 1);
  }
  return out;
}

/** A float64 tensor of the given shape filled with seq(). */
export function f64(shape: number[], seed = 1, scale = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(Float64Array.from(seq(n, seed), (v) => v * scale), shape);
}

export interface ConvOpts {
  stride?: [number, number];
  padding?: [number, number];
  dilation?: [number, number];
  groups?: number;
}

/** Naive NCHW convolution (cross-correlation as torch) on flat arrays; returns [values, outShape]. */
export function naiveConv2d(
  x: ArrayLike<number>, xs: number[], w: ArrayLike<number>, ws: number[], b: ArrayLike<number> | null, o: ConvOpts = {},
): [number[], number[]] {
  const [N, C, H, W] = xs as [number, number, number, number];
  const [O, Cg, KH, KW] = ws as [number, number, number, number];
  const [sh, sw] = o.stride ?? [1, 1];
  const [ph, pw] = o.padding ?? [0, 0];
  const [dh, dw] = o.dilation ?? [1, 1];
  const G = o.groups ?? 1;
  assert.equal(C, Cg * G);
  const OH = Math.floor((H + 2 * ph - dh * (KH - 1) - 1) / sh) + 1;
  const OW = Math.floor((W + 2 * pw - dw * (KW - 1) - 1) / sw) + 1;
  const Og = O / G;
  const out: number[] = new Array(N * O * OH * OW).fill(0);
  for (let n = 0; n < N; n++)
    for (let oc = 0; oc < O; oc++) {
      const g = Math.floor(oc / Og);
      for (let oy = 0; oy < OH; oy++)
        for (let ox = 0; ox < OW; ox++) {
          let acc = b ? b[oc]! : 0;
          for (let c = 0; c < Cg; c++) {
            const ic = g * Cg + c;
            for (let ky = 0; ky < KH; ky++) {
              const iy = oy * sh - ph + ky * dh;
              if (iy < 0 || iy >= H) continue;
              for (let kx = 0; kx < KW; kx++) {
                const ix = ox * sw - pw + kx * dw;
                if (ix < 0 || ix >= W) continue;
                acc += x[((n * C + ic) * H + iy) * W + ix]! * w[((oc * Cg + c) * KH + ky) * KW + kx]!;
              }
            }
          }
          out[((n * O + oc) * OH + oy) * OW + ox] = acc;
        }
    }
  return [out, [N, O, OH, OW]];
}

/**
 * Central finite differences of the scalar f(inputs) with respect to every element of inputs[which]
 * (float64 tensors; the values are perturbed in place through assign() and restored).
 */
export function numericGrad(f: () => Tensor, input: Tensor, eps = 1e-6): number[] {
  const base = Array.from(input.data() as Float64Array);
  const out: number[] = [];
  const evalAt = (vals: number[]): number =>
    tidy(() => {
      input.assign(tensor(Float64Array.from(vals), input.shape));
      return noGrad(() => f().item());
    });
  for (let i = 0; i < base.length; i++) {
    const v = base.slice();
    v[i] = base[i]! + eps;
    const plus = evalAt(v);
    v[i] = base[i]! - eps;
    const minus = evalAt(v);
    out.push((plus - minus) / (2 * eps));
  }
  tidy(() => input.assign(tensor(Float64Array.from(base), input.shape)));
  return out;
}

/** The analytic gradient of f() with respect to each of inputs (fresh backward, grads zeroed first). */
export function analyticGrads(f: () => Tensor, inputs: Tensor[]): number[][] {
  for (const t of inputs) t.zeroGrad();
  tidy(() => f().backward());
  return inputs.map((t) =>
    tidy(() => {
      const g = t.grad;
      assert.ok(g, 'no gradient recorded');
      return Array.from(g.data() as Float64Array);
    }),
  );
}

/** Compares analytic gradients with central differences for every input. */
export function gradCheck(f: () => Tensor, inputs: Tensor[], tol = 1e-6, eps = 1e-6): void {
  const analytic = analyticGrads(f, inputs);
  inputs.forEach((t, k) => {
    const numeric = numericGrad(f, t, eps);
    assertClose(analytic[k]!, numeric, tol, tol, `grad of input ${k}`);
  });
}

/** Registers hooks that fail a test which leaves native tensors behind. */
export function failOnLeaks(): void {
  let live0 = 0;
  beforeEach(() => {
    live0 = liveTensors();
  });
  afterEach(() => {
    assert.equal(liveTensors(), live0, 'native tensors leaked by the test');
  });
}
