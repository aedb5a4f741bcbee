/**
 * The iteration at which a unit's optimisation goes from one intra-op thread to all of them while DC runs in the
 * background (dc-background.ts).
 *
 * The worker corrects one unit ahead. Once it has corrected the next unit it waits, and this thread, on one intra-op
 * thread, leaves a core idle. With the default 20,000 iterations that is most of every unit. So at the iteration
 * planned here this thread finishes the next unit's DC together with the worker, then runs the rest of its unit on
 * every thread. The iteration comes from multiply-accumulate counts, not from a clock, so results do not depend on
 * timing and a resumed run repeats them.
 */
import { nodesBetween, tailFrom, type Graph, type Unit } from '../graph/index.js';
import { macsOf } from '../onnx/summarize.js';
import { inferShapes } from '../onnx/shapes.js';

/**
 * How much later than the multiply-accumulate counts say the handover comes. On resnet20, a unit's DC took about
 * 1.8× as long, relative to the optimisation of the unit before it, as its counts say (BatchNormalization kept, the
 * per-sample statistics, chunking); the rest is headroom. A late handover leaves a core idle only from when the
 * worker finishes; an early one makes this thread wait for a chunk the worker is running.
 */
export const HANDOVER_MARGIN = 2.5;

/** Multiply-accumulates per image. */
export interface HandoverCosts {
  /** The unit being optimised, in the BN-folded graph. */
  unit: number;
  /** The FP tail from the unit's output to the logits (run by the PD loss). */
  tail: number;
  /** The next unit DC corrects, in the FP graph. */
  nextDcUnit: number;
  /** The FP network before that unit (DC recomputes its input from the images). */
  nextDcPrefix: number;
}

export interface HandoverRun {
  iters: number;
  batch: number;
  /** Calibration images DC corrects. */
  images: number;
  dcSteps: number;
  /** Forward passes of the unit per iteration (2 when QDrop's and the PD loss's inputs run concatenated). */
  passes: number;
  pd: boolean;
}

/** The first iteration to run on every thread, or null to stay on one (DC costs as much as the whole unit). */
export function handoverIteration(c: HandoverCosts, r: HandoverRun): number | null {
  // Forward and backward: 3 forwards with weight gradients (the unit), 2 with input gradients only (tail, DC).
  const perIteration = r.batch * (3 * r.passes * c.unit + (r.pd ? 2 * c.tail : 0));
  const dc = r.images * (c.nextDcPrefix + 2 * r.dcSteps * c.nextDcUnit);
  const at = Math.max(1, Math.ceil((HANDOVER_MARGIN * dc) / perIteration));
  return Number.isFinite(at) && at < r.iters ? at : null;
}

/** The counts for optimising `unit` of `folded` while DC corrects `nextDc` of `fp`; shapes are inferred once per graph. */
export function handoverCosts(folded: Graph, fp: Graph): (unit: Unit, nextDc: Unit, pd: boolean) => HandoverCosts {
  let foldedShapes: Map<string, number[]> | undefined, fpShapes: Map<string, number[]> | undefined;
  // An unknown shape makes the count NaN, and handoverIteration then plans no handover.
  const of = (shapes: Map<string, number[]>) => (name: string) => shapes.get(name) ?? [NaN];
  return (unit, nextDc, pd) => {
    const foldedShape = of((foldedShapes ??= inferShapes(folded.model)));
    const fpShape = of((fpShapes ??= inferShapes(fp.model)));
    return {
      unit: macsOf(unit.nodes, foldedShape),
      tail: pd ? macsOf(tailFrom(folded, unit.output, folded.output.name).nodes, foldedShape) : 0,
      nextDcUnit: macsOf(nodesBetween(fp, [nextDc.input], nextDc.output), fpShape),
      nextDcPrefix: macsOf(nodesBetween(fp, [fp.input.name], nextDc.input), fpShape),
    };
  };
}
