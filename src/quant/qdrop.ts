/** QDrop: activation quantization switched off at random per element while a unit is optimised (PDQUANT.md §5 step 7). */
import { Tensor, dropSelect, checkProbability } from '../engine/index.js';
import type { UniformQuantizer } from './uniform.js';

/** 'fp': x unchanged; 'quant': x̂ everywhere; 'drop': x̂ where rand < p, x elsewhere (a fresh mask each call). */
export type ActMode = 'fp' | 'quant' | 'drop';
export const ACT_MODES: readonly ActMode[] = ['fp', 'quant', 'drop'];

/** An activation quantizer with a mode; the reference's UniformAffineQuantizer with `prob` and `is_training`. */
export class QDropQuantizer {
  readonly quantizer: UniformQuantizer;
  #mode: ActMode;
  #p: number;

  constructor(quantizer: UniformQuantizer, o: { mode?: ActMode; p?: number } = {}) {
    this.quantizer = quantizer;
    this.#mode = 'quant';
    this.#p = 0.5;
    if (o.mode) this.mode = o.mode;
    if (o.p !== undefined) this.p = o.p;
  }

  get mode(): ActMode {
    return this.#mode;
  }
  set mode(m: ActMode) {
    if (!ACT_MODES.includes(m)) throw new RangeError(`Expected one of ${ACT_MODES.join(', ')} for the activation mode but received ${String(m)}`);
    this.#mode = m;
  }
  /** Probability that an element is quantized in 'drop' mode. */
  get p(): number {
    return this.#p;
  }
  set p(p: number) {
    checkProbability(p);
    this.#p = p;
  }

  /** In 'fp' mode returns x itself (no copy). */
  forward(x: Tensor): Tensor {
    if (this.#mode === 'fp') return x;
    // p = 1 is 'quant' exactly: no mask is drawn, so the random stream matches a run without drop.
    if (this.#mode === 'quant' || this.#p === 1) return this.quantizer.forward(x);
    return this.quantizer.forwardDrop(x, this.#p);
  }
}

/** The input drop of §5 step 7: where(rand < p, xq, xfp) elementwise (xq where the draw is below p). p = 1 returns xq itself, drawing nothing. */
export function dropMix(xq: Tensor, xfp: Tensor, p = 0.5): Tensor {
  if (p === 1 && xq.shape.join() === xfp.shape.join()) return xq;
  return dropSelect(xq, xfp, p); // checks p and the shapes
}
