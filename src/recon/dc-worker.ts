/** The worker thread of a background DC (dc-background.ts): corrects chunks of the units ahead, one intra-op thread. */
import { workerData } from 'node:worker_threads';
import * as E from '../engine/index.js';
import { Graph } from '../graph/index.js';
import { recordError, workOnUnit, type DcWorkerData } from './dc-background.js';

const d = workerData as DcWorkerData;
try {
  E.setThreads(1);
  const fp = new Graph(d.model);
  const images = E.keep(E.takeShared(d.images));
  for (let u = 0; u < d.units.length && !Atomics.load(d.state.control, 2); u++) {
    // Wait until the main thread has reached the unit before this one (it stores u or more in control[0]).
    for (let allowed = Atomics.load(d.state.control, 0); allowed < u; allowed = Atomics.load(d.state.control, 0)) {
      Atomics.wait(d.state.control, 0, allowed);
    }
    workOnUnit(fp, images, d.imageInput, d.units[u]!, u, d.cfg, d.batch, d.state);
  }
} catch (e) {
  recordError(d.state, e);
}
