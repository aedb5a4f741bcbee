/** Uniform affine (asymmetric) fake quantizer with minmax / MSE / cosine scale initialisation (PDQUANT.md §2). */
import { Tensor, tensor, keep, tidy, noGrad, fakeQuantize, dropFakeQuantize } from '../engine/index.js';
import { searchRange, calcQParams, type InitMethod, type SearchStrategy } from './search.js';

export type { InitMethod, SearchStrategy } from './search.js';

/** Serialised quantizer: plain JSON. `shape` is the shape of delta / zeroPoint ([] per tensor, [C,1,...] per channel). */
export interface UniformQuantizerState {
  bits: number;
  channelWise: boolean;
  shape: number[];
  delta: number[];
  zeroPoint: number[];
}

export interface UniformQuantizerOptions {
  bits: number;
  /** One (delta, zeroPoint) per output channel (axis 0) instead of one per tensor. */
  channelWise?: boolean;
  /**
   * init() keeps the zero point at 2^(bits−1), so q − z spans −2^(bits−1)..2^(bits−1)−1: signed codes with zero point
   * 0, which integer kernels (onnxruntime's int8 QLinearConv fast path) need of 8-bit weights.
   */
  symmetric?: boolean;
}

/** Throws the RangeError users see for a bit-width outside 2..8. */
export function checkBits(bits: number, what = 'bits'): void {
  if (!Number.isInteger(bits) || bits < 2 || bits > 8) throw new RangeError(`Expected integer 2..8 for ${what} but received ${bits}`);
}

/**
 * x̂ = (clamp(round(x/δ) + z, 0, n−1) − z)·δ with n = 2^bits. Round is straight-through, so gradients reach
 * x (0 where clamped) and δ through both x/δ and ·δ (LSQ), as the reference's UniformAffineQuantizer.
 */
export class UniformQuantizer {
  readonly bits: number;
  readonly levels: number;
  readonly channelWise: boolean;
  readonly symmetric: boolean;
  #delta: Tensor | null = null;
  #zeroPoint: Tensor | null = null;

  constructor(o: UniformQuantizerOptions) {
    checkBits(o.bits);
    this.bits = o.bits;
    this.levels = 2 ** o.bits;
    this.channelWise = o.channelWise ?? false;
    this.symmetric = o.symmetric ?? false;
  }

  /** A quantizer with the given parameters (e.g. from state()). */
  static fromState(s: UniformQuantizerState): UniformQuantizer {
    return new UniformQuantizer({ bits: s.bits, channelWise: s.channelWise }).load(s);
  }

  get initialized(): boolean {
    return this.#delta !== null;
  }
  /** Step size: [] per tensor, [C,1,...] per channel. */
  get delta(): Tensor {
    if (!this.#delta) throw new Error('Error in UniformQuantizer: not initialised (call init() or load())');
    return this.#delta;
  }
  get zeroPoint(): Tensor {
    if (!this.#zeroPoint) throw new Error('Error in UniformQuantizer: not initialised (call init() or load())');
    return this.#zeroPoint;
  }
  /** The trainable parameters: [delta] while learnable, else []. */
  get params(): Tensor[] {
    return this.#delta?.requiresGrad ? [this.#delta] : [];
  }

  /**
   * Sets delta and zero point from x: 'minmax' (range [min, max]), 'mse' (default; the reference's search minimising
   * mean |x − x̂|^2.4) or 'cosine' (same candidates, maximising the cosine similarity of x and x̂). Per channel
   * along axis 0 when channelWise. Not differentiable; leaves learnable() off. `strategy` (search.ts) only changes the
   * speed: large searches estimate the scores and re-score the near-best exactly.
   */
  init(x: Tensor, method: InitMethod = 'mse', strategy: SearchStrategy = 'auto'): this {
    if (this.channelWise && x.rank < 2)
      throw new RangeError(`Error in UniformQuantizer.init: per-channel quantization needs rank >= 2, got rank ${x.rank}`);
    if (x.size === 0) throw new RangeError('Error in UniformQuantizer.init: empty tensor');
    const shape = this.channelWise ? [x.shape[0]!, ...Array<number>(x.rank - 1).fill(1)] : [];
    const [delta, zp] = noGrad(() =>
      tidy(() => {
        const x2 = (this.channelWise ? x.reshape([x.shape[0]!, -1]) : x.reshape([1, -1])).detach();
        const { lo, hi } = searchRange(x2, this.levels, method, strategy, this.symmetric);
        const q = calcQParams(lo, hi, this.levels);
        // Exactly n/2 (calcQParams rounds −lo/δ, which float error could move off it).
        const zp = this.symmetric ? q.zeroPoint.mul(0).add(this.levels / 2) : q.zeroPoint;
        return [q.delta.reshape(shape).contiguous(), zp.reshape(shape).contiguous()];
      }),
    );
    this.#set(delta!, zp!);
    return this;
  }

  /** Fake-quantizes x (see the class comment). */
  forward(x: Tensor): Tensor {
    const d = this.delta, z = this.zeroPoint;
    return fakeQuantize(x, d, z, 0, this.levels - 1);
  }

  /** QDrop: fake-quantizes each element of x with probability p (a fresh draw every call), passes it through otherwise. */
  forwardDrop(x: Tensor, p: number): Tensor {
    return dropFakeQuantize(x, this.delta, this.zeroPoint, 0, this.levels - 1, p);
  }

  /** The integer codes q = clamp(round(x/δ) + z, 0, n−1) (float tensor, no gradient). */
  quantizeInt(x: Tensor): Tensor {
    const d = this.delta, z = this.zeroPoint;
    return noGrad(() => tidy(() => x.div(d).round().add(z).clamp(0, this.levels - 1)));
  }

  /** Makes delta a parameter (requiresGrad) for learned step sizes, or a constant again. */
  learnable(on = true): this {
    if (this.delta.requiresGrad === on) return this;
    const d = noGrad(() => this.delta.detach().clone());
    this.#delta!.dispose();
    this.#delta = keep(d);
    if (on) this.#delta.requiresGrad_(true);
    return this;
  }

  state(): UniformQuantizerState {
    return {
      bits: this.bits,
      channelWise: this.channelWise,
      shape: [...this.delta.shape],
      delta: this.delta.toArray(),
      zeroPoint: this.zeroPoint.toArray(),
    };
  }

  /** Restores delta and zero point (bits and channelWise must match). Not learnable afterwards. */
  load(s: UniformQuantizerState, device?: string): this {
    if (s.bits !== this.bits || s.channelWise !== this.channelWise)
      throw new Error(`Error in UniformQuantizer.load: state is ${s.bits}-bit ${s.channelWise ? 'per-channel' : 'per-tensor'}, quantizer is ${this.bits}-bit ${this.channelWise ? 'per-channel' : 'per-tensor'}`);
    const n = s.shape.reduce((a, b) => a * b, 1);
    if (s.delta.length !== n || s.zeroPoint.length !== n)
      throw new RangeError(`Error in UniformQuantizer.load: shape [${s.shape}] needs ${n} values, got ${s.delta.length} deltas and ${s.zeroPoint.length} zero points`);
    const opts = device ? { device } : {};
    this.#set(tensor(s.delta, s.shape, opts), tensor(s.zeroPoint, s.shape, opts));
    return this;
  }

  /** Frees delta and zero point. */
  dispose(): void {
    this.#delta?.dispose();
    this.#zeroPoint?.dispose();
    this.#delta = this.#zeroPoint = null;
  }

  #set(delta: Tensor, zp: Tensor): void {
    this.dispose();
    this.#delta = keep(delta);
    this.#zeroPoint = keep(zp);
  }
}
