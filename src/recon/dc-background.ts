/**
 * Distribution correction in the background. DC of a unit needs only the FP network and the calibration images, not
 * the units quantized before it, so a worker thread can correct the next unit's input while this thread optimises the
 * current unit. On 2 cores that beats giving both cores to each phase in turn: LibTorch's intra-op threads speed
 * these small convolutions up by only 1.2–1.7×.
 *
 * The work is split into chunks (cfg.dcChunk rows of one unit). The worker takes chunks of the unit this thread
 * will need next; when this thread needs a unit's DC it takes the chunks nobody has started and then waits for the
 * rest. Chunks are claimed through shared counters, so no chunk runs twice. Every chunk runs on one intra-op
 * thread wherever it runs, and so does the optimisation while DC work remains: the results do not depend on timing.
 * Where the next unit's DC is cheap next to the current unit's optimisation, that optimisation finishes it with the
 * worker at an iteration handover.ts plans, and goes on with every thread.
 * (DC draws no random numbers, so the worker leaves the engine's process-wide generator to the optimisation.)
 *
 * The reconstruction loop is synchronous: waiting is Atomics.wait on shared memory, and tensors cross threads with
 * E.shareTensor / E.takeShared (no copies).
 */
import { Worker } from 'node:worker_threads';
import * as E from '../engine/index.js';
import type { Graph } from '../graph/index.js';
import type { OnnxModel } from '../onnx/ir.js';
import { capture } from './caches.js';
import { DC_CURVE_EVERY, type ReconConfig } from './config.js';
import { correctChunk, dcChunkRows, type DcResult } from './dc.js';

export interface DcUnitSpec {
  input: string;
  output: string;
}

/** What the worker thread is started with (dc-worker.ts). */
export interface DcWorkerData {
  model: OnnxModel;
  images: number;
  imageInput: string;
  units: DcUnitSpec[];
  cfg: ReconConfig;
  batch: number;
  state: DcSharedState;
}

/** Shared memory of one background DC: counters, results and the first error. */
export interface DcSharedState {
  /** Per unit: chunks claimed so far. */
  claimed: Int32Array;
  /** Per unit: chunks finished. */
  finished: Int32Array;
  /** [0]: highest unit index the worker may start; [1]: 1 once an error was recorded; [2]: 1 to stop the worker. */
  control: Int32Array;
  /** Per (unit, chunk): the shared tensor id of the corrected rows. */
  ids: Float64Array;
  /** Per (unit, chunk): lossStart, lossEnd, then the loss curve. */
  stats: Float64Array;
  /** UTF-8 error message, zero-padded. */
  error: Uint8Array;
}

const STATS_HEAD = 2;
const curveLength = (cfg: ReconConfig) => Math.ceil(cfg.dcSteps / DC_CURVE_EVERY);

function newSharedState(units: number, chunks: number, cfg: ReconConfig): DcSharedState {
  const shared = <T>(make: (b: SharedArrayBuffer) => T, bytes: number) => make(new SharedArrayBuffer(bytes));
  return {
    claimed: shared((b) => new Int32Array(b), 4 * units),
    finished: shared((b) => new Int32Array(b), 4 * units),
    control: shared((b) => new Int32Array(b), 12),
    ids: shared((b) => new Float64Array(b), 8 * units * chunks),
    stats: shared((b) => new Float64Array(b), 8 * units * chunks * (STATS_HEAD + curveLength(cfg))),
    error: shared((b) => new Uint8Array(b), 4096),
  };
}

/**
 * Claims and corrects chunks of unit u until none is left unclaimed (both threads run this). The FP input of a
 * chunk's rows is computed here from the images, so no thread needs the whole FP cache of a unit.
 */
export function workOnUnit(fp: Graph, images: E.Tensor, imageInput: string, spec: DcUnitSpec, u: number, cfg: ReconConfig, batch: number, s: DcSharedState): void {
  const rows = images.shape[0]!;
  const chunk = dcChunkRows(cfg, batch);
  const chunks = Math.ceil(rows / chunk);
  const width = STATS_HEAD + curveLength(cfg);
  while (!Atomics.load(s.control, 2)) {
    const c = Atomics.add(s.claimed, u, 1);
    if (c >= chunks) return;
    const chunkImages = E.keep(E.tidy(() => images.slice(0, c * chunk, Math.min(rows, (c + 1) * chunk))));
    const input = capture(fp, chunkImages, imageInput, spec.input, cfg.cacheBatch);
    chunkImages.dispose();
    const r = correctChunk(fp, spec.input, spec.output, input, cfg, batch);
    input.dispose();
    const at = u * chunks + c;
    s.ids[at] = E.shareTensor(r.xdc);
    r.xdc.dispose();
    s.stats.set([r.lossStart, r.lossEnd, ...r.curve], at * width);
    Atomics.add(s.finished, u, 1);
    Atomics.notify(s.finished, u);
  }
}

export function recordError(s: DcSharedState, e: unknown): void {
  const msg = new TextEncoder().encode(e instanceof Error ? e.message : String(e)).subarray(0, s.error.length - 1);
  s.error.set(msg);
  Atomics.store(s.control, 1, 1);
  for (let u = 0; u < s.finished.length; u++) Atomics.notify(s.finished, u);
}

/** The DC of `units` (in the order they will be asked for), with one worker thread helping. */
export class BackgroundDc {
  readonly #fp: Graph;
  readonly #images: E.Tensor;
  readonly #imageInput: string;
  readonly #units: DcUnitSpec[];
  readonly #cfg: ReconConfig;
  readonly #batch: number;
  readonly #state: DcSharedState;
  readonly #chunks: number;
  readonly #worker: Worker;

  constructor(fp: Graph, images: E.Tensor, imageInput: string, units: DcUnitSpec[], cfg: ReconConfig, batch: number) {
    this.#fp = fp;
    this.#images = images;
    this.#imageInput = imageInput;
    this.#units = units;
    this.#cfg = cfg;
    this.#batch = batch;
    this.#chunks = Math.ceil(images.shape[0]! / dcChunkRows(cfg, batch));
    this.#state = newSharedState(units.length, this.#chunks, cfg);
    const data: DcWorkerData = { model: fp.model, images: E.shareTensor(images), imageInput, units, cfg, batch, state: this.#state };
    this.#worker = new Worker(new URL('./dc-worker.js', import.meta.url), { workerData: data });
    this.#worker.unref();
  }

  /** The corrected input of unit u (an index into the units given), the same as distributionCorrection gives. */
  take(u: number): DcResult {
    const s = this.#state;
    // The worker may go on to the unit after this one while this thread optimises this one.
    Atomics.store(s.control, 0, Math.max(Atomics.load(s.control, 0), u + 1));
    Atomics.notify(s.control, 0);
    this.complete(u);
    const width = STATS_HEAD + curveLength(this.#cfg);
    const parts = Array.from({ length: this.#chunks }, (_, c) => E.takeShared(s.ids[u * this.#chunks + c]!));
    const xdc = E.keep(E.cat(parts, 0));
    E.dispose(parts);
    const stat = (c: number, k: number) => s.stats[(u * this.#chunks + c) * width + k]!;
    const sum = (k: number) => Array.from({ length: this.#chunks }, (_, c) => stat(c, k)).reduce((a, b) => a + b, 0);
    return { xdc, lossStart: sum(0), lossEnd: sum(1), curve: Array.from({ length: curveLength(this.#cfg) }, (_, i) => sum(STATS_HEAD + i)) };
  }

  /**
   * Finishes the DC of unit u, which the worker may already have started (u at most one past the last unit taken):
   * this thread corrects the chunks nobody has started, then waits for the rest. take(u) then collects the result.
   */
  complete(u: number): void {
    const s = this.#state;
    workOnUnit(this.#fp, this.#images, this.#imageInput, this.#units[u]!, u, this.#cfg, this.#batch, s);
    for (let f = Atomics.load(s.finished, u); f < this.#chunks && !Atomics.load(s.control, 1); f = Atomics.load(s.finished, u)) {
      Atomics.wait(s.finished, u, f);
    }
    if (Atomics.load(s.control, 1)) {
      const end = s.error.indexOf(0);
      throw new Error(`distribution correction failed in its worker thread: ${new TextDecoder().decode(s.error.subarray(0, end < 0 ? undefined : end))}`);
    }
  }

  /** Stops the worker (a chunk it is running is cut short). */
  close(): void {
    Atomics.store(this.#state.control, 2, 1);
    Atomics.store(this.#state.control, 0, this.#units.length);
    Atomics.notify(this.#state.control, 0);
    void this.#worker.terminate();
  }
}
