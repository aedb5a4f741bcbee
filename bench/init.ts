/**
 * `npm run bench -- init`: seconds of the per-channel weight scale search (PDQUANT.md §2, mse: 100 widths × every zero
 * point, 1,600 candidates per channel at 4 bits, 25,600 at 8) over every convolution and linear weight of four
 * torchvision models (random weights; the search's cost depends on the shapes and on how the values spread), at 4
 * and 8 bits, on one thread and on two. Also checks that both thread counts choose the same ranges.
 */
import { createHash } from 'node:crypto';
import { readOnnx } from '../src/onnx/read.js';
import { tensor, setThreads, engineInfo } from '../src/engine/index.js';
import { searchRange } from '../src/quant/search.js';
import { shared, requireShared } from './shared.js';
import type { BenchResult } from './run.js';

const MODELS = ['resnet18', 'regnet_x_400mf', 'mobilenet_v2_w050', 'mnasnet0_5'];

/** Seconds for every rank-2/4 float weight of the model, and a hash of the chosen ranges. */
function searchAll(weights: [number[], Float32Array][], bits: number): { seconds: number; ranges: string } {
  const hash = createHash('sha256');
  let seconds = 0;
  for (const [dims, data] of weights) {
    const x2 = tensor(data, [dims[0]!, data.length / dims[0]!]);
    const t0 = performance.now();
    const { lo, hi } = searchRange(x2, 2 ** bits, 'mse');
    seconds += (performance.now() - t0) / 1000;
    hash.update(lo.data() as Float32Array).update(hi.data() as Float32Array);
    lo.dispose();
    hi.dispose();
    x2.dispose();
  }
  return { seconds, ranges: hash.digest('hex') };
}

export function run(): BenchResult {
  const paths = MODELS.map((m) => shared.torchvision(m));
  requireShared(...paths);
  const threads = engineInfo().threads;
  const rows: Record<string, unknown>[] = [];
  const result: BenchResult = {};
  try {
    for (const [i, name] of MODELS.entries()) {
      const weights = [...readOnnx(paths[i]!).initializers.values()]
        .filter((t) => (t.dims.length === 4 || t.dims.length === 2) && t.data instanceof Float32Array)
        .map((t): [number[], Float32Array] => [t.dims, Float32Array.from(t.data as Float32Array)]);
      const elements = weights.reduce((s, [, d]) => s + d.length, 0);
      for (const bits of [4, 8]) {
        const by: Record<number, { seconds: number; ranges: string }> = {};
        for (const t of [1, 2]) {
          setThreads(t);
          by[t] = searchAll(weights, bits);
          result[`${name}_w${bits}_${t}thread_s`] = by[t]!.seconds;
        }
        if (by[1]!.ranges !== by[2]!.ranges) throw new Error(`${name} ${bits}-bit: the ranges differ between 1 and 2 threads`);
        rows.push({ model: name, bits, tensors: weights.length, elements, seconds_1_thread: by[1]!.seconds, seconds_2_threads: by[2]!.seconds, ranges_sha256: by[1]!.ranges });
      }
    }
  } finally {
    setThreads(threads);
  }
  return { ...result, runs: rows, machine_threads: threads };
}
