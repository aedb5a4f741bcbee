/**
 * Fast sums over one row of data for the scale searches: Σ |x − c|^p over a value interval lying on one side of c,
 * and Σ 1, Σ x, Σ x² over a value interval. The values are bucketed into 2^L equal-width bins (a counting sort;
 * repeated values merged in heavy bins: ReLU zeros become one entry) under a binary tree whose nodes keep the
 * moments Σ (x − centre)^t, t ≤ J. A node far from c (radius ≤ D/2) is summed by the binomial series
 * D^p Σ_t C(p,t) (±u/D)^t (truncation < 2e-7 relative); near nodes are refined down to the bins, whose entries are
 * summed exactly. Cost per query: O(L·J) plus the entries of a few bins.
 */

/** Moments kept per node: Σ (x − centre)^t, t = 0..J. The leaf loop in the constructor is unrolled for J = 12. */
const J = 12;
const W = J + 1;

/** Pascal's triangle up to J. */
const PASCAL: number[][] = (() => {
  const rows: number[][] = [[1]];
  for (let t = 1; t <= J; t++) {
    const prev = rows[t - 1]!;
    rows.push(Array.from({ length: t + 1 }, (_, s) => (s === 0 || s === t ? 1 : prev[s - 1]! + prev[s]!)));
  }
  return rows;
})();

/** x^p for x ≥ 0, as exp(p·log x): ~30% faster than Math.pow in V8 and accurate to a few ulps. */
export function powp(x: number, p: number): number {
  return Math.exp(p * Math.log(x));
}

/** Generalised binomial coefficients C(p, t), t = 0..J. */
function binomials(p: number): Float64Array {
  const b = new Float64Array(W);
  b[0] = 1;
  for (let t = 1; t <= J; t++) b[t] = (b[t - 1]! * (p - t + 1)) / t;
  return b;
}

export class BinnedValues {
  readonly size: number;
  readonly min: number;
  readonly max: number;
  readonly #x0: number;
  readonly #w: number;
  readonly #depth: number;
  /** Start of each bin's entries (length bins + 1). */
  readonly #offsets: Int32Array;
  /** The entries (grouped by bin; repeated values merged in heavy bins) and how often each occurs. */
  readonly #values: Float32Array;
  readonly #counts: Int32Array;
  /** Per tree level (0 = bins), nodes × W moments about the node centres. */
  readonly #moments: Float64Array[] = [];
  /** Prefix sums over bins of Σ1, Σx, Σx² (length bins + 1). */
  readonly #prefix: [Float64Array, Float64Array, Float64Array];
  #p = NaN;
  #beta: Float64Array = new Float64Array(W);

  /** Buckets `data` (float32 values, any order) into about size/8 bins (a power of two, 16..65536). */
  constructor(data: Float32Array) {
    const n = data.length;
    this.size = n;
    let mn = Infinity, mx = -Infinity;
    for (let k = 0; k < n; k++) {
      const v = data[k]!;
      if (v < mn) mn = v;
      if (v > mx) mx = v;
    }
    this.min = mn;
    this.max = mx;
    const depth = Math.max(4, Math.min(16, Math.ceil(Math.log2(Math.max(1, n / 8)))));
    const bins = 1 << depth;
    const span = Math.max(mx - mn, Math.abs(mx) * 1e-6, 1e-30);
    this.#depth = depth;
    this.#x0 = mn;
    // Slightly wider than the data, so that max falls inside the last bin.
    this.#w = (span * (1 + 1e-9)) / bins;

    // Counting sort into bins, one entry per element, unsorted, except a heavy bin's point mass (ReLU's zeros), merged
    // into one (value, count) entry.
    // Each element's bin is computed twice rather than stored: a stored bin index per element is a copy of the data's
    // size to hold (a 256-image activation at 224×224 has 2e8 elements).
    const w = this.#w;
    const binOf = (v: number) => Math.min(bins - 1, Math.floor((v - mn) / w));
    const start = new Int32Array(bins + 1);
    for (let k = 0; k < n; k++) start[binOf(data[k]!) + 1]!++;
    for (let b = 0; b < bins; b++) start[b + 1]! += start[b]!;
    const fill = start.slice(0, bins);
    const vals = new Float32Array(n);
    for (let k = 0; k < n; k++) vals[fill[binOf(data[k]!)]!++] = data[k]!;
    const heavy = Math.max(64, (4 * n) / bins);
    const offsets = new Int32Array(bins + 1);
    const counts = new Int32Array(n);
    let u = 0;
    for (let b = 0; b < bins; b++) {
      const s0 = start[b]!, s1 = start[b + 1]!;
      const mass = s1 - s0 > heavy ? vals[(s0 + s1) >> 1]! : NaN;
      let same = 0;
      if (mass === mass) for (let k = s0; k < s1; k++) if (vals[k] === mass) same++;
      if (2 * same >= s1 - s0 && same > 0) {
        // A point mass (ReLU's zeros) fills at least half of this heavy bin (the middle entry is one of them): it
        // becomes one entry, after the bin's other values. The write position never passes the read position k.
        let to = u;
        for (let k = s0; k < s1; k++) if (vals[k] !== mass) vals[to++] = vals[k]!;
        counts.fill(1, u, to);
        vals[to] = mass;
        counts[to] = same;
        u = to + 1;
      } else {
        vals.copyWithin(u, s0, s1);
        counts.fill(1, u, u + s1 - s0);
        u += s1 - s0;
      }
      offsets[b + 1] = u;
    }
    // Views, not copies: merging repeated values leaves the arrays' tails unused.
    const values = (this.#values = vals.subarray(0, u));
    const cnt = (this.#counts = counts.subarray(0, u));
    this.#offsets = offsets;

    // Leaf moments, then each level from its children by the binomial shift.
    const leaf = new Float64Array(bins * W);
    // Σ count·d^t, t = 0..J (= 12), in locals: the hottest loop of a large activation's search, twice as fast as
    // indexing an array per term.
    for (let b = 0; b < bins; b++) {
      const c = this.#centre(0, b);
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0, a8 = 0, a9 = 0, a10 = 0, a11 = 0, a12 = 0;
      for (let k = offsets[b]!; k < offsets[b + 1]!; k++) {
        const x = values[k]! - c;
        let pw = cnt[k]!;
        a0 += pw; pw *= x; a1 += pw; pw *= x; a2 += pw; pw *= x; a3 += pw; pw *= x; a4 += pw; pw *= x;
        a5 += pw; pw *= x; a6 += pw; pw *= x; a7 += pw; pw *= x; a8 += pw; pw *= x; a9 += pw; pw *= x;
        a10 += pw; pw *= x; a11 += pw; pw *= x; a12 += pw;
      }
      const o = b * W;
      leaf[o] = a0; leaf[o + 1] = a1; leaf[o + 2] = a2; leaf[o + 3] = a3; leaf[o + 4] = a4; leaf[o + 5] = a5; leaf[o + 6] = a6;
      leaf[o + 7] = a7; leaf[o + 8] = a8; leaf[o + 9] = a9; leaf[o + 10] = a10; leaf[o + 11] = a11; leaf[o + 12] = a12;
    }
    this.#moments.push(leaf);
    const [p0, p1, p2] = (this.#prefix = [new Float64Array(bins + 1), new Float64Array(bins + 1), new Float64Array(bins + 1)]);
    for (let b = 0; b < bins; b++) {
      const c = this.#centre(0, b), m0 = leaf[b * W]!, m1 = leaf[b * W + 1]!, m2 = leaf[b * W + 2]!;
      p0[b + 1] = p0[b]! + m0;
      p1[b + 1] = p1[b]! + m1 + c * m0;
      p2[b + 1] = p2[b]! + m2 + 2 * c * m1 + c * c * m0;
    }
    const dpow = new Float64Array(W);
    for (let lvl = 1; lvl <= depth; lvl++) {
      const child = this.#moments[lvl - 1]!;
      const nodes = bins >> lvl;
      const m = new Float64Array(nodes * W);
      const half = (this.#w * (1 << lvl)) / 4; // child centre − parent centre = ±half
      for (let j = 0; j < nodes; j++) {
        for (const [ci, d] of [[2 * j, -half], [2 * j + 1, half]] as const) {
          if (child[ci * W] === 0) continue;
          dpow[0] = 1;
          for (let t = 1; t <= J; t++) dpow[t] = dpow[t - 1]! * d;
          for (let t = 0; t <= J; t++) {
            let acc = 0;
            const row = PASCAL[t]!;
            for (let s = 0; s <= t; s++) acc += row[s]! * child[ci * W + s]! * dpow[t - s]!;
            m[j * W + t]! += acc;
          }
        }
      }
      this.#moments.push(m);
    }
  }

  /** The entries' values, grouped by bin. */
  get values(): Float32Array {
    return this.#values;
  }
  /** How often each of `values` occurs. */
  get counts(): Int32Array {
    return this.#counts;
  }

  #centre(lvl: number, j: number): number {
    return this.#x0 + (j + 0.5) * this.#w * 2 ** lvl;
  }

  /** Σ |x − c|^p over the elements with a ≤ x < b; [a, b) must lie on one side of c (c ≤ a or c ≥ b). */
  powSum(a: number, b: number, c: number, p: number): number {
    if (!(a < b) || b <= this.min || a > this.max) return 0;
    if (p !== this.#p) {
      this.#p = p;
      this.#beta = binomials(p);
    }
    return this.#pow(this.#depth, 0, a, b, c, p);
  }

  #pow(lvl: number, j: number, a: number, b: number, c: number, p: number): number {
    const m = this.#moments[lvl]!;
    if (m[j * W] === 0) return 0;
    const width = this.#w * 2 ** lvl;
    const lo = this.#x0 + j * width;
    const hi = lo + width;
    if (hi <= a || lo >= b) return 0;
    if (lo >= a && hi <= b) {
      const ctr = lo + width / 2;
      const dist = Math.abs(ctr - c);
      if (width <= dist) {
        // radius ≤ dist / 2: binomial series in ±u/dist
        const inv = (ctr >= c ? 1 : -1) / dist;
        const beta = this.#beta;
        let acc = 0, pw = 1;
        for (let t = 0; t <= J; t++) {
          acc += beta[t]! * m[j * W + t]! * pw;
          pw *= inv;
        }
        return powp(dist, p) * acc;
      }
    }
    if (lvl === 0) {
      let s = 0;
      const v = this.#values, cnt = this.#counts;
      for (let k = this.#offsets[j]!, e = this.#offsets[j + 1]!; k < e; k++) {
        const x = v[k]!;
        if (x >= a && x < b) s += cnt[k]! * powp(Math.abs(x - c), p);
      }
      return s;
    }
    return this.#pow(lvl - 1, 2 * j, a, b, c, p) + this.#pow(lvl - 1, 2 * j + 1, a, b, c, p);
  }

  /**
   * The rounding error sums S[k] = Σ dist(x, δℤ)^p over the elements of each level [kδ, (k+1)δ), k = k0..k0+count−1
   * (elements outside go to the end levels), by one sweep over the bins: a bin inside one half-level and far from
   * its grid point by the binomial series, any other bin entry by entry.
   */
  levelSums(delta: number, k0: number, count: number, p: number): Float64Array {
    if (p !== this.#p) {
      this.#p = p;
      this.#beta = binomials(p);
    }
    const out = new Float64Array(count);
    const leaf = this.#moments[0]!, beta = this.#beta, w = this.#w;
    const v = this.#values, cnt = this.#counts;
    const bins = this.#offsets.length - 1;
    for (let b = 0; b < bins; b++) {
      if (leaf[b * W] === 0) continue;
      const lo = this.#x0 + b * w;
      const h = Math.floor((2 * lo) / delta);
      if (h === Math.floor((2 * (lo + w)) / delta)) {
        const k = Math.floor(h / 2);
        const g = (h % 2 === 0 ? k : k + 1) * delta;
        const ctr = lo + w / 2;
        const dist = Math.abs(ctr - g);
        if (w <= dist) {
          const inv = (ctr >= g ? 1 : -1) / dist;
          let acc = 0, pw = 1;
          for (let t = 0; t <= J; t++) {
            acc += beta[t]! * leaf[b * W + t]! * pw;
            pw *= inv;
          }
          out[Math.min(count - 1, Math.max(0, k - k0))]! += powp(dist, p) * acc;
          continue;
        }
      }
      for (let e = this.#offsets[b]!, end = this.#offsets[b + 1]!; e < end; e++) {
        const t = v[e]! / delta;
        const k = Math.floor(t);
        const f = t - k;
        out[Math.min(count - 1, Math.max(0, k - k0))]! += cnt[e]! * powp((f <= 0.5 ? f : 1 - f) * delta, p);
      }
    }
    return out;
  }

  /** Number of bins. */
  get bins(): number {
    return this.#offsets.length - 1;
  }

  /**
   * A cheap lower bound of Σ_{x<c} (c − x)^p (side −1) or Σ_{x≥c} (x − c)^p (side +1), p ≥ 2: over the whole bins on
   * that side of c's bin, Σ u^p ≥ count·(Σu²/count)^(p/2) (Jensen), from prefix sums of 1, x, x².
   */
  clipBound(c: number, side: 1 | -1, p: number): number {
    const bins = this.#offsets.length - 1;
    const b = Math.floor((c - this.#x0) / this.#w);
    const [from, to] = side < 0 ? [0, Math.min(bins, b)] : [Math.max(0, b + 1), bins];
    if (to <= from) return 0;
    const [p0, p1, p2] = this.#prefix;
    const n = p0[to]! - p0[from]!;
    if (n === 0) return 0;
    const s1 = p1[to]! - p1[from]!, s2 = p2[to]! - p2[from]!;
    // Σ(x − c)² from raw sums cancels: subtract a generous bound of the rounding error so this stays a lower bound.
    const sq = n * c * c - 2 * c * s1 + s2 - 1e-12 * (n * c * c + 2 * Math.abs(c * s1) + s2);
    return sq > 0 ? n * powp(sq / n, p / 2) * (1 - 1e-9) : 0;
  }

  /** [Σ 1, Σ x, Σ x²] over the elements with a ≤ x < b. */
  moments(a: number, b: number): [number, number, number] {
    const out: [number, number, number] = [0, 0, 0];
    if (a < b && b > this.min && a <= this.max) this.#mom(this.#depth, 0, a, b, out);
    return out;
  }

  #mom(lvl: number, j: number, a: number, b: number, out: [number, number, number]): void {
    const m = this.#moments[lvl]!;
    const n = m[j * W]!;
    if (n === 0) return;
    const width = this.#w * 2 ** lvl;
    const lo = this.#x0 + j * width;
    const hi = lo + width;
    if (hi <= a || lo >= b) return;
    if (lo >= a && hi <= b) {
      const c = lo + width / 2, m1 = m[j * W + 1]!, m2 = m[j * W + 2]!;
      out[0] += n;
      out[1] += m1 + c * n;
      out[2] += m2 + 2 * c * m1 + c * c * n;
      return;
    }
    if (lvl === 0) {
      const v = this.#values, cnt = this.#counts;
      for (let k = this.#offsets[j]!, e = this.#offsets[j + 1]!; k < e; k++) {
        const x = v[k]!, w = cnt[k]!;
        if (x >= a && x < b) {
          out[0] += w;
          out[1] += w * x;
          out[2] += w * x * x;
        }
      }
      return;
    }
    this.#mom(lvl - 1, 2 * j, a, b, out);
    this.#mom(lvl - 1, 2 * j + 1, a, b, out);
  }
}
