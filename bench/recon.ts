/**
 * `npm run bench -- recon`: the 2000-iteration reconstruction runs on the shared resnet20 / CIFAR-10
 * (accuracy on the 10,000 test images, seconds per phase, iterations per second).
 * Methods and bit-widths come from PDQUANT_BENCH_RUNS, e.g. "pdquant:4:2,qdrop:2:2" (default pdquant:4:2), with an
 * optional seed: "qdrop:2:2:7" (default 1005) and optional reconstruction settings for ablations, e.g.
 * "qdrop:2:2:1005:inputDropP=1" (keys of ReconConfig). Results accumulate in bench/results/recon.json, one entry per
 * method, bit-width, seed, settings and iteration count (PDQUANT_BENCH_ITERS, default 2000). A stopped queue resumes
 * its unfinished run; PDQUANT_BENCH_FRESH=1 starts every run anew.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { makeTransform } from '../src/data/index.js';
import { quantize } from '../src/methods/pipeline.js';
import { methodNames } from '../src/methods/registry.js';
import { DEFAULTS, type ReconConfig } from '../src/recon/config.js';
import type { MachineInfo } from '../src/util/machine.js';
import { shared, requireShared } from './shared.js';
import { resultsDir, writeJsonAtomic, type BenchResult } from './run.js';

export interface Entry {
  method: string;
  w_bits: number;
  a_bits: number;
  iters: number;
  /** Absent in entries written before runs took a seed: those used DEFAULT_SEED. */
  seed?: number;
  /** Reconstruction settings that differ from the method's defaults (ablations); absent for the methods as they are. */
  recon?: Partial<ReconConfig>;
  top1: number;
  fp_top1: number;
  /** From loading the model to the end of the last unit (what the reference's 3108 s measures). */
  wall_seconds_to_last_unit: number;
  seconds: Record<string, number>;
  phase_seconds: { caching: number; dc: number; optimization: number };
  iterations_per_second: number;
  /** Continued from a checkpoint: the times cover only the units run after it. */
  resumed?: boolean;
  peak_rss_mb: number;
  threads: number;
  torch: string;
  date: string;
  /** The CPU it ran on (absent in entries written before it was recorded). */
  machine?: MachineInfo;
}

/** Each entry of recon.json records its own machine: the file gathers runs of several sessions. */
export const accumulates = true;

export async function run(): Promise<BenchResult> {
  requireShared(shared.resnet20, shared.calib1024, shared.cifarTest);
  const iters = Number(process.env.PDQUANT_BENCH_ITERS ?? DEFAULT_ITERS);
  const runs = (process.env.PDQUANT_BENCH_RUNS ?? 'pdquant:4:2').split(',').map(parseRun);
  const file = join(resultsDir(), 'recon.json');
  for (const r of runs) {
    const settings = settingsLabel(r.recon);
    console.log(`bench recon: ${r.method} W${r.w}A${r.a}, ${iters} iterations, seed ${r.seed}${settings ? `, ${settings}` : ''}`);
    // A queue that was stopped picks up its unfinished run at the next unit (its times then cover only part of it).
    const runDir = join(resultsDir(), '..', 'out', runDirName({ method: r.method, w_bits: r.w, a_bits: r.a, iters, seed: r.seed, recon: r.recon }));
    if (process.env.PDQUANT_BENCH_FRESH === '1') rmSync(runDir, { recursive: true, force: true });
    const resumed = existsSync(join(runDir, 'checkpoint.json'));
    const { record } = await quantize(
      {
        model: shared.resnet20, calib: shared.calib1024, method: r.method, wBits: r.w, aBits: r.a, numSamples: 1024, seed: r.seed,
        transform: makeTransform('cifar'), eightBitHeadStem: true, eval: shared.cifarTest, evalBatch: 200, recon: { ...r.recon, iters },
        runDir, resume: resumed,
      },
      'bench',
    );
    const units = record.recon?.units ?? [];
    const phase = { caching: 0, dc: 0, optimization: 0 };
    for (const u of units) for (const k of Object.keys(phase) as (keyof typeof phase)[]) phase[k] += u.seconds[k];
    const s = record.seconds;
    const entry: Entry = {
      method: r.method, w_bits: r.w, a_bits: r.a, iters, seed: r.seed, ...(settings ? { recon: r.recon } : {}), top1: record.top1!, fp_top1: record.fp_top1!,
      wall_seconds_to_last_unit: (s.load ?? 0) + (s['calibration data'] ?? 0) + (s['weight init'] ?? 0) + (s.reconstruction ?? s['activation init'] ?? 0),
      seconds: s, phase_seconds: phase,
      iterations_per_second: phase.optimization > 0 ? (units.length * iters) / phase.optimization : 0,
      ...(resumed ? { resumed: true } : {}), peak_rss_mb: record.peak_rss_mb, threads: record.tool.threads, torch: record.tool.torch, date: record.started,
      ...(record.machine ? { machine: record.machine } : {}),
    };
    console.log(`bench recon: ${r.method}${settings ? ` (${settings})` : ''} W${r.w}A${r.a}: top-1 ${entry.top1.toFixed(2)}, ${entry.wall_seconds_to_last_unit.toFixed(0)} s to the last unit`);
    // Re-read and write after every run: a long queue keeps what it finished, and queues run side by side
    // (e.g. two one-thread processes) merge instead of overwriting each other.
    writeJsonAtomic(file, { benchmark: 'recon', ...summary(mergeEntry(file, entry)) });
  }
  const all = mergeEntry(file);
  console.log(markdownTable(all));
  if (all.some((e) => settingsLabel(e.recon))) console.log(`\n${markdownTable(all, { settings: true })}`);
  return summary(all);
}

const DEFAULT_SEED = 1005;
const DEFAULT_ITERS = 2000;

/** "method:w:a[:seed][:key=value ...]" with keys of ReconConfig. */
export function parseRun(spec: string): { method: string; w: number; a: number; seed: number; recon: Partial<ReconConfig> } {
  const [method, w, a, seed, ...settings] = spec.split(':');
  const recon: Record<string, number> = {};
  for (const s of settings) {
    const [k, v] = s.split('=');
    if (!k || !(k in DEFAULTS) || v === undefined || !Number.isFinite(Number(v)))
      throw new Error(`bench recon: cannot read the setting "${s}" in "${spec}"; expected key=number with a key of ${Object.keys(DEFAULTS).join(', ')}`);
    recon[k] = Number(v);
  }
  return { method: method!, w: Number(w), a: Number(a), seed: seed ? Number(seed) : DEFAULT_SEED, recon };
}

const seedOf = (e: Pick<Entry, 'seed'>): number => e.seed ?? DEFAULT_SEED;
const settingsLabel = (recon: Partial<ReconConfig> | undefined): string => Object.entries(recon ?? {}).map(([k, v]) => `${k}=${v}`).join(' ');
/** The run's checkpoint folder under bench/out, e.g. qdrop-w2a2-2000-seed7 or qdrop-w2a2-2000-inputDropP=1. */
export function runDirName(e: Pick<Entry, 'method' | 'w_bits' | 'a_bits' | 'iters' | 'seed' | 'recon'>): string {
  const settings = settingsLabel(e.recon);
  return `${e.method}-w${e.w_bits}a${e.a_bits}-${e.iters}${seedOf(e) === DEFAULT_SEED ? '' : `-seed${e.seed}`}${settings ? `-${settings.replaceAll(' ', '-')}` : ''}`;
}

const isMain = (e: Entry): boolean => seedOf(e) === DEFAULT_SEED && e.iters === DEFAULT_ITERS;

/**
 * Top-1 per method at W4A2 and W2A2 (the README's table): default seed at 2000 iterations, other runs in parentheses.
 * The methods as they are; with `settings`, the ablation runs instead, a row per method and changed settings.
 */
export function markdownTable(all: Entry[], o: { settings?: boolean } = {}): string {
  const chosen = all.filter((e) => Boolean(settingsLabel(e.recon)) === Boolean(o.settings));
  const rowOf = (e: Entry): string => [e.method, settingsLabel(e.recon)].filter(Boolean).join(' ');
  // Rows in the order of PDQUANT.md §7 (the registry's), other runs of a cell by iterations, then seed.
  const order = (e: Entry) => methodNames().indexOf(e.method);
  const sorted = [...chosen].sort((x, y) => order(x) - order(y) || x.iters - y.iters || seedOf(x) - seedOf(y));
  const cell = (row: string, w: number, a: number): string => {
    const es = sorted.filter((e) => rowOf(e) === row && e.w_bits === w && e.a_bits === a);
    const main = es.find(isMain);
    const others = es
      .filter((e) => e !== main)
      .map((e) => [e.top1.toFixed(2), ...(seedOf(e) !== DEFAULT_SEED ? [`seed ${e.seed}`] : []), ...(e.iters !== DEFAULT_ITERS ? [`at ${e.iters} iterations`] : [])].join(' '));
    return [main ? main.top1.toFixed(2) : '–', ...(others.length ? [`(${others.join(', ')})`] : [])].join(' ');
  };
  const rows = [...new Set(sorted.map(rowOf))].map((r) => `| ${r} | ${cell(r, 4, 2)} | ${cell(r, 2, 2)} |`);
  return [`| ${o.settings ? 'method and settings' : 'method'} | W4A2 | W2A2 |`, '|---|---|---|', ...rows].join('\n');
}

function mergeEntry(file: string, entry?: Entry): Entry[] {
  const previous = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { runs?: Entry[] }).runs ?? [] : [];
  // One entry per run folder: method, bits, iterations, seed and settings.
  const entries = new Map(previous.map((e) => [runDirName(e), e]));
  if (entry) entries.set(runDirName(entry), entry);
  return [...entries.values()];
}

function summary(all: Entry[]): BenchResult {
  const main = all.find((e) => e.method === 'pdquant' && e.w_bits === 4 && e.a_bits === 2 && isMain(e) && !settingsLabel(e.recon));
  return {
    ...(main ? { pdquant_w4a2_top1: main.top1, pdquant_w4a2_seconds: main.wall_seconds_to_last_unit, pdquant_w4a2_iterations_per_second: main.iterations_per_second } : {}),
    reference: { pdquant_w4a2_top1: 73.16, pdquant_w2a2_top1: 69.72, pdquant_w4a2_seconds: 3108, pdquant_w2a2_seconds: 3160 },
    runs: all,
  };
}
