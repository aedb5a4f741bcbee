/** Optimisers acting in place on parameter tensors (same update rules as torch.optim). */
import { native } from './native.js';
import { Tensor, tensor, zeros } from './tensor.js';
import { keep } from './scope.js';
import { call } from './errors.js';

export interface ParamGroup {
  params: Tensor[];
  /** A number, or a tensor broadcast against each parameter (e.g. one rate per batch row). */
  lr: number | Tensor;
}

/** A parameter's moment estimates (in its own dtype: float32 or float64) and its step count. */
export interface AdamSnapshot {
  m: Float32Array | Float64Array;
  v: Float32Array | Float64Array;
  step: number;
}

interface AdamState {
  m: Tensor;
  v: Tensor;
  step: number;
}

export interface AdamOptions {
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

/** Adam as torch.optim.Adam (no amsgrad). Learning rates may be changed between steps per group. */
export class Adam {
  readonly groups: ParamGroup[];
  readonly #b1: number;
  readonly #b2: number;
  readonly #eps: number;
  readonly #wd: number;
  readonly #state = new Map<Tensor, AdamState>();

  constructor(groups: ParamGroup[], o: AdamOptions = {}) {
    this.groups = groups;
    [this.#b1, this.#b2] = o.betas ?? [0.9, 0.999];
    this.#eps = o.eps ?? 1e-8;
    this.#wd = o.weightDecay ?? 0;
  }

  /** Applies one update to every parameter that has a gradient. */
  step(): void {
    for (const g of this.groups) {
      for (const p of g.params) {
        const grad = native.grad(p.handle);
        if (grad === null) continue;
        let s = this.#state.get(p);
        if (!s) {
          s = { m: keep(zeros(p.shape, { device: p.device, dtype: p.dtype })), v: keep(zeros(p.shape, { device: p.device, dtype: p.dtype })), step: 0 };
          this.#state.set(p, s);
        }
        s.step++;
        const st = s;
        const lr = typeof g.lr === 'number' ? g.lr : g.lr.handle;
        try {
          call('Adam.step', () => native.adamStep(p.handle, grad, st.m.handle, st.v.handle, st.step, lr, this.#b1, this.#b2, this.#eps, this.#wd));
        } finally {
          native.free(grad);
        }
      }
    }
  }

  zeroGrad(): void {
    for (const g of this.groups) for (const p of g.params) p.zeroGrad();
  }

  /** Each parameter's moment estimates and step count, in group order (null before its first step): restore() takes them back. */
  snapshot(): (AdamSnapshot | null)[] {
    return this.groups.flatMap((g) => g.params).map((p) => {
      const s = this.#state.get(p);
      return s ? { m: s.m.data() as Float32Array | Float64Array, v: s.v.data() as Float32Array | Float64Array, step: s.step } : null;
    });
  }

  /** Puts back what snapshot() returned for the same parameters, so that the next step() is the one that would have followed. */
  restore(snapshot: readonly (AdamSnapshot | null)[]): void {
    const params = this.groups.flatMap((g) => g.params);
    if (snapshot.length !== params.length) throw new RangeError(`Adam.restore: ${snapshot.length} saved states for ${params.length} parameters`);
    this.dispose();
    params.forEach((p, i) => {
      const s = snapshot[i];
      if (!s) return;
      if (s.m.length !== p.size || s.v.length !== p.size) throw new RangeError(`Adam.restore: a saved state of ${s.m.length} values for a parameter of ${p.size}`);
      const o = { device: p.device, dtype: p.dtype };
      this.#state.set(p, { m: keep(tensor(s.m, p.shape, o)), v: keep(tensor(s.v, p.shape, o)), step: s.step });
    });
  }

  /** Frees the moment estimates. */
  dispose(): void {
    for (const s of this.#state.values()) {
      s.m.dispose();
      s.v.dispose();
    }
    this.#state.clear();
  }
}

/** SGD with momentum (dampening 0, no Nesterov) as torch.optim.SGD. */
export class SGD {
  readonly groups: ParamGroup[];
  readonly #momentum: number;
  readonly #wd: number;
  readonly #buf = new Map<Tensor, Tensor>();

  constructor(groups: ParamGroup[], o: { momentum?: number; weightDecay?: number } = {}) {
    this.groups = groups;
    this.#momentum = o.momentum ?? 0;
    this.#wd = o.weightDecay ?? 0;
  }

  step(): void {
    for (const g of this.groups) {
      if (typeof g.lr !== 'number') throw new TypeError('Error in SGD.step: lr must be a number');
      for (const p of g.params) {
        const grad = native.grad(p.handle);
        if (grad === null) continue;
        let buf = this.#buf.get(p);
        const first = buf === undefined;
        if (!buf && this.#momentum !== 0) {
          buf = keep(zeros(p.shape, { device: p.device, dtype: p.dtype }));
          this.#buf.set(p, buf);
        }
        const lr = g.lr;
        try {
          call('SGD.step', () => native.sgdStep(p.handle, grad, buf?.handle ?? null, lr, this.#momentum, this.#wd, first));
        } finally {
          native.free(grad);
        }
      }
    }
  }

  zeroGrad(): void {
    for (const g of this.groups) for (const p of g.params) p.zeroGrad();
  }

  dispose(): void {
    for (const b of this.#buf.values()) b.dispose();
    this.#buf.clear();
  }
}
