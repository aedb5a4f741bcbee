/** When a unit's optimisation goes to every intra-op thread while DC runs in the background (src/recon/handover.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel } from '../src/graph/load.js';
import { summarize } from '../src/onnx/summarize.js';
import { unitBatchNorms } from '../src/recon/dc.js';
import { HANDOVER_MARGIN, handoverCosts, handoverIteration, type HandoverRun } from '../src/recon/handover.js';
import { tinyResNet } from './helpers/tiny-resnet.js';

const run: HandoverRun = { iters: 20000, batch: 32, images: 1024, dcSteps: 500, passes: 2, pd: true };
const costs = { unit: 1e6, tail: 9e6, nextDcUnit: 1e6, nextDcPrefix: 2e6 };

test('the handover comes after the margin times the iterations that cost what the next unit\'s DC costs', () => {
  const perIteration = 32 * (3 * 2 * 1e6 + 2 * 9e6);
  const dc = 1024 * (2e6 + 2 * 500 * 1e6);
  assert.equal(handoverIteration(costs, run), Math.ceil((HANDOVER_MARGIN * dc) / perIteration));
  // Without the PD loss's tail an iteration costs less, so the handover comes later.
  assert.ok(handoverIteration(costs, { ...run, pd: false, passes: 1, iters: 1e6 })! > handoverIteration(costs, run)!);
  // More DC steps, later; a cheaper DC, earlier, but never before the first iteration.
  assert.ok(handoverIteration(costs, { ...run, dcSteps: 1000 })! > handoverIteration(costs, run)!);
  assert.equal(handoverIteration({ ...costs, nextDcUnit: 0, nextDcPrefix: 0 }, run), 1);
});

test('no handover when DC costs as much as the whole unit, or when a cost is unknown', () => {
  const at = handoverIteration(costs, run)!;
  assert.equal(handoverIteration(costs, { ...run, iters: at }), null);
  assert.equal(handoverIteration(costs, { ...run, iters: at + 1 }), at);
  assert.equal(handoverIteration({ ...costs, unit: NaN }, run), null);
});

test('the counts: unit and tail make up the folded network after the unit\'s input, prefix and DC unit the FP one', () => {
  const m = loadModel(tinyResNet());
  const count = handoverCosts(m.folded, m.fp);
  const dcUnits = m.units.filter((u) => unitBatchNorms(m.fp, u.input, u.output).length > 0);
  const [first, second] = [m.units[0]!, dcUnits[1]!];
  assert.equal(first.input, m.folded.input.name);
  const c = count(first, second, true);
  const total = summarize(m.folded.model).macs;
  assert.ok(c.unit > 0 && c.tail > 0);
  assert.equal(c.unit + c.tail, total);
  assert.equal(count(first, second, false).tail, 0);
  // BN folding leaves the multiply-adds of convolutions as they are.
  assert.ok(c.nextDcPrefix > 0 && c.nextDcUnit > 0);
  assert.ok(c.nextDcPrefix + c.nextDcUnit <= total);
});
