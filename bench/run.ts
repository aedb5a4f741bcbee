/**
 * Benchmark runner: `npm run bench -- [name ...]` (no name runs them all).
 * Each benchmark is a module exporting `run(): Promise<BenchResult>`; its result is written to
 * bench/results/<name>.json (atomically: a temp file renamed into place) and summarised on stdout.
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { writeJsonAtomic } from '../src/util/atomic.js';
import { machineInfo } from '../src/util/machine.js';

/** A benchmark's result: flat metrics at the top level (numbers), any details alongside. */
export type BenchResult = Record<string, unknown>;
export interface BenchModule {
  run(): Promise<BenchResult> | BenchResult;
  /** Its results file gathers runs from several sessions, each recording its own machine (else the file names one). */
  accumulates?: boolean;
}

/** The registry. Adding a benchmark is one line: name → lazy import of its module. */
export const benchmarks: Record<string, () => Promise<BenchModule>> = {
  engine: () => import('./engine.js'),
  recon: () => import('./recon.js'),
  fit: () => import('./fit.js'),
  ort: () => import('./ort.js'),
  init: () => import('./init.js'),
};

/** bench/results under the package root (this file runs from dist/bench/). */
export function resultsDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const root = here.includes(`${join('dist', 'bench')}`) ? resolve(here, '../..') : resolve(here, '..');
  return join(root, 'bench', 'results');
}

export { writeJsonAtomic };

/** Picks the benchmarks to run from the command-line names (none = all). */
export function select(names: string[]): string[] {
  const known = Object.keys(benchmarks);
  if (names.length === 0) return known;
  const unknown = names.filter((n) => !(n in benchmarks));
  if (unknown.length > 0)
    throw new RangeError(`Unknown benchmark${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => `"${n}"`).join(', ')}; available: ${known.join(', ')}`);
  return [...new Set(names)];
}

async function main(argv: string[]): Promise<void> {
  const names = select(argv.filter((a) => !a.startsWith('-')));
  for (const name of names) {
    console.log(`bench ${name}: running...`);
    const mod = await benchmarks[name]!();
    const result = await mod.run();
    const path = join(resultsDir(), `${name}.json`);
    writeJsonAtomic(path, { benchmark: name, ...(mod.accumulates ? {} : { machine: machineInfo() }), ...result });
    const metrics = Object.entries(result).filter(([, v]) => typeof v === 'number');
    for (const [k, v] of metrics) console.log(`  ${k.padEnd(28)} ${(v as number).toPrecision(4)}`);
    console.log(`  → ${path}`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : String(e));
    process.exitCode = 1;
  });
}
