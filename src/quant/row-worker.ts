// Worker thread of row-pool.ts: estimates its share of the rows, posts them, then counts itself done.
import { parentPort } from 'node:worker_threads';
import { nearRows } from './estimate.js';
import type { RowJob, RowResult } from './row-pool.js';

parentPort!.on('message', (job: RowJob) => {
  let result: RowResult;
  try {
    result = { near: nearRows(job.data, job.m, job.search, job.from, job.to) };
  } catch (e) {
    result = { error: e instanceof Error ? e.message : String(e) };
  }
  job.port.postMessage(result);
  Atomics.add(job.done, 0, 1);
  Atomics.notify(job.done, 0);
});
