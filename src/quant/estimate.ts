/**
 * Double-precision estimates of the search scores of many candidate (delta, zeroPoint) pairs on one row of data,
 * without quantizing the row once per candidate. For a candidate with grid δℤ clipped to [lo, hi] = [−zδ, (n−1−z)δ],
 *   Σ|x − x̂|^p = Σ_{x<lo} (lo − x)^p + Σ_{x≥hi} (x − hi)^p + Σ_{lo≤x<hi} dist(x, δℤ)^p,
 * the last term being a sum of per-level terms that depend on δ only (shared by all zero points of a width).
 * The cosine score needs only counts and sums of x per rounding cell.
 */
import { BinnedValues, powp } from './power-sums.js';

/**
 * Candidates of one row, read in place from candidate-major tables: candidate i's step and zero point are
 * delta[i·stride + offset] and zeroPoint[i·stride + offset]. Candidates of a width group share their step up to ulps.
 */
export interface RowCandidates {
  delta: Float32Array;
  zeroPoint: Float32Array;
  stride: number;
  offset: number;
  count: number;
  /** [start, end) of each width group's run of candidates, in order. A run of `levels` candidates holds zero points 0..levels − 1 in order (the two-sided search's layout). */
  groups: [number, number][];
}

/**
 * Relative slack under which candidates count as tied with the best estimate, for a row of m elements. The estimates
 * err by < 1e-6; the float32 scores they stand for carry rounding noise that averages out as 1/√m.
 */
export function tieSlack(m: number): number {
  return 1e-5 + 2e-4 / Math.sqrt(Math.max(1, m));
}

/** Σ dist(x, δℤ)^p over the elements of each level [kδ, (k+1)δ), k = k0..k1, as prefix sums (length k1 − k0 + 2). */
function levelPrefix(row: BinnedValues, delta: number, p: number): { k0: number; prefix: Float64Array } {
  const k0 = Math.floor(row.min / delta), k1 = Math.floor(row.max / delta);
  const count = k1 - k0 + 1;
  // Rough costs in units of one exact term: a sweep visits every bin (plus the entries of bins cut by a level or
  // half-level boundary); two tree queries per level cost ~80 terms each.
  const entries = row.values.length;
  const sweep = 0.6 * row.bins + Math.min(entries, (2 * count * entries) / row.bins);
  let s: Float64Array;
  if (sweep <= 160 * count) s = row.levelSums(delta, k0, count, p);
  else {
    s = new Float64Array(count);
    for (let k = 0; k < count; k++) {
      const a = (k0 + k) * delta, m = (k0 + k + 0.5) * delta, b = (k0 + k + 1) * delta;
      s[k] = row.powSum(a, m, a, p) + row.powSum(m, b, b, p);
    }
  }
  const prefix = new Float64Array(count + 1);
  for (let k = 0; k < count; k++) prefix[k + 1] = prefix[k]! + s[k]!;
  return { k0, prefix };
}

/**
 * Estimates of mean |x − x̂|^p for every candidate. Candidates that cannot be within tieSlack() of the best get a lower
 * bound only, so only the near-best values are accurate. Three tests rule a candidate out, cheapest first: its range
 * leaves the row's min or max further outside than any score below the best so far allows (one element's clipping
 * error alone is too large); a bound of its clipping error (BinnedValues.clipBound); that bound plus its rounding
 * error. Only the rest have their clipping error summed exactly.
 */
export function estimateMse(row: BinnedValues, c: RowCandidates, levels: number, p: number): Float64Array {
  const n = row.size, { delta, zeroPoint, stride, offset } = c;
  const est = new Float64Array(c.count);
  // Widest groups first: they give a good upper bound early, so most narrow widths and zero points are skipped.
  const margin = 1 + 2 * tieSlack(n);
  let best = Infinity;
  for (let g = c.groups.length - 1; g >= 0; g--) {
    let [s, e] = c.groups[g]!;
    const limit = best * margin;
    // An element x outside [lo, hi] alone adds its distance^p / n to the mean: a gap beyond `far` exceeds limit.
    const far = Number.isFinite(limit) ? powp(limit * n, 1 / p) * (1 + 1e-6) : Infinity;
    const d0 = delta[s * stride + offset]!;
    if (far < Infinity && e - s === levels && zeroPoint[s * stride + offset] === 0 && zeroPoint[(e - 1) * stride + offset] === levels - 1) {
      // Zero points z = i − s: lo = −z·δ leaves min further out than far below zA, hi = (levels − 1 − z)·δ leaves
      // max further out above zB. Two zero points of padding absorb the ulps by which the steps differ.
      const zA = Math.max(0, Math.ceil((-row.min - far) / d0) - 2), zB = Math.min(levels - 1, Math.floor(levels - 1 - (row.max - far) / d0) + 2);
      if (zA > zB) {
        est.fill(limit, s, e);
        continue;
      }
      est.fill(limit, s, s + zA);
      est.fill(limit, s + zB + 1, e);
      [s, e] = [s + zA, s + zB + 1];
    }
    let lb = Infinity;
    for (let i = s; i < e; i++) {
      const d = delta[i * stride + offset]!, z = zeroPoint[i * stride + offset]!;
      const lo = -z * d, hi = (levels - 1 - z) * d;
      if (lo - row.min > far || row.max - hi > far) {
        est[i] = limit;
        continue;
      }
      est[i] = (row.clipBound(lo, -1, p) + row.clipBound(hi, 1, p)) / n;
      lb = Math.min(lb, est[i]!);
    }
    if (lb > limit) continue;
    const { k0, prefix } = levelPrefix(row, d0, p);
    const k1 = k0 + prefix.length - 2;
    for (let i = s; i < e; i++) {
      if (est[i]! >= limit || est[i]! > best * margin) continue;
      const d = delta[i * stride + offset]!, z = zeroPoint[i * stride + offset]!;
      const lo = -z * d, hi = (levels - 1 - z) * d;
      const from = Math.max(k0, -z), to = Math.min(k1, levels - 2 - z);
      const inner = (to >= from ? prefix[to - k0 + 1]! - prefix[from - k0]! : 0) / n;
      if (est[i]! + inner > best * margin) {
        est[i] = est[i]! + inner;
        continue;
      }
      est[i] = (row.powSum(-Infinity, lo, lo, p) + row.powSum(hi, Infinity, hi, p)) / n + inner;
      best = Math.min(best, est[i]!);
    }
  }
  return est;
}

/** −cos(x, x̂) for every candidate (lower is better), as the exhaustive search's cosine score. */
export function estimateCosine(row: BinnedValues, c: RowCandidates, levels: number): Float64Array {
  const { delta, zeroPoint, stride, offset } = c;
  const est = new Float64Array(c.count);
  const norm = Math.sqrt(row.moments(-Infinity, Infinity)[2]);
  for (const [s, e] of c.groups) {
    const d = delta[s * stride + offset]!;
    // Rounding cells [(k−½)δ, (k+½)δ), k = c0..c1: prefix sums of count, Σx, k·Σx, k²·count.
    const c0 = Math.floor(row.min / d + 0.5), c1 = Math.floor(row.max / d + 0.5);
    const cells = c1 - c0 + 1;
    const cnt = new Float64Array(cells), sx = new Float64Array(cells);
    if (row.values.length < 100 * cells) {
      const v = row.values, w = row.counts;
      for (let q = 0; q < v.length; q++) {
        const cell = Math.min(cells - 1, Math.max(0, Math.floor(v[q]! / d + 0.5) - c0));
        cnt[cell]! += w[q]!;
        sx[cell]! += w[q]! * v[q]!;
      }
    } else {
      for (let q = 0; q < cells; q++) {
        const [m0, m1] = row.moments((c0 + q - 0.5) * d, (c0 + q + 0.5) * d);
        cnt[q] = m0;
        sx[q] = m1;
      }
    }
    const pc = new Float64Array(cells + 1), psx = new Float64Array(cells + 1);
    const pk = new Float64Array(cells + 1), pk2 = new Float64Array(cells + 1);
    for (let q = 0; q < cells; q++) {
      const kk = c0 + q;
      pc[q + 1] = pc[q]! + cnt[q]!;
      psx[q + 1] = psx[q]! + sx[q]!;
      pk[q + 1] = pk[q]! + kk * sx[q]!;
      pk2[q + 1] = pk2[q]! + kk * kk * cnt[q]!;
    }
    // Sum of arr over cells with index in [a, b] (clamped to the data's cells).
    const range = (arr: Float64Array, a: number, b: number) => {
      const from = Math.max(c0, a), to = Math.min(c1, b);
      return to >= from ? arr[to - c0 + 1]! - arr[from - c0]! : 0;
    };
    for (let i = s; i < e; i++) {
      const z = zeroPoint[i * stride + offset]!, dz = delta[i * stride + offset]!;
      const top = levels - 1 - z;
      const dot = dz * (range(pk, -z + 1, top - 1) - z * range(psx, -Infinity, -z) + top * range(psx, top, Infinity));
      const sq = dz * dz * (range(pk2, -z + 1, top - 1) + z * z * range(pc, -Infinity, -z) + top * top * range(pc, top, Infinity));
      est[i] = -dot / Math.max(norm * Math.sqrt(sq), 1e-8);
    }
  }
  return est;
}

/** Cosine estimates are near-exact (double sums of x and x̂²): candidates within this of the best are re-scored. */
export const COSINE_SLACK = 3e-7;

/** Candidates of one row with their layout in the [K, C] candidate tables: candidate i of row j is at i·C + j. */
export interface RowSearch {
  /** Steps and zero points [K·C], candidate-major. */
  deltaAll: Float32Array;
  zpAll: Float32Array;
  k: number;
  c: number;
  levels: number;
  method: 'mse' | 'cosine';
  /** Exponent of the mse score. */
  p: number;
  /** Candidates per width group (zero points of one width). */
  groupSize: number;
}

/**
 * The candidates of one row (data: its m values) whose estimated score is within a hair of the best estimate
 * (tieSlack(m) relative for mse, COSINE_SLACK for cosine), in candidate order; [] when no score is finite.
 */
function nearBest(data: Float32Array, cand: RowCandidates, s: RowSearch): number[] {
  const row = new BinnedValues(data);
  const est = s.method === 'mse' ? estimateMse(row, cand, s.levels, s.p) : estimateCosine(row, cand, s.levels);
  let min = Infinity;
  for (let i = 0; i < s.k; i++) if (est[i]! < min) min = est[i]!;
  if (!(min < 1e10)) return [];
  const bound = min + Math.abs(min) * (s.method === 'mse' ? tieSlack(data.length) : COSINE_SLACK) + Number.MIN_VALUE;
  const near: number[] = [];
  for (let i = 0; i < s.k; i++) if (est[i]! <= bound) near.push(i);
  return near;
}

/** nearBest of rows [from, to) of data (rows of m values). */
export function nearRows(data: Float32Array, m: number, search: RowSearch, from: number, to: number): number[][] {
  const { k, c } = search;
  const size = search.groupSize;
  const groups = Array.from({ length: Math.ceil(k / size) }, (_, g): [number, number] => [g * size, Math.min(k, (g + 1) * size)]);
  const out: number[][] = [];
  for (let j = from; j < to; j++) {
    const cand = { delta: search.deltaAll, zeroPoint: search.zpAll, stride: c, offset: j, count: k, groups };
    out.push(nearBest(data.subarray(j * m, (j + 1) * m), cand, search));
  }
  return out;
}

/**
 * Claims chunks of rows from a shared counter (counters[0]) and computes them until none is left; chunk q is rows
 * [bounds[q], bounds[q + 1]). Run by every thread of a split search (row-pool.ts).
 */
export function claimChunks(job: { data: Float32Array; m: number; search: RowSearch; bounds: number[]; counters: Int32Array }): [number, number[][]][] {
  const done: [number, number[][]][] = [];
  for (let q; (q = Atomics.add(job.counters, 0, 1)) < job.bounds.length - 1; ) {
    done.push([q, nearRows(job.data, job.m, job.search, job.bounds[q]!, job.bounds[q + 1]!)]);
  }
  return done;
}
