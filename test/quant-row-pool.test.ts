// The split scale search: the searching thread does the chunks of workers that never start, so it cannot hang on them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { nearRows, type RowSearch } from '../src/quant/estimate.js';
import { nearBestRowsOn } from '../src/quant/row-pool.js';

/** c rows of m values and 5 widths × 16 zero points of 4-bit candidates per row, candidate-major. */
function rows(c: number, m: number): { data: Float32Array; search: RowSearch } {
  const data = Float32Array.from({ length: c * m }, (_, i) => Math.sin(i * 12.9898) * (1 + (i % 7)));
  const levels = 16, widths = 5, k = widths * levels;
  const deltaAll = new Float32Array(k * c), zpAll = new Float32Array(k * c);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < c; j++) {
      deltaAll[i * c + j] = (2 + 2 * Math.floor(i / levels) + j * 0.1) / (levels - 1);
      zpAll[i * c + j] = i % levels;
    }
  }
  return { data, search: { deltaAll, zpAll, k, c, levels, method: 'mse', p: 2.4, groupSize: levels } };
}

test('a split search returns every row when its workers never answer or fail to load', async () => {
  const { data, search } = rows(12, 64);
  const expected = nearRows(data, 64, search, 0, 12);
  const silent = new Worker("require('node:worker_threads').parentPort.on('message', () => {});", { eval: true });
  const broken = new Worker("throw new Error('fails to load');", { eval: true });
  broken.on('error', () => {});
  try {
    assert.deepEqual(nearBestRowsOn([silent], data, 64, search, 2), expected, 'a worker that ignores its job');
    assert.deepEqual(nearBestRowsOn([broken, silent], data, 64, search, 3), expected, 'a worker that failed to load');
  } finally {
    await Promise.all([silent.terminate(), broken.terminate()]);
  }
});
