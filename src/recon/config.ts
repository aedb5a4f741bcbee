/** Reconstruction hyper-parameters (PDQUANT.md §6) and the per-architecture rows of its table. */

/** The run record's DC loss curve holds the total loss every this many Adam steps. */
export const DC_CURVE_EVERY = 50;

/** The run record's per-unit loss curve holds the losses every this many iterations (and at the first). */
export const LOSS_CURVE_EVERY = 100;

export interface ReconConfig {
  iters: number;
  batch: number;
  warmup: number;
  betaStart: number;
  betaEnd: number;
  /** Weight of the rounding regulariser. */
  wRound: number;
  /** Temperature of the PD loss. */
  T: number;
  /** PD loss is divided by λr. */
  lambdaR: number;
  /** The DC anchor term lp(Xdc, Xfp) is divided by λc. */
  lambdaC: number;
  dcSteps: number;
  dcLr: number;
  /** QDrop: probability that an activation quantizer of the unit quantizes an element (the reference's `prob`). */
  dropP: number;
  /** Input drop: probability that an element of the unit input comes from the quantized input, else from the FP/DC input (the reference's `input_prob`). */
  inputDropP: number;
  weightLr: number;
  actLr: number;
  /** Rows of the calibration cache used to initialise a unit's activation steps. */
  actInitRows: number;
  /** Batch size of cache computations (no effect on results). */
  cacheBatch: number;
  /** Rows corrected together by DC (whole batches; no effect on results). */
  dcChunk: number;
}

export const DEFAULTS: ReconConfig = {
  iters: 20000,
  batch: 32,
  warmup: 0.2,
  betaStart: 20,
  betaEnd: 2,
  wRound: 0.01,
  T: 4,
  lambdaR: 0.1,
  lambdaC: 0.02,
  dcSteps: 500,
  dcLr: 1e-3,
  dropP: 0.5,
  inputDropP: 0.5,
  weightLr: 3e-3,
  actLr: 4e-5,
  actInitRows: 256,
  cacheBatch: 256,
  dcChunk: 128,
};

/** `--arch-preset`: w_round, T and λc per model family. */
export const ARCH_PRESETS: Record<string, Pick<ReconConfig, 'wRound' | 'T' | 'lambdaC'>> = {
  resnet: { wRound: 0.01, T: 4, lambdaC: 0.02 },
  regnet: { wRound: 0.01, T: 4, lambdaC: 0.01 },
  mobilenetv2: { wRound: 0.1, T: 1, lambdaC: 0.005 },
  mnasnet: { wRound: 0.2, T: 1, lambdaC: 0.001 },
};
