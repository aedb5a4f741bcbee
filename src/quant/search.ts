/**
 * Scale initialisation searches of PDQUANT.md §2, reproducing the reference's UniformAffineQuantizer
 * (perform_1D_search / perform_2D_search): the same candidate ranges computed by the same float32 ops, the same
 * score, and the same choice (the first candidate, in the reference's loop order, with the lowest score).
 * Small searches score every candidate on the engine in vectorised batches ([k, C, M] tensors, all channels at
 * once); large ones (100·2^b candidates × millions of elements) estimate the scores from a binned summary of the
 * data and re-score only the near-best on the engine.
 */
import { Tensor, tensor, int64, arange, tidy, noGrad } from '../engine/index.js';
import { nearBestRows } from './row-pool.js';
import { collectGarbage } from '../util/gc.js';

export type InitMethod = 'minmax' | 'mse' | 'cosine';

export const INIT_METHODS: readonly InitMethod[] = ['minmax', 'mse', 'cosine'];
/** Number of range fractions tried (the reference's `num`). */
export const SEARCH_STEPS = 100;
/** Exponent of the MSE search's score mean(|x − x̂|^p). */
export const SCORE_P = 2.4;
/** The smallest step a quantizer takes: initialisation's floor (the reference's calculate_qparams), kept while steps are learned. */
export const MIN_STEP = 1e-8;
/** Elements per score batch: k candidates × C × M stay below this (about 32 MB per float32 temporary). */
const BATCH_ELEMENTS = 1 << 23;

/**
 * delta = max((hi' − lo')/(n − 1), 1e-8), zeroPoint = clamp(−round(lo'/delta), 0, n − 1) with lo' = min(lo, 0),
 * hi' = max(hi, 0): the reference's calculate_qparams, op for op (any broadcastable shapes).
 */
export function calcQParams(lo: Tensor, hi: Tensor, levels: number): { delta: Tensor; zeroPoint: Tensor } {
  return tidy(() => {
    const loNeg = lo.minimum(0);
    const hiPos = hi.maximum(0);
    const delta = hiPos.sub(loNeg).div(levels - 1).maximum(MIN_STEP);
    // 0 − round(·) as the reference writes it (neg() alone would give −0 for a zero point of 0).
    const zeroPoint = loNeg.div(delta).round().neg().add(0).clamp(0, levels - 1);
    return { delta, zeroPoint };
  });
}

/** Candidate ranges [K, C] in the reference's loop order (i outer, zero point inner). */
function candidates(xmin: Tensor, xmax: Tensor, levels: number, side: 'pos' | 'neg' | 'no' | 'symmetric'): { lo: Tensor; hi: Tensor } {
  return tidy(() => {
    const dev = { device: xmin.device };
    const steps = arange(1, SEARCH_STEPS + 1, 1, { dtype: 'float32', ...dev }).reshape([SEARCH_STEPS, 1]);
    if (side === 'symmetric') {
      // Width w = 2·max(|min|, max)·i/100 with the zero point fixed at n/2: [−(n/2)·w/(n−1), w − (n/2)·w/(n−1)].
      const width = xmin.abs().maximum(xmax).mul(2 / SEARCH_STEPS).reshape([1, -1]).mul(steps);
      const lo = width.mul(-(levels / 2) / (levels - 1));
      return { lo, hi: width.add(lo) };
    }
    if (side !== 'no') {
      // xrange = max(|min|, max); thres = xrange / num * i
      const thres = xmin.abs().maximum(xmax).div(SEARCH_STEPS).reshape([1, -1]).mul(steps);
      const zero = thres.mul(0);
      return side === 'pos' ? { lo: zero, hi: thres } : { lo: thres.neg(), hi: zero };
    }
    // Per channel the range always includes 0 (a no-op for two-sided per-tensor data).
    const xrange = xmax.maximum(0).sub(xmin.minimum(0));
    const tmpMax = xrange.div(SEARCH_STEPS).reshape([1, 1, -1]).mul(steps.reshape([SEARCH_STEPS, 1, 1])); // [100,1,C]
    const tmpDelta = tmpMax.div(levels - 1);
    const zps = arange(0, levels, 1, { dtype: 'float32', ...dev }).reshape([1, levels, 1]);
    const shift = tmpDelta.mul(zps); // [100, n, C]
    const c = xmin.shape[0]!;
    return { lo: shift.neg().reshape([-1, c]), hi: tmpMax.sub(shift).reshape([-1, c]) };
  });
}

/** Applies the steps in turn, freeing each intermediate result as soon as the next exists (x itself is kept). */
function through(x: Tensor, ...steps: ((t: Tensor) => Tensor)[]): Tensor {
  let t = x;
  for (const step of steps) {
    const next = step(t);
    if (t !== x) t.dispose();
    t = next;
  }
  return t;
}

/**
 * Scores [k, C] of candidate ranges lo, hi [k, C] on x2 [C, M] (lower is better). Each element-wise temporary is
 * freed when the next one exists: a re-scored row can be a whole activation (hundreds of MB at 256 images).
 */
function scoreBatch(x2: Tensor, lo: Tensor, hi: Tensor, levels: number, method: 'mse' | 'cosine'): Tensor {
  return tidy(() => {
    const [k, c] = lo.shape as [number, number];
    const { delta, zeroPoint } = calcQParams(lo, hi, levels);
    const d = delta.reshape([k, c, 1]);
    const z = zeroPoint.reshape([k, c, 1]);
    const x = x2.reshape([1, c, -1]);
    const xq = through(x, (t) => t.div(d), (t) => t.round(), (t) => t.add(z), (t) => t.clamp(0, levels - 1), (t) => t.sub(z), (t) => t.mul(d));
    if (method === 'mse') return through(xq, (t) => x.sub(t), (t) => t.abs(), (t) => t.pow(SCORE_P), (t) => t.mean([2]));
    const dot = through(xq, (t) => x.mul(t), (t) => t.sum([2]));
    const xNorm = through(x, (t) => t.mul(t), (t) => t.sum([2]), (t) => t.sqrt());
    const xqNorm = through(xq, (t) => t.mul(t), (t) => t.sum([2]), (t) => t.sqrt());
    return dot.div(xNorm.mul(xqNorm).maximum(1e-8)).neg();
  });
}

/** How searchRange scores candidates: every candidate on the engine, estimates with the near-best verified, or auto. */
export type SearchStrategy = 'auto' | 'exhaustive' | 'fast';
/** Elements of a search above which its garbage is collected at once (64 MB of float32). */
const LARGE_SEARCH = 1 << 24;
/** Above this many candidate × element evaluations, 'auto' uses the fast strategy. */
export const EXHAUSTIVE_LIMIT = 1 << 22;

/**
 * The range [lo, hi] (each [C]) chosen for x2 [C, M] by `method`. One- or two-sidedness is decided once from the
 * whole tensor (all ≥ 0: 'pos', all ≤ 0: 'neg'): one-sided data try [0, r·i/100] (or [−r·i/100, 0]) with
 * r = max(|min|, max); two-sided data try width w = R·i/100 and every zero point zp: [−zp·w/(n−1), w − zp·w/(n−1)].
 * `symmetric` (a grid for integer kernels that take signed codes with zero point 0) keeps the zero point at n/2 and
 * tries only the widths w = 2·max(|min|, max)·i/100.
 *
 * 'exhaustive' scores every candidate on the engine in float32, op for op as the reference. 'fast' estimates every
 * score in double precision, row by row, from a binned summary of the data (estimate.ts); when several candidates
 * of a row are within a hair of the best estimate (tieSlack(M) relative for mse, 3e-7 for cosine), their float32
 * scores are computed exactly as 'exhaustive' does and decide, so both strategies pick the same candidate. 'auto':
 * exhaustive up to EXHAUSTIVE_LIMIT candidate × element evaluations.
 */
export function searchRange(x2: Tensor, levels: number, method: InitMethod, strategy: SearchStrategy = 'auto', symmetric = false): { lo: Tensor; hi: Tensor } {
  if (!INIT_METHODS.includes(method))
    throw new RangeError(`Expected one of ${INIT_METHODS.join(', ')} for the init method but received ${String(method)}`);
  return noGrad(() =>
    tidy(() => {
      const xmin = x2.amin([1]);
      const xmax = x2.amax([1]);
      if (method === 'minmax') {
        if (!symmetric) return { lo: xmin, hi: xmax };
        const m = xmin.abs().maximum(xmax);
        return { lo: m.mul(-(levels / 2) / (levels / 2 - 1)), hi: m }; // δ = max|x|/(n/2 − 1), zero point n/2
      }
      const gmin = xmin.amin().item(), gmax = xmax.amax().item();
      const side = symmetric ? 'symmetric' : gmin >= 0 ? 'pos' : gmax <= 0 ? 'neg' : 'no';
      const cand = candidates(xmin, xmax, levels, side);
      const [k, c] = cand.lo.shape as [number, number];
      const m = x2.shape[1]!;
      const exhaustive = strategy === 'exhaustive' || (strategy === 'auto' && k * c * m <= EXHAUSTIVE_LIMIT);
      const best = exhaustive
        ? firstBest(exhaustiveScores(x2, cand.lo, cand.hi, levels, method), k, c)
        : fastBest(x2, cand.lo, cand.hi, levels, method, side === 'no' ? levels : 1);
      // fastBest's copy and summary of the data are garbage now: at GB sizes, free them before the engine needs more.
      if (!exhaustive && c * m >= LARGE_SEARCH) collectGarbage();
      // Only the chosen candidates leave the engine (the tables are 25,600 × C at 8 bits).
      const chosen = int64(Array.from(best, (b, j) => Math.max(b, 0) * c + j)).to({ device: x2.device });
      const loAll = cand.lo.reshape([-1]).indexSelect(0, chosen).data() as Float32Array;
      const hiAll = cand.hi.reshape([-1]).indexSelect(0, chosen).data() as Float32Array;
      const xminA = xmin.data() as Float32Array, xmaxA = xmax.data() as Float32Array;
      const lo = new Float32Array(c), hi = new Float32Array(c);
      for (let j = 0; j < c; j++) {
        lo[j] = best[j]! < 0 ? xminA[j]! : loAll[j]!;
        hi[j] = best[j]! < 0 ? xmaxA[j]! : hiAll[j]!;
      }
      const dev = { device: x2.device };
      return { lo: tensor(lo, [c], dev), hi: tensor(hi, [c], dev) };
    }),
  );
}

/** Scores [K·C] of every candidate, in batches of about BATCH_ELEMENTS elements. */
function exhaustiveScores(x2: Tensor, lo: Tensor, hi: Tensor, levels: number, method: 'mse' | 'cosine'): Float32Array {
  const [k, c] = lo.shape as [number, number];
  const per = Math.max(1, Math.floor(BATCH_ELEMENTS / (c * x2.shape[1]!)));
  const scores = new Float32Array(k * c);
  for (let s = 0; s < k; s += per) {
    const e = Math.min(k, s + per);
    const sc = tidy(() => scoreBatch(x2, lo.slice(0, s, e), hi.slice(0, s, e), levels, method));
    scores.set(sc.data() as Float32Array, s * c);
    sc.dispose();
  }
  return scores;
}

/** The fast strategy: per row, estimates (estimate.ts); for mse the near-best are re-scored on the engine. */
function fastBest(x2: Tensor, loT: Tensor, hiT: Tensor, levels: number, method: 'mse' | 'cosine', groupSize: number): Int32Array {
  const [k, c] = loT.shape as [number, number];
  const m = x2.shape[1]!;
  const { delta: dT, zeroPoint: zT } = calcQParams(loT, hiT, levels);
  const deltaAll = dT.data() as Float32Array, zpAll = zT.data() as Float32Array;
  const data = x2.data() as Float32Array;
  const best = new Int32Array(c).fill(-1);
  const ties: [number, number][] = []; // (candidate, row)
  const search = { deltaAll, zpAll, k, c, levels, method, p: SCORE_P, groupSize };
  nearBestRows(data, m, search).forEach((near, j) => {
    // A lone near-best candidate is the answer; near-ties are decided by their float32 scores.
    if (near.length === 1) best[j] = near[0]!;
    else for (const i of near) ties.push([i, j]);
  });
  if (ties.length > 0) {
    const scores = rescore(x2, loT, hiT, ties, levels, method);
    const bestScore = new Float64Array(c).fill(1e10);
    // ties are in candidate order within each row: the first strict best wins, as in the reference's loop.
    ties.forEach(([i, j], t) => {
      if (scores[t]! < bestScore[j]!) {
        bestScore[j] = scores[t]!;
        best[j] = i;
      }
    });
  }
  return best;
}

/** Float32 scores, as exhaustiveScores computes them, of the (candidate, row) pairs. */
function rescore(x2: Tensor, loT: Tensor, hiT: Tensor, pairs: [number, number][], levels: number, method: 'mse' | 'cosine'): Float32Array {
  const c = loT.shape[1]!, m = x2.shape[1]!;
  const per = Math.max(1, Math.floor(BATCH_ELEMENTS / m));
  const out = new Float32Array(pairs.length);
  const flatLo = loT.reshape([-1]), flatHi = hiT.reshape([-1]);
  for (let s = 0; s < pairs.length; s += per) {
    const chunk = pairs.slice(s, s + per);
    const sc = tidy(() => {
      const dev = { device: x2.device };
      const flat = int64(chunk.map(([i, j]) => i * c + j)).to(dev);
      const rows = x2.indexSelect(0, int64(chunk.map(([, j]) => j)).to(dev));
      const lo = flatLo.indexSelect(0, flat).reshape([1, -1]), hi = flatHi.indexSelect(0, flat).reshape([1, -1]);
      // The same ops as exhaustiveScores, with one candidate per row.
      return scoreBatch(rows, lo, hi, levels, method);
    });
    out.set(sc.data() as Float32Array, s);
    sc.dispose();
  }
  return out;
}

/** Per column of scores [K, C], the first row with the lowest score (strict <, starting from 1e10), or −1. */
export function firstBest(scores: Float32Array, k: number, c: number): Int32Array {
  const best = new Int32Array(c).fill(-1);
  const bestScore = new Float64Array(c).fill(1e10);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < c; j++) {
      const s = scores[i * c + j]!;
      if (s < bestScore[j]!) {
        bestScore[j] = s;
        best[j] = i;
      }
    }
  }
  return best;
}
