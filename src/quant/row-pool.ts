/**
 * The fast scale search's per-row estimates (estimate.ts, nearBest) on the engine's threads. Rows are independent and
 * each is computed the same way wherever it runs, so the result does not depend on the thread count. The search is
 * synchronous: this thread takes the first share of the rows, then waits (Atomics.wait) for the workers' shares,
 * which come back through MessagePorts read with receiveMessageOnPort.
 */
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { engineInfo } from '../engine/index.js';
import { nearRows, type RowSearch } from './estimate.js';

/** Below this many row elements × candidates (a few tens of ms of estimates), starting the workers costs more than it saves. */
const PARALLEL_WORK = 1 << 22;

/** What a worker is sent (row-worker.ts): rows [from, to) of data (shared, c × m), and where to report. */
export interface RowJob {
  search: RowSearch;
  data: Float32Array;
  m: number;
  from: number;
  to: number;
  /** [0]: workers finished, counted up and notified by each worker after it posts its result. */
  done: Int32Array;
  port: MessagePort;
}

export type RowResult = { near: number[][] } | { error: string };

const pool: Worker[] = [];
let parallelSearches = 0;

/** How many searches were split over threads so far (for tests). */
export function parallelSearchCount(): number {
  return parallelSearches;
}

function workers(n: number): Worker[] {
  while (pool.length < n) {
    const w = new Worker(new URL('./row-worker.js', import.meta.url));
    w.unref();
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
  parallelSearches++;
  const bounds = Array.from({ length: threads + 1 }, (_, t) => Math.round((t * c) / threads));
  const done = new Int32Array(new SharedArrayBuffer(4));
  const sharedSearch = { ...search, deltaAll: shared(search.deltaAll), zpAll: shared(search.zpAll) };
  const sharedData = shared(data);
  const ports = workers(threads - 1).map((w, t) => {
    const { port1, port2 } = new MessageChannel();
    const job: RowJob = { search: sharedSearch, data: sharedData, m, from: bounds[t + 1]!, to: bounds[t + 2]!, done, port: port2 };
    w.postMessage(job, [port2]);
    return port1;
  });
  const near = nearRows(data, m, search, 0, bounds[1]!);
  for (let v; (v = Atomics.load(done, 0)) < ports.length; ) Atomics.wait(done, 0, v);
  for (const port of ports) {
    const result = receiveMessageOnPort(port)?.message as RowResult | undefined;
    port.close();
    if (!result) throw new Error('Error in the scale search: a worker thread reported no result');
    if ('error' in result) throw new Error(`Error in the scale search on a worker thread: ${result.error}`);
    near.push(...result.near);
  }
  return near;
}
