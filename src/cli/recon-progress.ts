/** The reconstruction progress line: unit, iteration, losses, β, it/s and an ETA for the whole run. */
import cliProgress from 'cli-progress';
import type { RunEvents } from '../methods/pipeline.js';

export function reconProgress(iters: number): RunEvents & { stop(): void } {
  const bar = new cliProgress.SingleBar(
    {
      format: '{unit} [{bar}] {value}/{total} rec {rec} pd {pd} round {round} β {beta} | {rate} it/s | run ETA {runEta}',
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = 0;
  let unitsTotal = 0;
  let unitIndex = 0;
  let active = false;
  let runStart = 0;
  let itersDone = 0;
  // A resumed unit continues after this iteration: its rate counts from there.
  let resumedAfter = 0;
  const fmt = (v: number) => (v === 0 ? '0' : v.toPrecision(3));
  const etaText = (s: number) => (s > 3600 ? `${(s / 3600).toFixed(1)} h` : s > 60 ? `${Math.round(s / 60)} min` : `${Math.round(s)} s`);
  return {
    unitStart(index, total, unit) {
      if (active) bar.stop();
      unitIndex = index;
      unitsTotal = total;
      runStart ||= performance.now();
      started = performance.now();
      console.error(`pdquant: unit ${index + 1}/${total} ${unit.name} (${unit.kind})`);
    },
    phase(unit, phase) {
      if (phase === 'optimization') {
        started = performance.now();
        resumedAfter = 0;
        bar.start(iters, 0, { unit: unit.name, rec: '-', pd: '-', round: '-', beta: '-', rate: '-', runEta: '-' });
        active = true;
      } else console.error(`pdquant:   ${phase}`);
    },
    unitsSkipped(units) {
      console.error(`pdquant: not reconstructed, nothing to learn (float weights, no activation step to learn): ${units.map((u) => u.name).join(', ')}`);
    },
    unitResumed(unit, iteration) {
      resumedAfter = iteration;
      bar.update(iteration);
      bar.stop();
      console.error(`pdquant:   continuing ${unit.name} after iteration ${iteration}, where the interrupted run saved it`);
      bar.start(iters, iteration, { unit: unit.name, rec: '-', pd: '-', round: '-', beta: '-', rate: '-', runEta: '-' });
    },
    iteration(unit, _k, it, p) {
      itersDone++;
      if (it % 10 !== 0 && it !== iters) return;
      const rate = (it - resumedAfter) / ((performance.now() - started) / 1000);
      const perIter = (performance.now() - runStart) / 1000 / itersDone;
      const left = (unitsTotal - unitIndex - 1) * iters + (iters - it);
      bar.update(it, { unit: unit.name, rec: fmt(p.rec), pd: fmt(p.pd), round: fmt(p.round), beta: p.beta.toFixed(1), rate: rate.toFixed(1), runEta: etaText(left * perIter) });
      if (it === iters) {
        bar.stop();
        active = false;
      }
    },
    stop() {
      if (active) bar.stop();
    },
  };
}
