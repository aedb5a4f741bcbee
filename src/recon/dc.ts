/**
 * Distribution correction (PDQUANT.md §5 step 3): nudge a unit's FP calibration input so that the
 * per-sample channel statistics at its BatchNorm inputs match the BN running statistics.
 *
 * The reference optimises each batch of 32 separately. A sample's loss depends on that sample alone
 * and Adam acts elementwise, so all batches are corrected in one optimisation over every sample with
 * identical mathematics, each batch keeping its own plateau learning-rate schedule (a per-row rate).
 */
import * as E from '../engine/index.js';
import { execute, nodesBetween, type Graph } from '../graph/index.js';
import type { OnnxNode } from '../onnx/ir.js';
import { DC_CURVE_EVERY, type ReconConfig } from './config.js';
import { PlateauSchedules } from './schedule.js';
import { dcStatTotalPerSample } from './losses.js';

export interface DcResult {
  xdc: E.Tensor;
  /** Summed loss over all batches at the first and last step. */
  lossStart: number;
  lossEnd: number;
  /** Total loss every DC_CURVE_EVERY steps. */
  curve: number[];
}

/** The BatchNormalization nodes of the FP unit between `input` and `output`. */
export function unitBatchNorms(fp: Graph, input: string, output: string): OnnxNode[] {
  return nodesBetween(fp, [input], output).filter((n) => n.opType === 'BatchNormalization');
}

/** Per-sample loss (one value per row of x) of §5 step 3, before dividing by the batch size. */
function perSampleLoss(fp: Graph, nodes: OnnxNode[], bns: OnnxNode[], input: string, x: E.Tensor, xfp: E.Tensor, lambdaC: number): E.Tensor {
  const outs = execute(fp, { feeds: new Map([[input, x]]), outputs: bns.map((b) => b.inputs[0]!), nodes });
  let total: E.Tensor | null = null;
  for (const bn of bns) {
    const term = dcStatTotalPerSample(outs.get(bn.inputs[0]!)!, fp.params.get(bn.inputs[3]!)!, fp.params.get(bn.inputs[4]!)!);
    total = total ? total.add(term) : term;
  }
  // lp(a, b) per sample: Σ over channels and positions of (a − b)², averaged over positions.
  const positions = x.rank > 2 ? x.shape.slice(2).reduce((a, b) => a * b, 1) : 1;
  const lp = E.rowSqDist(x, xfp).div(positions * lambdaC);
  return total ? total.add(lp) : lp;
}

/**
 * Corrects the rows of xfp, `cfg.dcChunk` rows (whole batches) at a time: on 2 cores a chunk of 4 batches runs
 * about 25 % faster per row than all 1024 rows at once (cache), and the mathematics is the same.
 * (dc-background.ts runs the same chunks on a worker thread while the previous unit is optimised.)
 */
export function distributionCorrection(fp: Graph, input: string, output: string, xfp: E.Tensor, cfg: ReconConfig, batch: number): DcResult {
  const rows = xfp.shape[0]!;
  const chunk = dcChunkRows(cfg, batch);
  const parts: DcResult[] = [];
  for (let start = 0; start < rows; start += chunk) {
    const part = E.keep(E.tidy(() => xfp.slice(0, start, Math.min(rows, start + chunk)).clone()));
    parts.push(correctChunk(fp, input, output, part, cfg, batch));
    part.dispose();
  }
  const xdc = E.keep(E.cat(parts.map((p) => p.xdc), 0));
  E.dispose(parts.map((p) => p.xdc));
  const sum = (f: (p: DcResult) => number) => parts.reduce((a, p) => a + f(p), 0);
  const curve = parts[0]!.curve.map((_, i) => sum((p) => p.curve[i]!));
  return { xdc, lossStart: sum((p) => p.lossStart), lossEnd: sum((p) => p.lossEnd), curve };
}

/** Rows of the calibration set per DC chunk (whole batches). */
export function dcChunkRows(cfg: ReconConfig, batch: number): number {
  return Math.max(batch, Math.floor(cfg.dcChunk / batch) * batch);
}

/** DC of one chunk of whole batches (also what a DC worker thread runs). */
export function correctChunk(fp: Graph, input: string, output: string, xfp: E.Tensor, cfg: ReconConfig, batch: number): DcResult {
  const bns = unitBatchNorms(fp, input, output);
  // Only what leads to the BN inputs is computed; the rest of the unit does not enter the loss.
  const needed = new Set(bns.flatMap((bn) => nodesBetween(fp, [input], bn.inputs[0]!)));
  const nodes = fp.nodes.filter((n) => needed.has(n));
  return correctRows(fp, nodes, bns, input, xfp, cfg, batch);
}

/** One optimisation over whole batches of rows, each batch with its own plateau schedule. */
function correctRows(fp: Graph, nodes: OnnxNode[], bns: OnnxNode[], input: string, xfp: E.Tensor, cfg: ReconConfig, batch: number): DcResult {
  const n = xfp.shape[0]!;
  const batches = Math.ceil(n / batch);
  const rowsOf = (b: number) => Math.min(batch, n - b * batch);
  const x = E.keep(E.noGrad(() => xfp.clone())).requiresGrad_(true);
  const opt = new E.Adam([{ params: [x], lr: 0 }]);
  const plateau = new PlateauSchedules(batches, { lr: cfg.dcLr, factor: 0.1, patience: 100, minLr: 1e-5 });
  const curve: number[] = [];
  let lossStart = NaN;
  let lossEnd = NaN;
  const rowWeights = E.keep(E.tensor(Float32Array.from({ length: n }, (_, i) => 1 / rowsOf(Math.floor(i / batch))), [n]));
  for (let step = 0; step < cfg.dcSteps; step++) {
    const perSample = E.tidy(() => {
      const s = perSampleLoss(fp, nodes, bns, input, x, xfp, cfg.lambdaC);
      // Each batch's loss is its samples' sum divided by its size; the gradient of the total is each batch's own.
      const scaled = s.mul(rowWeights);
      scaled.sum().backward();
      return scaled.detach();
    });
    const values = perSample.data() as Float32Array;
    perSample.dispose();
    const losses = new Array<number>(batches).fill(0);
    values.forEach((v, i) => (losses[Math.floor(i / batch)]! += v));
    const total = losses.reduce((a, b) => a + b, 0);
    if (step === 0) lossStart = total;
    lossEnd = total;
    if (step % DC_CURVE_EVERY === 0) curve.push(total);
    const lrs = plateau.lrs;
    opt.groups[0]!.lr = E.keep(E.tensor(Float32Array.from({ length: n }, (_, i) => lrs[Math.floor(i / batch)]!), [n, ...Array<number>(x.rank - 1).fill(1)]));
    opt.step();
    (opt.groups[0]!.lr as E.Tensor).dispose();
    x.zeroGrad();
    plateau.step(losses);
  }
  rowWeights.dispose();
  opt.dispose();
  const xdc = E.keep(E.noGrad(() => x.detach().clone()));
  x.dispose();
  return { xdc, lossStart, lossEnd, curve };
}
