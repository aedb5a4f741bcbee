/**
 * The fast scale search's per-row estimates (estimate.ts, nearBest) on the engine's threads. Rows are independent and
 * each is computed the same way wherever it runs, so the result does not depend on the thread count. The search is
 * synchronous: the rows are cut into chunks that this thread and the workers claim one at a time from a shared
 * counter; this thread then waits (Atomics.wait) only for workers that have claimed a chunk, and reads their results
 * with receiveMessageOnPort. A worker that never starts (it failed to load, or died) claims nothing, so this thread
 * does its chunks instead of waiting for it.
 */
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { engineInfo } from '../engine/index.js';
import { claimChunks, nearRows, type RowSearch } from './estimate.js';

/** Below this many row elements × candidates (a few tens of ms of estimates), starting the workers costs more than it saves. */
const PARALLEL_WORK = 1 << 22;
/** Chunks per thread: rows differ in cost (estimateMse skips hopeless widths), so smaller shares balance the load. */
const CHUNKS_PER_THREAD = 4;

/** What a worker is sent (row-worker.ts): the rows of data (shared, c × m), the chunks and where to report. */
export interface RowJob {
  search: RowSearch;
  data: Float32Array;
  m: number;
  /** Chunk q is rows [bounds[q], bounds[q + 1]). */
  bounds: number[];
  /** [0]: the next chunk to claim; [1]: workers that may hold a claimed chunk not yet posted (notified on decrement). */
  counters: Int32Array;
  port: MessagePort;
}

/** A worker's chunks, as [chunk, nearBest of its rows], or the error that stopped it. */
export type RowResult = { chunks: [number, number[][]][] } | { error: string };

const pool: Worker[] = [];
let parallelSearches = 0;

/** How many searches were split over threads so far (for tests). */
export function parallelSearchCount(): number {
  return parallelSearches;
}

function drop(w: Worker): void {
  const i = pool.indexOf(w);
  if (i >= 0) pool.splice(i, 1);
}

function workers(n: number): Worker[] {
  while (pool.length < n) {
    const w = new Worker(new URL('./row-worker.js', import.meta.url));
    w.unref();
    // A worker that fails or exits leaves the pool; its chunks were or will be done here.
    w.on('error', () => drop(w));
    w.on('exit', () => drop(w));
    pool.push(w);
  }
  return pool.slice(0, n);
}

function shared(a: Float32Array): Float32Array {
  const s = new Float32Array(new SharedArrayBuffer(a.byteLength));
  s.set(a);
  return s;
}

/** nearBest of every row of data (c rows of m values), split over up to engineInfo().threads threads. */
export function nearBestRows(data: Float32Array, m: number, search: RowSearch): number[][] {
  const c = search.c;
  const threads = Math.min(c, engineInfo().threads);
  if (threads <= 1 || c * m * search.k < PARALLEL_WORK) return nearRows(data, m, search, 0, c);
  return nearBestRowsOn(workers(threads - 1), data, m, search, threads);
}

/** nearBestRows on the given workers (tests pass workers that never answer). */
export function nearBestRowsOn(helpers: Worker[], data: Float32Array, m: number, search: RowSearch, threads: number): number[][] {
  parallelSearches++;
  const c = search.c;
  const chunks = Math.min(c, threads * CHUNKS_PER_THREAD);
  const bounds = Array.from({ length: chunks + 1 }, (_, q) => Math.round((q * c) / chunks));
  const counters = new Int32Array(new SharedArrayBuffer(8));
  const sharedSearch = { ...search, deltaAll: shared(search.deltaAll), zpAll: shared(search.zpAll) };
  const job = { search: sharedSearch, data: shared(data), m, bounds, counters };
  const ports = helpers.map((w) => {
    const { port1, port2 } = new MessageChannel();
    w.postMessage({ ...job, port: port2 } satisfies RowJob, [port2]);
    return port1;
  });
  const byChunk: (number[][] | undefined)[] = new Array(chunks);
  for (const [q, near] of claimChunks(job)) byChunk[q] = near;
  for (let v; (v = Atomics.load(counters, 1)) > 0; ) Atomics.wait(counters, 1, v);
  for (const port of ports) {
    const result = receiveMessageOnPort(port)?.message as RowResult | undefined;
    port.close();
    if (result && 'error' in result) throw new Error(`Error in the scale search on a worker thread: ${result.error}`);
    for (const [q, near] of result?.chunks ?? []) byChunk[q] = near;
  }
  const missing = byChunk.findIndex((near) => !near);
  if (missing >= 0) throw new Error(`Error in the scale search: rows ${bounds[missing]}..${bounds[missing + 1]! - 1} were claimed by a worker thread that reported no result`);
  return byChunk.flatMap((near) => near!);
}
