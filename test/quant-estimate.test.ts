// The fast scale search's estimates (estimate.ts) against exact double-precision scores of every candidate: each
// estimate is a lower bound, and the best candidate's estimate is accurate, also where most zero points are skipped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BinnedValues } from '../src/quant/power-sums.js';
import { estimateMse, tieSlack } from '../src/quant/estimate.js';

const P = 2.4;

/** The two-sided search's candidates for a row: widths R·i/100, zero points 0..levels − 1 (as search.ts lays them out). */
function twoSided(x: Float32Array, levels: number) {
  let lo = 0, hi = 0;
  for (const v of x) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  const k = 100 * levels;
  const delta = new Float32Array(k), zeroPoint = new Float32Array(k);
  const groups: [number, number][] = [];
  for (let w = 0; w < 100; w++) {
    groups.push([w * levels, (w + 1) * levels]);
    for (let z = 0; z < levels; z++) {
      delta[w * levels + z] = Math.fround((hi - lo) * (w + 1) / 100 / (levels - 1));
      zeroPoint[w * levels + z] = z;
    }
  }
  return { delta, zeroPoint, stride: 1, offset: 0, count: k, groups };
}

function exactMse(x: Float32Array, d: number, z: number, levels: number): number {
  let s = 0;
  for (const v of x) {
    const q = Math.min(levels - 1, Math.max(0, Math.round(v / d) + z));
    s += Math.abs(v - (q - z) * d) ** P;
  }
  return s / x.length;
}

/** Deterministic rows: Gaussian-like, heavy-tailed with one far outlier, and mostly zeros (a ReLU-like point mass). */
function rows(m: number): [string, Float32Array][] {
  let seed = 7;
  const u = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) + 0.5) / 2147483648;
  const gauss = () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  const normal = Float32Array.from({ length: m }, gauss);
  const heavy = Float32Array.from({ length: m }, () => gauss() * (0.1 + gauss() ** 2));
  heavy[3] = 40;
  const sparse = Float32Array.from({ length: m }, (_, i) => (i % 5 === 0 ? gauss() : 0));
  return [['normal', normal], ['heavy-tailed', heavy], ['mostly zeros', sparse]];
}

test('mse estimates are lower bounds of the exact scores, and the best candidate is among the near-best', () => {
  for (const levels of [16, 256]) {
    for (const [name, x] of rows(200)) {
      const cand = twoSided(x, levels);
      const est = estimateMse(new BinnedValues(x), cand, levels, P);
      let bestExact = Infinity, bestI = -1, minEst = Infinity;
      for (let i = 0; i < cand.count; i++) {
        const exact = exactMse(x, cand.delta[i]!, cand.zeroPoint[i]!, levels);
        assert.ok(est[i]! <= exact * (1 + 1e-6), `${name} ${levels} levels: candidate ${i} estimate ${est[i]} above its score ${exact}`);
        if (exact < bestExact) [bestExact, bestI] = [exact, i];
        minEst = Math.min(minEst, est[i]!);
      }
      assert.ok(Math.abs(est[bestI]! - bestExact) <= 1e-6 * bestExact, `${name} ${levels} levels: the best candidate's estimate is accurate`);
      assert.ok(est[bestI]! <= minEst * (1 + tieSlack(x.length)), `${name} ${levels} levels: the best candidate is near-best`);
    }
  }
});
