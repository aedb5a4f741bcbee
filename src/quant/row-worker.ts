// Worker thread of row-pool.ts: claims chunks of rows until none is left, posts their estimates, then counts itself out.
import { parentPort } from 'node:worker_threads';
import { claimChunks } from './estimate.js';
import type { RowJob, RowResult } from './row-pool.js';

parentPort!.on('message', (job: RowJob) => {
  // Counted in before claiming, so that the searching thread, once every chunk is claimed, sees this worker as pending.
  Atomics.add(job.counters, 1, 1);
  let result: RowResult;
  try {
    result = { chunks: claimChunks(job) };
  } catch (e) {
    result = { error: e instanceof Error ? e.message : String(e) };
  }
  job.port.postMessage(result);
  job.port.close();
  Atomics.sub(job.counters, 1, 1);
  Atomics.notify(job.counters, 1);
});
