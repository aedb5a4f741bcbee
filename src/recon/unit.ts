/** Reconstruction of one unit (PDQUANT.md §5): learned rounding and activation steps against rec / PD / rounding losses. */
import * as E from '../engine/index.js';
import { execute, tailFrom, type Graph, type Unit } from '../graph/index.js';
import type { ActQuantizer, QuantizedModel } from '../quant/qmodel.js';
import { AdaRoundQuantizer } from '../quant/adaround.js';
import { QDropQuantizer, dropMix } from '../quant/qdrop.js';
import { MIN_STEP } from '../quant/search.js';
import type { ReconPreset } from '../methods/registry.js';
import { LOSS_CURVE_EVERY, type ReconConfig } from './config.js';
import { lpLoss, pdLoss } from './losses.js';
import { linearTempDecay, cosineAnnealing } from './schedule.js';

export interface UnitCaches {
  /** Unit input on the quantized network (earlier units final). */
  xq: E.Tensor;
  /** Unit input for the rec target and input drop: FP, or DC-corrected FP. */
  xfp: E.Tensor;
  /** FP unit output on xfp. */
  yfp: E.Tensor;
  /** Final FP logits (for the PD loss). */
  logitsFp: E.Tensor | null;
  /** Values the FP tail reads besides the unit's output (connections around the unit), per calibration image. */
  tailInputs: ReadonlyMap<string, E.Tensor>;
}

export interface LossPoint {
  iter: number;
  rec: number;
  pd: number;
  round: number;
  beta: number;
}

export interface UnitProgress {
  (iter: number, p: LossPoint): void;
}

export interface UnitContext {
  qmodel: QuantizedModel;
  /** The BN-folded graph run in FP for the tail to the logits. */
  graph: Graph;
  preset: ReconPreset;
  cfg: ReconConfig;
}

/**
 * The quantizer on the value a unit reads, where that unit calibrates it (a layer input no earlier quantizer made, such
 * as a pre-activation BN + ReLU between units). The unit applies it to its cached input, which is taken without it.
 */
export function unitInputQuantizer(qmodel: QuantizedModel, unit: Unit): ActQuantizer | undefined {
  const a = qmodel.acts.get(unit.input);
  return a?.site.unit === unit.name ? a : undefined;
}

/** The activation quantizers a unit calibrates: on its own input, and those computed inside it. */
export function unitActs(qmodel: QuantizedModel, unit: Unit): string[] {
  const inside = unit.nodes.flatMap((n) => n.outputs).filter((v) => qmodel.acts.has(v));
  return unitInputQuantizer(qmodel, unit) ? [unit.input, ...inside] : inside;
}

/** Initialises the unit's activation steps on the first rows of xq, with weights rounded to nearest (§5 step 4). */
export function initUnitActs(ctx: UnitContext, unit: Unit, xq: E.Tensor): void {
  const rows = Math.min(ctx.cfg.actInitRows, xq.shape[0]!);
  const own = unitInputQuantizer(ctx.qmodel, unit);
  E.noGrad(() =>
    E.tidy(() => {
      let x = xq.slice(0, 0, rows);
      if (own) {
        if (!own.q.initialized) own.q.init(x, 'mse');
        x = own.q.forward(x);
      }
      execute(ctx.qmodel.graph, {
        feeds: new Map([[unit.input, x]]),
        outputs: [unit.output],
        nodes: unit.nodes,
        hooks: ctx.qmodel.hooks({ weights: true, acts: true }, { lazyInit: 'mse', feeds: false }),
      });
    }),
  );
}

/** Where a unit's optimisation stood after an iteration: enough to continue it exactly where it was. */
export interface UnitProgressState {
  iteration: number;
  curve: LossPoint[];
  /** The rounding variables, per weight layer in unit order. */
  alphas: Float32Array[];
  /** The learned activation steps, in unitActs order. */
  steps: Float32Array[];
  adamW: (E.AdamSnapshot | null)[];
  adamA: (E.AdamSnapshot | null)[] | null;
  /** The random generators the iterations draw from (batch rows, drop masks). */
  rng: { device: string; state: Uint8Array }[];
}

/** Saving a unit's progress during its optimisation, and the progress an interrupted run saved. */
export interface UnitCheckpointing {
  /** Whether to save after this iteration. */
  due(iteration: number): boolean;
  save(state: UnitProgressState): void;
  from?: UnitProgressState;
}

/** Puts saved rounding variables and activation steps back into the unit's parameters, checking that they fit. */
function restoreProgress(from: UnitProgressState, alphas: E.Tensor[], steps: E.Tensor[]): void {
  const put = (what: string, saved: Float32Array[], into: E.Tensor[]) => {
    if (saved.length !== into.length || saved.some((a, i) => a.length !== into[i]!.size))
      throw new Error(`The saved progress does not fit this unit's ${what} (${saved.map((a) => a.length).join(', ')} values saved, ${into.map((t) => t.size).join(', ')} here)`);
    E.noGrad(() => E.tidy(() => into.forEach((t, i) => t.assign(E.tensor(saved[i]!, t.shape, { device: t.device })))));
  };
  put('rounding variables', from.alphas, alphas);
  put('activation steps', from.steps, steps);
}

/** Something to run before one iteration of the optimisation (handover.ts: the switch to every intra-op thread). */
export interface Handover {
  iteration: number;
  run(): void;
}

/** Optimises the unit, then hardens it. Returns the loss curve (every LOSS_CURVE_EVERY iterations). */
export function reconstructUnit(ctx: UnitContext, unit: Unit, c: UnitCaches, onProgress?: UnitProgress, handover?: Handover, checkpointing?: UnitCheckpointing): LossPoint[] {
  const { qmodel, preset, cfg } = ctx;
  const weightNodes = unit.nodes.filter((n) => qmodel.weights.has(n.name)).map((n) => n.name);
  const actValues = unitActs(qmodel, unit);
  const rounders = new Map<string, AdaRoundQuantizer>();
  for (const node of weightNodes) {
    const wq = qmodel.weights.get(node)!;
    const ada = new AdaRoundQuantizer(wq.q, qmodel.fpWeight(node));
    rounders.set(node, ada);
    wq.weight = () => ada.forward();
  }
  const steps = preset.learnActSteps ? actValues.map((v) => qmodel.acts.get(v)!.q.learnable(true).delta) : [];
  // The quantizer on the unit's input quantizes the cached input; QDrop's input drop then mixes in the FP input.
  const own = unitInputQuantizer(qmodel, unit);
  for (const v of actValues) {
    const a = qmodel.acts.get(v)!;
    if (preset.drop && a !== own) {
      const dq = new QDropQuantizer(a.q, { mode: 'drop', p: cfg.dropP });
      a.forward = (x) => dq.forward(x);
    }
  }
  const optW = new E.Adam([{ params: [...rounders.values()].map((r) => r.alpha), lr: cfg.weightLr }]);
  const optA = steps.length ? new E.Adam([{ params: steps, lr: cfg.actLr }]) : null;
  const beta = linearTempDecay({ iters: cfg.iters, warmup: cfg.warmup, start: cfg.betaStart, end: cfg.betaEnd });
  const actLr = cosineAnnealing(cfg.actLr, cfg.iters);
  const tail = ctx.preset.pd ? tailFrom(ctx.graph, unit.output, ctx.graph.output.name).nodes : [];
  const n = c.xq.shape[0]!;
  const curve: LossPoint[] = [];
  const hooks = qmodel.hooks({ weights: true, acts: true }, { feeds: false });
  const twoPasses = preset.drop && preset.pd;
  const rngDevices = [...new Set(['cpu', c.xq.device])];
  const progress = (iteration: number): UnitProgressState => ({
    iteration, curve: [...curve],
    alphas: [...rounders.values()].map((r) => r.alpha.data() as Float32Array),
    steps: steps.map((s) => s.data() as Float32Array),
    adamW: optW.snapshot(), adamA: optA ? optA.snapshot() : null,
    rng: rngDevices.map((device) => ({ device, state: E.rngState(device) })),
  });
  let first = 1;
  const from = checkpointing?.from;
  if (from) {
    restoreProgress(from, [...rounders.values()].map((r) => r.alpha), steps);
    optW.restore(from.adamW);
    if (optA) {
      optA.restore(from.adamA ?? []);
      optA.groups[0]!.lr = actLr(from.iteration);
    }
    from.rng.forEach((r) => E.setRngState(r.device, r.state));
    curve.push(...from.curve);
    first = from.iteration + 1;
    // The iterations after the handover ran on every intra-op thread.
    if (handover && first > handover.iteration) handover.run();
  }

  for (let it = first; it <= cfg.iters; it++) {
    if (it === handover?.iteration) handover.run();
    const point = E.tidy(() => {
      const idx = E.randint(0, n, [cfg.batch]);
      const xq = own ? own.q.forward(c.xq.indexSelect(0, idx)) : c.xq.indexSelect(0, idx);
      let xrec = xq;
      if (preset.drop) xrec = dropMix(xq, c.xfp.indexSelect(0, idx), cfg.inputDropP);
      const input = twoPasses ? E.cat([xrec, xq], 0) : preset.pd && !preset.rec ? xq : xrec;
      const out = execute(qmodel.graph, { feeds: new Map([[unit.input, input]]), outputs: [unit.output], nodes: unit.nodes, hooks }).get(unit.output)!;
      const b = cfg.batch;
      // split, not two slices: one backward step (a cat) instead of two zero-filled full-size gradients and a sum.
      const [outRec, outQ] = twoPasses ? out.split([b, b], 0) : [out, out];
      let loss = E.scalar(0);
      let rec = 0, pd = 0, round = 0;
      if (preset.rec) {
        const l = lpLoss(outRec, c.yfp.indexSelect(0, idx));
        loss = loss.add(l);
        rec = l.item();
      }
      if (preset.pd) {
        const feeds = new Map([[unit.output, outQ], ...[...c.tailInputs].map(([v, t]) => [v, t.indexSelect(0, idx)] as const)]);
        const logits = execute(ctx.graph, { feeds, outputs: [ctx.graph.output.name], nodes: tail }).get(ctx.graph.output.name)!;
        const l = pdLoss(logits, c.logitsFp!.indexSelect(0, idx), cfg.T).div(cfg.lambdaR);
        loss = loss.add(l);
        pd = l.item();
      }
      const b_ = beta(it);
      if (it >= cfg.warmup * cfg.iters) {
        let r: E.Tensor = E.scalar(0);
        for (const ada of rounders.values()) r = r.add(ada.roundingLoss(b_));
        r = r.mul(cfg.wRound);
        loss = loss.add(r);
        round = r.item();
      }
      loss.backward();
      return { iter: it, rec, pd, round, beta: b_ };
    });
    optW.step();
    optW.zeroGrad();
    if (optA) {
      optA.step();
      optA.zeroGrad();
      // Adam moves a step by about its learning rate whatever the step's size, so the step of a near-zero activation
      // (a random-weight squeeze-and-excitation's ReLU, ~1e-7) would go negative, which no QuantizeLinear can hold.
      // At the floor the quantizer outputs about 0, as the reference's negative step does.
      E.noGrad(() => steps.forEach((s) => E.tidy(() => s.assign(s.maximum(MIN_STEP)))));
      optA.groups[0]!.lr = actLr(it);
    }
    if (it % LOSS_CURVE_EVERY === 0 || it === 1) curve.push(point);
    if (it < cfg.iters && checkpointing?.due(it)) checkpointing.save(progress(it));
    onProgress?.(it, point);
  }
  optW.dispose();
  optA?.dispose();
  // Finish: hard rounding, learned steps fixed, drop off.
  for (const [node, ada] of rounders) {
    ada.harden();
    qmodel.setHardWeight(node, ada.hardWeightInt());
    ada.dispose();
  }
  for (const v of actValues) {
    const a = qmodel.acts.get(v)!;
    a.q.learnable(false);
    delete a.forward;
  }
  return curve;
}
