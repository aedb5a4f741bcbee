/** Schedules of the reconstruction: the rounding temperature β, cosine annealing and ReduceLROnPlateau (torch semantics). */

export interface TempDecayOptions {
  /** Total iterations. */
  iters: number;
  /** Fraction of the iterations before the decay starts (the rounding loss is off until then). */
  warmup: number;
  /** β during warm-up and at the start of the decay. */
  start: number;
  /** β at the last iteration. */
  end: number;
}

/**
 * β(t) of the reference's LinearTempDecay, t the 1-based iteration: β = start while t < warmup·iters, then
 * end + (start − end)·max(0, 1 − (t − warmup·iters)/(iters − warmup·iters)).
 */
export function linearTempDecay(o: TempDecayOptions): (t: number) => number {
  if (!Number.isInteger(o.iters) || o.iters < 1) throw new RangeError(`Expected a positive integer for iters but received ${o.iters}`);
  if (!(o.warmup >= 0 && o.warmup < 1)) throw new RangeError(`Expected 0 <= warmup < 1 but received ${o.warmup}`);
  const startDecay = o.warmup * o.iters;
  return (t) => {
    if (t < startDecay) return o.start;
    const rel = (t - startDecay) / (o.iters - startDecay);
    return o.end + (o.start - o.end) * Math.max(0, 1 - rel);
  };
}

/** lr(t) = lr0·(1 + cos(π·t/T))/2: CosineAnnealingLR's closed form with eta_min 0 (t = number of scheduler steps). */
export function cosineAnnealing(lr0: number, T: number): (t: number) => number {
  if (!(T > 0)) throw new RangeError(`Expected a positive period T but received ${T}`);
  return (t) => (lr0 * (1 + Math.cos((Math.PI * t) / T))) / 2;
}

export interface PlateauOptions {
  /** Initial learning rate. */
  lr: number;
  /** Multiplier applied on a plateau (default 0.1). */
  factor?: number;
  /** Steps without improvement tolerated before a reduction (default 10). */
  patience?: number;
  /** Relative improvement that counts: metric < best·(1 − threshold) (default 1e-4). */
  threshold?: number;
  minLr?: number;
  /** Steps to wait after a reduction before counting bad steps again (default 0). */
  cooldown?: number;
  /** Reductions smaller than this are skipped (default 1e-8). */
  eps?: number;
}

function resolve(o: PlateauOptions): Required<PlateauOptions> {
  const r = { factor: 0.1, patience: 10, threshold: 1e-4, minLr: 0, cooldown: 0, eps: 1e-8, ...o };
  if (!(r.factor < 1 && r.factor >= 0)) throw new RangeError(`Expected 0 <= factor < 1 but received ${r.factor}`);
  if (!Number.isInteger(r.patience) || r.patience < 0) throw new RangeError(`Expected a non-negative integer for patience but received ${r.patience}`);
  return r;
}

/**
 * K independent torch.optim.lr_scheduler.ReduceLROnPlateau schedules (mode 'min', threshold_mode 'rel') stepped
 * together, e.g. one per calibration batch in distribution correction.
 */
export class PlateauSchedules {
  readonly count: number;
  readonly #o: Required<PlateauOptions>;
  readonly #lr: Float64Array;
  readonly #best: Float64Array;
  readonly #bad: Int32Array;
  readonly #cooldown: Int32Array;

  constructor(count: number, o: PlateauOptions) {
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`Expected a positive integer for the schedule count but received ${count}`);
    this.count = count;
    this.#o = resolve(o);
    this.#lr = new Float64Array(count).fill(o.lr);
    this.#best = new Float64Array(count).fill(Infinity);
    this.#bad = new Int32Array(count);
    this.#cooldown = new Int32Array(count);
  }

  /** The current learning rates (a view: do not modify). */
  get lrs(): Float64Array {
    return this.#lr;
  }

  /** One step with each schedule's metric; returns the learning rates for the next step. */
  step(metrics: ArrayLike<number>): Float64Array {
    if (metrics.length !== this.count) throw new RangeError(`Error in PlateauSchedules.step: expected ${this.count} metrics, got ${metrics.length}`);
    const o = this.#o;
    for (let k = 0; k < this.count; k++) {
      const m = Number(metrics[k]);
      if (m < this.#best[k]! * (1 - o.threshold)) {
        this.#best[k] = m;
        this.#bad[k] = 0;
      } else this.#bad[k]!++;
      if (this.#cooldown[k]! > 0) {
        this.#cooldown[k]!--;
        this.#bad[k] = 0;
      }
      if (this.#bad[k]! > o.patience) {
        const old = this.#lr[k]!;
        const next = Math.max(old * o.factor, o.minLr);
        if (old - next > o.eps) this.#lr[k] = next;
        this.#cooldown[k] = o.cooldown;
        this.#bad[k] = 0;
      }
    }
    return this.#lr;
  }
}

/** One ReduceLROnPlateau schedule (torch semantics, mode 'min', relative threshold). */
export class ReduceLROnPlateau {
  readonly #s: PlateauSchedules;
  constructor(o: PlateauOptions) {
    this.#s = new PlateauSchedules(1, o);
  }
  get lr(): number {
    return this.#s.lrs[0]!;
  }
  /** One step with the metric; returns the learning rate for the next step. */
  step(metric: number): number {
    return this.#s.step([metric])[0]!;
  }
}
