/** The reconstruction losses of PDQUANT.md §5: rec (lp), pd (KL of predictions), DC statistics, rounding. */
import { Tensor, tidy, softmax, logSoftmax, klDivBatchmean, rowMomentLoss } from '../engine/index.js';

export { roundingRegularizer } from '../quant/adaround.js';

/**
 * lp(a, b) = mean over batch and positions of Σ_channels |a − b|^p (p = 2 by default): the reference's
 * lp_loss(pred, tgt, p, reduction='none') = (pred − tgt).abs().pow(p).sum(1).mean(). Channels are dim 1.
 */
export function lpLoss(a: Tensor, b: Tensor, p = 2): Tensor {
  if (a.shape.join() !== b.shape.join()) throw new RangeError(`Error in lpLoss: shapes differ: [${a.shape}] vs [${b.shape}]`);
  if (a.rank < 2) throw new RangeError(`Error in lpLoss: inputs must be rank 2 or more (channels on dim 1), got rank ${a.rank}`);
  return tidy(() => {
    const d = a.sub(b);
    // torch's pow(x, 2.0) is x·x; keep that exact case.
    const e = p === 2 ? d.mul(d) : d.abs().pow(p);
    return e.sum([1]).mean();
  });
}

/**
 * The prediction-difference loss KL(softmax(O_fp/T) ‖ softmax(O_q/T)), summed over classes and averaged over the
 * batch (F.kl_div(log_softmax(O_q/T), softmax(O_fp/T), reduction='batchmean')), with no T² factor. The caller divides
 * by λr.
 */
export function pdLoss(logitsQ: Tensor, logitsFp: Tensor, T: number): Tensor {
  if (!(T > 0)) throw new RangeError(`Expected a positive temperature T but received ${T}`);
  if (logitsQ.shape.join() !== logitsFp.shape.join())
    throw new RangeError(`Error in pdLoss: shapes differ: [${logitsQ.shape}] vs [${logitsFp.shape}]`);
  return tidy(() => klDivBatchmean(logSoftmax(logitsQ.div(T), 1), softmax(logitsFp.div(T), 1)));
}

/**
 * The DC statistics terms for one BatchNorm: mean = ‖μ_BN − μ̂‖²/B and std = ‖σ_BN − σ̂‖²/B, where μ̂, σ̂ [B, C] are
 * each sample's per-channel mean and sqrt(unbiased variance + eps) over the spatial positions of the BN input
 * x [B, C, ...], σ_BN = sqrt(running var + eps), and the squared norms sum over samples and channels.
 */
export function dcStatLoss(bnInput: Tensor, runningMean: Tensor, runningVar: Tensor, eps = 1e-6): { mean: Tensor; std: Tensor } {
  const b = bnInput.shape[0]!;
  return tidy(() => {
    const s = dcStatPerSample(bnInput, runningMean, runningVar, eps);
    return { mean: s.mean.sum().div(b), std: s.std.sum().div(b) };
  });
}

/** The two DC terms per sample, [B] each: Σ_channels (μ_BN − μ̂)² and Σ_channels (σ_BN − σ̂)² (see dcStatLoss). */
export function dcStatPerSample(bnInput: Tensor, runningMean: Tensor, runningVar: Tensor, eps = 1e-6): { mean: Tensor; std: Tensor } {
  if (bnInput.rank < 3) throw new RangeError(`Error in dcStatLoss: input must be rank 3 or more [B, C, ...], got rank ${bnInput.rank}`);
  const [b, c] = bnInput.shape as [number, number];
  if (runningMean.size !== c || runningVar.size !== c)
    throw new RangeError(`Error in dcStatLoss: input has ${c} channels but the running statistics have ${runningMean.size} and ${runningVar.size}`);
  return tidy(() => {
    const x = bnInput.reshape([b, c, -1]);
    const mu = x.mean([2]);
    const sigma = x.var([2], true).add(eps).sqrt();
    const bnMean = runningMean.detach().reshape([1, c]);
    const bnStd = runningVar.detach().reshape([1, c]).add(eps).sqrt();
    const sq = (t: Tensor) => t.mul(t).sum([1]);
    return { mean: sq(bnMean.sub(mu)), std: sq(bnStd.sub(sigma)) };
  });
}

/**
 * dcStatPerSample's mean + std terms, [B], in one fused engine op (one pass forward, one backward): what DC
 * optimises 500 times per unit.
 */
export function dcStatTotalPerSample(bnInput: Tensor, runningMean: Tensor, runningVar: Tensor, eps = 1e-6): Tensor {
  return tidy(() => rowMomentLoss(bnInput, runningMean.detach(), runningVar.detach().add(eps).sqrt(), eps));
}
