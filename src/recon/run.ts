/** The per-unit loop over the whole network (PDQUANT.md §4–§5), checkpointed after every unit so a run can resume. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as E from '../engine/index.js';
import { partitionLayers, tailFrom, type Unit } from '../graph/index.js';
import type { LoadedModel } from '../graph/load.js';
import type { QuantizedModel, QParamsFile } from '../quant/qmodel.js';
import type { ReconPreset } from '../methods/registry.js';
import { writeJsonAtomic } from '../util/atomic.js';
import type { ReconConfig } from './config.js';
import { capture, captureValues, cacheBytes } from './caches.js';
import { distributionCorrection, unitBatchNorms } from './dc.js';
import { BackgroundDc } from './dc-background.js';
import { initUnitActs, reconstructUnit, unitActs, unitInputQuantizer, type Handover, type LossPoint, type UnitCheckpointing, type UnitProgressState } from './unit.js';
import { readUnitProgress, removeUnitProgress, unitProgressPath, writeUnitProgress } from './unit-progress.js';
import { handoverCosts, handoverIteration } from './handover.js';
import { anotherRunError, differingFields } from './fingerprint.js';

export interface UnitRecord {
  name: string;
  kind: 'layer' | 'block';
  seconds: { caching: number; dc: number; optimization: number };
  cacheBytes: number;
  /** With DC in the background: the iteration from which the optimisation ran on every intra-op thread (handover.ts). */
  allThreadsFrom?: number;
  /** For a unit continued by a resumed run: the last iteration the interrupted run had saved (its seconds count from there). */
  resumedAfter?: number;
  dc?: { lossStart: number; lossEnd: number; curve: number[] };
  curve: LossPoint[];
}

export interface ReconEvents {
  unitStart?(index: number, total: number, unit: Unit): void;
  phase?(unit: Unit, phase: 'caching' | 'dc' | 'optimization'): void;
  iteration?(unit: Unit, index: number, iter: number, p: LossPoint): void;
  /** A resumed run continues this unit after the iteration its progress was saved at. */
  unitResumed?(unit: Unit, iteration: number): void;
  /** Units left out before the run: nothing in them to learn (float weights, no activation step it learns). */
  unitsSkipped?(units: Unit[]): void;
}

export interface ReconOptions {
  loaded: LoadedModel;
  qmodel: QuantizedModel;
  images: E.Tensor;
  preset: ReconPreset;
  cfg: ReconConfig;
  seed: number;
  /** Folder for the per-unit checkpoint; with `resume`, finished units are loaded from it and skipped. */
  runDir?: string;
  resume?: boolean;
  /** Identifies the run; a checkpoint of another run is refused. */
  fingerprint: Record<string, unknown>;
  /** While a unit's optimisation runs, its progress is saved in the run folder this often (seconds; default 600). */
  unitCheckpointSeconds?: number;
}

/** How often a running unit's progress is saved by default: a unit shorter than this never writes it. */
export const UNIT_CHECKPOINT_SECONDS = 600;

interface Checkpoint {
  fingerprint: Record<string, unknown>;
  done: string[];
  units: UnitRecord[];
  qparams: QParamsFile;
}

/** Where a run folder holds its checkpoint (rewritten after every finished unit). */
export function checkpointPath(runDir: string): string {
  return join(runDir, 'checkpoint.json');
}

/**
 * A resume needs a checkpoint to continue from: its absence is said before anything is loaded, not after caching.
 * `runDir` is undefined for a scale-only method.
 */
export function checkResumable(methodName: string, runDir: string | undefined): void {
  if (runDir === undefined) throw new Error(`Cannot resume: ${methodName} is scale-only, it reconstructs no units and keeps no checkpoint; run it without --resume`);
  if (existsSync(checkpointPath(runDir)) || existsSync(unitProgressPath(runDir))) return;
  const why = !existsSync(runDir) ? 'does not exist' : 'holds no checkpoint (a run writes one when a unit is finished, and every --checkpoint-minutes while one runs)';
  throw new Error(`Cannot resume: the run folder ${runDir} ${why}; run without --resume to start the run there`);
}

/** The checkpoint in a run folder, if there is one, and the fields of its fingerprint that differ from `fingerprint`. */
export function readCheckpoint(runDir: string, fingerprint: Record<string, unknown>): { checkpoint: Checkpoint; differing: string[] } | null {
  const path = checkpointPath(runDir);
  if (!existsSync(path)) return null;
  let checkpoint: Checkpoint;
  try {
    checkpoint = JSON.parse(readFileSync(path, 'utf8')) as Checkpoint;
  } catch (e) {
    throw new Error(`The checkpoint ${path} cannot be read (${(e as Error).message}); start a new --run-dir`);
  }
  return { checkpoint, differing: differingFields(checkpoint.fingerprint, fingerprint) };
}

/** The units a preset reconstructs: single layers for layer-wise methods (AdaRound), else the model's blocks. */
export function reconUnits(loaded: LoadedModel, preset: ReconPreset): Unit[] {
  return preset.unit === 'layer' ? partitionLayers(loaded.folded) : loaded.units;
}

/**
 * Whether the unit has anything to learn: a weight quantizer (rounding), or an activation quantizer whose step the
 * method learns. Not so where its weights stay float (FLOAT_WEIGHTS) and it has no such activation quantizer.
 */
export function learnsSomething(qmodel: QuantizedModel, preset: ReconPreset, unit: Unit): boolean {
  return unit.nodes.some((n) => qmodel.weights.has(n.name)) || (preset.learnActSteps && unitActs(qmodel, unit).length > 0);
}

/**
 * Saves a unit's progress every unitCheckpointSeconds of its optimisation; with resume, the progress an interrupted run
 * saved for this unit is where it continues.
 */
function unitCheckpointing(o: ReconOptions, unit: string, from: UnitProgressState | undefined): UnitCheckpointing {
  const runDir = o.runDir!;
  const every = (o.unitCheckpointSeconds ?? UNIT_CHECKPOINT_SECONDS) * 1000;
  let last = performance.now();
  return {
    due: () => performance.now() - last >= every,
    save: (state) => {
      writeUnitProgress(runDir, unit, o.fingerprint, state);
      last = performance.now();
    },
    from,
  };
}

/** Reconstructs every unit in network order; returns the per-unit records. */
export function reconstruct(o: ReconOptions, ev: ReconEvents = {}): UnitRecord[] {
  const { loaded, qmodel, images, preset, cfg } = o;
  const fp = loaded.fp;
  const graph = loaded.folded;
  const all = reconUnits(loaded, preset);
  const units = all.filter((u) => learnsSomething(qmodel, preset, u));
  if (units.length < all.length) ev.unitsSkipped?.(all.filter((u) => !units.includes(u)));
  const ckptPath = o.runDir ? checkpointPath(o.runDir) : null;
  const records: UnitRecord[] = [];
  const done = new Set<string>();
  if (o.resume) {
    if (!o.runDir) throw new Error('Cannot resume: no --run-dir');
    const prior = readCheckpoint(o.runDir, o.fingerprint);
    // A run interrupted in its first unit has only that unit's progress.
    if (!prior && !existsSync(unitProgressPath(o.runDir))) throw new Error(`Cannot resume: no checkpoint at ${ckptPath}`);
    if (prior) {
      const { checkpoint: ck, differing } = prior;
      if (differing.length > 0) throw anotherRunError('checkpoint', o.runDir, differing);
      qmodel.load(ck.qparams);
      ck.done.forEach((u) => done.add(u));
      records.push(...ck.units);
    }
  }
  // The progress of the unit the interrupted run was in (if it saved any and the unit is not finished since).
  const saved = o.resume && o.runDir ? readUnitProgress(o.runDir, o.fingerprint) : undefined;
  const input = graph.input.name;
  const output = graph.output.name;
  // AdaRound keeps activation steps at their initial values: set them all in one pass first.
  if (preset.unit === 'layer' && !done.size) qmodel.initActs(images, 'mse', cfg.actInitRows);
  const logitsFp = preset.pd ? capture(fp, images, input, output, cfg.cacheBatch) : null;
  const quantHooks = qmodel.hooks({ weights: true, acts: true });
  // With more than one core, DC runs ahead on a worker thread (dc-background.ts) and everything on this thread takes
  // one intra-op thread until the DC work is done, so results do not depend on timing.
  const dcUnits = preset.dc ? units.filter((u) => !done.has(u.name) && unitBatchNorms(fp, u.input, u.output).length > 0) : [];
  const threads = E.engineInfo().threads;
  const background = threads > 1 && dcUnits.length > 0 ? new BackgroundDc(fp, images, input, dcUnits, cfg, cfg.batch) : null;
  if (background) E.setThreads(1);
  let backgroundOpen = background !== null;
  const costs = handoverCosts(graph, fp);
  try {
    units.forEach((unit, k) => {
      if (done.has(unit.name)) return;
      ev.unitStart?.(k, units.length, unit);
      E.manualSeed(o.seed + k);
      const t0 = performance.now();
      ev.phase?.(unit, 'caching');
      // The unit's input as the quantized network computes it, before the unit's own quantizer on it (if any).
      const ownInput = unitInputQuantizer(qmodel, unit) ? qmodel.hooks({ weights: true, acts: true }, { skip: new Set([unit.input]) }) : quantHooks;
      const xq = capture(graph, images, input, unit.input, cfg.cacheBatch, ownInput);
      const dcIndex = dcUnits.indexOf(unit);
      // The activation steps are initialised on the unit's first inputs (up to GBs of temporaries) before its FP
      // caches exist, which lowers the peak memory. Not for the last unit that DC corrects in the background: its
      // initialisation ran after DC, with every intra-op thread, and a thread count can change float sums.
      const initFirst = preset.unit === 'block' && !(background && dcIndex === dcUnits.length - 1);
      const ti = performance.now();
      if (initFirst) initUnitActs({ qmodel, graph, preset, cfg }, unit, xq);
      const initSeconds = (performance.now() - ti) / 1000;
      // With background DC the FP input is computed chunk by chunk where it is corrected.
      const xfp = background && dcIndex >= 0 ? null : capture(fp, images, input, unit.input, cfg.cacheBatch);
      let xin = xfp;
      let dc: UnitRecord['dc'];
      let dcSeconds = 0;
      if (dcIndex >= 0) {
        ev.phase?.(unit, 'dc');
        const tdc = performance.now();
        const r = background ? background.take(dcIndex) : distributionCorrection(fp, unit.input, unit.output, xfp!, cfg, cfg.batch);
        dcSeconds = (performance.now() - tdc) / 1000;
        xin = r.xdc;
        dc = { lossStart: r.lossStart, lossEnd: r.lossEnd, curve: r.curve };
      }
      if (background && dcIndex === dcUnits.length - 1) {
        background.close();
        backgroundOpen = false;
        E.setThreads(threads);
      }
      const yfp = capture(fp, xin!, unit.input, unit.output, cfg.cacheBatch);
      // The FP tail of the PD loss may read values from before the unit too (DenseNet): cached FP, as the tail is.
      const around = preset.pd ? tailFrom(graph, unit.output, output).sideInputs : [];
      const tailInputs = around.length ? captureValues(graph, images, input, around, cfg.cacheBatch) : new Map<string, E.Tensor>();
      const t2 = performance.now();
      ev.phase?.(unit, 'optimization');
      if (preset.unit === 'block' && !initFirst) initUnitActs({ qmodel, graph, preset, cfg }, unit, xq);
      // The DC unit the worker works on meanwhile: the first one after this unit.
      const nextDc = backgroundOpen ? dcUnits.findIndex((u) => units.indexOf(u) > k) : -1;
      const at = nextDc < 0 ? null : handoverIteration(costs(unit, dcUnits[nextDc]!, preset.pd), {
        iters: cfg.iters, batch: cfg.batch, images: images.shape[0]!, dcSteps: cfg.dcSteps, passes: preset.drop && preset.pd ? 2 : 1, pd: preset.pd,
      });
      const handover: Handover | undefined = at === null ? undefined : {
        iteration: at,
        run: () => {
          background!.complete(nextDc);
          E.setThreads(threads);
        },
      };
      const checkpointing = o.runDir ? unitCheckpointing(o, unit.name, saved?.unit === unit.name ? saved.state : undefined) : undefined;
      if (checkpointing?.from) ev.unitResumed?.(unit, checkpointing.from.iteration);
      const curve = reconstructUnit({ qmodel, graph, preset, cfg }, unit, { xq, xfp: xin!, yfp, logitsFp, tailInputs }, (it, p) => ev.iteration?.(unit, k, it, p), handover, checkpointing);
      if (handover) E.setThreads(1);
      const t3 = performance.now();
      const caches = [...new Set([xq, xfp, yfp, xin, ...tailInputs.values()].filter((t): t is E.Tensor => t !== null))];
      const bytes = caches.reduce((s, t) => s + cacheBytes(t), logitsFp ? cacheBytes(logitsFp) : 0);
      E.dispose(caches);
      records.push({
        name: unit.name,
        kind: unit.kind,
        seconds: { caching: (t2 - t0) / 1000 - dcSeconds - initSeconds, dc: dcSeconds, optimization: (t3 - t2) / 1000 + initSeconds },
        cacheBytes: bytes,
        ...(at !== null ? { allThreadsFrom: at } : {}),
        ...(checkpointing?.from ? { resumedAfter: checkpointing.from.iteration } : {}),
        ...(dc ? { dc } : {}),
        curve,
    });
    done.add(unit.name);
    if (ckptPath) {
      writeJsonAtomic(ckptPath, { fingerprint: o.fingerprint, done: [...done], units: records, qparams: qmodel.state() } satisfies Checkpoint);
      removeUnitProgress(o.runDir!);
    }
    });
  } finally {
    background?.close();
    E.setThreads(threads);
  }
  logitsFp?.dispose();
  return records;
}
