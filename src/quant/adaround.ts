/** AdaRound: learned up/down rounding of weights over a uniform quantizer (PDQUANT.md §5 steps 5 and 8). */
import { Tensor, tensor, ones, keep, tidy, noGrad } from '../engine/index.js';
import type { UniformQuantizer } from './uniform.js';

/** Stretch of the rectified sigmoid h(α) = clamp(sigmoid(α)(ζ − γ) + γ, 0, 1). */
export const GAMMA = -0.1;
export const ZETA = 1.1;

/** Serialised hard rounding: bit k of the mask (row-major over the weight) is 1 where weight k rounds up. */
export interface AdaRoundState {
  bits: number;
  shape: number[];
  /** base64 of the bit mask, least significant bit first. */
  roundUp: string;
}

/** Σ (1 − |2h − 1|^β) of soft targets h, written as the reference does: 1 − (|h − 0.5|·2)^β. */
export function roundingRegularizer(h: Tensor, beta: number): Tensor {
  return tidy(() => {
    const a = h.sub(0.5).abs().mul(2);
    // torch's pow(x, 2.0) is x·x; keep that exact case.
    return (beta === 2 ? a.mul(a) : a.pow(beta)).neg().add(1).sum();
  });
}

/**
 * ŵ = (clamp(floor(w/δ) + h(α) + z, 0, n−1) − z)·δ with δ, z those of the given (initialised) quantizer. α starts at
 * −log((ζ − γ)/(rest − γ) − 1), rest = w/δ − floor(w/δ), so that h(α) = rest and ŵ = w inside the range. After
 * harden(), the rounding is floor(w/δ) + [α ≥ 0] and α is freed. The quantizer stays owned by the caller.
 */
export class AdaRoundQuantizer {
  readonly quantizer: UniformQuantizer;
  readonly shape: number[];
  /** Soft rounding in forward() while true (and not hardened); hard rounding [α ≥ 0] otherwise. */
  soft = true;
  #floor: Tensor;
  #alpha: Tensor | null = null;
  /** 0/1 after harden(). */
  #up: Tensor | null = null;

  constructor(quantizer: UniformQuantizer, weight: Tensor) {
    this.quantizer = quantizer;
    this.shape = [...weight.shape];
    const d = quantizer.delta;
    const [floor, alpha] = noGrad(() =>
      tidy(() => {
        const scaled = weight.detach().div(d);
        const floor = scaled.floor();
        const rest = scaled.sub(floor);
        // (ζ − γ)/(rest − γ) as torch evaluates a Python scalar over a tensor: reciprocal(rest − γ)·(ζ − γ).
        const ratio = ones(rest.shape, { device: rest.device }).div(rest.sub(GAMMA)).mul(ZETA - GAMMA);
        return [floor, ratio.sub(1).log().neg()];
      }),
    );
    this.#floor = keep(floor!);
    this.#alpha = keep(alpha!).requiresGrad_(true);
  }

  /** The rounding variable α (a parameter, requiresGrad), same shape as the weight. */
  get alpha(): Tensor {
    if (!this.#alpha) throw new Error('Error in AdaRoundQuantizer: α was freed by harden()');
    return this.#alpha;
  }
  get hardened(): boolean {
    return this.#up !== null;
  }

  /** h(α) = clamp(sigmoid(α)(ζ − γ) + γ, 0, 1). */
  softTargets(): Tensor {
    const a = this.alpha;
    return tidy(() => a.sigmoid().mul(ZETA - GAMMA).add(GAMMA).clamp(0, 1));
  }

  /** The fake-quantized weight: soft (differentiable in α) or hard. */
  forward(): Tensor {
    const { delta: d, zeroPoint: z } = this.quantizer;
    const n = this.quantizer.levels;
    return tidy(() => {
      const up = this.#up ?? (this.soft ? this.softTargets() : noGrad(() => this.alpha.ge(0).to({ dtype: 'float32' })));
      return this.#floor.add(up).add(z).clamp(0, n - 1).sub(z).mul(d);
    });
  }

  /** Σ over the weight of 1 − |2h(α) − 1|^β (to be weighted by the caller). */
  roundingLoss(beta: number): Tensor {
    return tidy(() => roundingRegularizer(this.softTargets(), beta));
  }

  /** Fixes the rounding to floor(w/δ) + [α ≥ 0] and frees α. */
  harden(): void {
    if (this.#up) return;
    this.#up = keep(noGrad(() => tidy(() => this.alpha.ge(0).to({ dtype: 'float32' }))));
    this.#alpha!.dispose();
    this.#alpha = null;
  }

  /** The integer codes q = clamp(floor(w/δ) + up + z, 0, n−1) (float32; a new tensor the caller owns). */
  hardWeightInt(): Tensor {
    const z = this.quantizer.zeroPoint;
    return noGrad(() => tidy(() => this.#floor.add(this.#hardUp()).add(z).clamp(0, this.quantizer.levels - 1)));
  }

  /** The dequantized hard weight (q − z)·δ (a new tensor the caller owns). */
  hardWeight(): Tensor {
    const { delta: d, zeroPoint: z } = this.quantizer;
    return noGrad(() => tidy(() => this.hardWeightInt().sub(z).mul(d)));
  }

  /** The hard rounding as a bit mask (the current [α ≥ 0] if not hardened yet). */
  state(): AdaRoundState {
    const up = noGrad(() => this.#hardUp());
    const bits = up.data() as Float32Array;
    if (!this.#up) up.dispose();
    const mask = new Uint8Array(Math.ceil(bits.length / 8));
    for (let k = 0; k < bits.length; k++) if (bits[k]! > 0) mask[k >> 3]! |= 1 << (k & 7);
    return { bits: this.quantizer.bits, shape: [...this.shape], roundUp: Buffer.from(mask).toString('base64') };
  }

  /** Restores a hard rounding saved by state() (this quantizer is hardened afterwards). */
  load(s: AdaRoundState): this {
    const n = this.shape.reduce((a, b) => a * b, 1);
    if (s.bits !== this.quantizer.bits || s.shape.join() !== this.shape.join())
      throw new Error(`Error in AdaRoundQuantizer.load: state is ${s.bits}-bit [${s.shape}], quantizer is ${this.quantizer.bits}-bit [${this.shape}]`);
    const mask = Buffer.from(s.roundUp, 'base64');
    if (mask.length !== Math.ceil(n / 8))
      throw new RangeError(`Error in AdaRoundQuantizer.load: mask has ${mask.length} bytes, expected ${Math.ceil(n / 8)}`);
    const up = new Float32Array(n);
    for (let k = 0; k < n; k++) up[k] = (mask[k >> 3]! >> (k & 7)) & 1;
    this.#up?.dispose();
    this.#up = keep(tensor(up, this.shape, { device: this.#floor.device }));
    this.#alpha?.dispose();
    this.#alpha = null;
    return this;
  }

  /** Frees α, the floor and the hard rounding (not the uniform quantizer). */
  dispose(): void {
    this.#alpha?.dispose();
    this.#up?.dispose();
    this.#floor.dispose();
    this.#alpha = this.#up = null;
  }

  #hardUp(): Tensor {
    return this.#up ?? this.alpha.detach().ge(0).to({ dtype: 'float32' });
  }
}
