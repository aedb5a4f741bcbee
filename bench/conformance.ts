/**
 * `npm run conformance`: accuracy checks on the real shared model and data, each with a tolerance.
 * Run by .ci/run after the unit tests; fails loudly when ../shared is missing.
 */
import { shared, requireShared } from './shared.js';
import { checks, type Check } from './conformance-checks.js';

try {
  requireShared(shared.resnet20, shared.cifarTest, shared.calib1024);
} catch (e) {
  console.error(`conformance: ${(e as Error).message}`);
  process.exit(1);
}

const only = process.argv.slice(2);
const selected: Check[] = only.length ? checks.filter((c) => only.some((o) => c.name.includes(o))) : checks;
let failed = 0;
for (const c of selected) {
  const t0 = performance.now();
  try {
    const r = await c.run();
    const ok = Math.abs(r.value - c.expected) <= c.tolerance;
    if (!ok) failed++;
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${c.name}: ${Math.abs(r.value) < 0.01 && r.value !== 0 ? r.value.toExponential(2) : r.value.toFixed(2)} (expected ${c.expected} ± ${c.tolerance}) [${((performance.now() - t0) / 1000).toFixed(0)} s]${r.note ? ` ${r.note}` : ''}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${c.name}: ${(e as Error).stack}`);
  }
}
console.log(`${selected.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
