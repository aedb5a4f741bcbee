/**
 * `npm run bench -- ort`: what the exported QDQ model costs to run in onnxruntime-node, against the float model it came
 * from. Exports resnet20 and torchvision's ResNet-18 (random weights; only their structure matters here) with the mse
 * baseline at W8A8 and W4A4, and with --int8-kernels at W8A8 and W4A8, with and without 8-bit first and last layers
 * (the export's structure does not depend on the method), then times each file in
 * onnxruntime with its default graph optimizations on 2 intra-op threads, at batch 1 and 32, and counts the ops
 * onnxruntime ran after its own rewriting (how many convolutions it turned into integer QLinearConv kernels). Each file
 * is timed again in onnxruntime-web's WebAssembly backend (what a browser runs; here in Node, 2 threads), and resnet20's
 * files give their top-1 on the CIFAR-10 test images in both runtimes.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import ort from 'onnxruntime-node';
import * as web from 'onnxruntime-web';
import { batches, openDataset, makeTransform } from '../src/data/index.js';
import { TopK } from '../src/eval/evaluate.js';
import { ortOptimizedModel } from '../src/eval/ort.js';
import { quantizeModel } from '../src/index.js';
import { shared, requireShared } from './shared.js';
import type { BenchResult } from './run.js';

const THREADS = 2;
const REPEATS = { 1: 30, 32: 5 } as const;

interface Timing {
  model: string;
  variant: string;
  batch: number;
  ms_per_batch: number;
  /** The same file in onnxruntime-web's WebAssembly backend (in Node, THREADS threads). */
  web_ms_per_batch: number;
  file_mb: number;
  /** Op counts of the graph onnxruntime runs, after its optimizations. */
  ops: Record<string, number>;
}

/** A session of either runtime, reduced to what the bench needs: logits of a batch. */
interface Runner {
  run(x: Float32Array, shape: number[]): Promise<Float32Array>;
  release(): Promise<void>;
}

async function nodeRunner(file: string): Promise<Runner> {
  const session = await ort.InferenceSession.create(file, { graphOptimizationLevel: 'all', intraOpNumThreads: THREADS, logSeverityLevel: 3 });
  return {
    run: async (x, shape) => Object.values(await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', x, shape) }))[0]!.data as Float32Array,
    release: () => session.release(),
  };
}

async function webRunner(file: string): Promise<Runner> {
  web.env.wasm.numThreads = THREADS;
  const session = await web.InferenceSession.create(readFileSync(file), { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  return {
    run: async (x, shape) => Object.values(await session.run({ [session.inputNames[0]!]: new web.Tensor('float32', x, shape) }))[0]!.data as Float32Array,
    release: () => session.release(),
  };
}

/** Median milliseconds per batch, after 3 warm-ups. */
async function time(runner: Runner, size: number, batch: 1 | 32): Promise<number> {
  const x = Float32Array.from({ length: batch * 3 * size * size }, (_, i) => Math.sin(i) * 2);
  const shape = [batch, 3, size, size];
  for (let i = 0; i < 3; i++) await runner.run(x, shape);
  const runs: number[] = [];
  for (let i = 0; i < REPEATS[batch]; i++) {
    const t = performance.now();
    await runner.run(x, shape);
    runs.push(performance.now() - t);
  }
  await runner.release();
  runs.sort((a, b) => a - b);
  return runs[Math.floor(runs.length / 2)]!;
}

/** Top-1 (%) of a runner on the CIFAR-10 test images. */
async function top1(runner: Runner): Promise<number> {
  const dataset = await openDataset(shared.cifarTest);
  const acc = new TopK();
  for await (const b of batches(dataset, { batchSize: 200, transform: makeTransform('cifar') })) acc.add(await runner.run(b.data, b.shape), 10, b.labels);
  await runner.release();
  return Number(acc.result(0).top1.toFixed(2));
}

export async function run(): Promise<BenchResult> {
  const models = [
    { name: 'resnet20', file: shared.resnet20, size: 32, preset: 'cifar' },
    { name: 'resnet18', file: shared.torchvision('resnet18'), size: 224, preset: 'imagenet' },
  ] as const;
  requireShared(...models.map((m) => m.file), shared.calib1024);
  const dir = mkdtempSync(join(tmpdir(), 'pdquant-bench-ort-'));
  const timings: Timing[] = [];
  const result: BenchResult = {};
  try {
    const files: { m: (typeof models)[number]; variant: string; file: string }[] = [];
    for (const m of models) {
      files.push({ m, variant: 'float', file: m.file });
      // The last variant has no 8-bit layer: every weight code fits onnxruntime's U8S8 kernels, which the 8-bit layers
      // (written as UINT8, see SATURATION_SAFE_CODE) leave for its U8U8 ones; this shows what that costs.
      for (const [w, a, int4Storage, int8Kernels, head8] of [[8, 8, false, false, true], [4, 4, false, false, true], [4, 4, true, false, true], [8, 8, false, true, true], [4, 8, false, true, true], [4, 8, false, true, false]] as const) {
        const variant = `qdq-w${w}a${a}${int4Storage ? '-int4' : ''}${int8Kernels ? '-int8-kernels' : ''}${head8 ? '' : '-no-8bit-head-stem'}`;
        const output = join(dir, `${m.name}.${variant}.onnx`);
        await quantizeModel({ model: m.file, calib: shared.calib1024, numSamples: 64, method: 'mse', wBits: w, aBits: a, eightBitHeadStem: head8, int4Storage, int8Kernels, preset: m.preset, output, runDir: join(dir, 'runs') });
        files.push({ m, variant, file: output });
      }
    }
    const key = (f: (typeof files)[number]) => `${f.m.name}_${f.variant.replace('qdq-', '')}`;
    // Every onnxruntime-node measurement before the first onnxruntime-web session: the web build's thread pool stays
    // for the life of the process and would share the cores with what runs after it.
    for (const f of files)
      for (const batch of [1, 32] as const) {
        const ms = await time(await nodeRunner(f.file), f.m.size, batch);
        const ops: Record<string, number> = {};
        for (const n of (await ortOptimizedModel(f.file)).nodes) ops[n.opType] = (ops[n.opType] ?? 0) + 1;
        const mb = Number((statSync(f.file).size / 2 ** 20).toFixed(2));
        timings.push({ model: f.m.name, variant: f.variant, batch, ms_per_batch: Number(ms.toFixed(2)), web_ms_per_batch: NaN, file_mb: mb, ops });
        result[`${key(f)}_mb`] = mb;
        result[`${key(f)}_b${batch}_ms`] = Number(ms.toFixed(2));
        console.log(`  ${f.m.name} ${f.variant} batch ${batch}: ${ms.toFixed(2)} ms  (${ops.QLinearConv ?? 0} QLinearConv, ${ops.Conv ?? 0} Conv, ${ops.FusedConv ?? 0} FusedConv)`);
      }
    // The trained CIFAR model: the same file gives the same top-1 in both runtimes.
    for (const f of files.filter((f) => f.m.name === 'resnet20')) result[`${key(f)}_top1`] = await top1(await nodeRunner(f.file));
    await time(await webRunner(files[0]!.file), files[0]!.m.size, 1); // starts the WebAssembly module and its threads
    for (const f of files)
      for (const batch of [1, 32] as const) {
        const webMs = Number((await time(await webRunner(f.file), f.m.size, batch)).toFixed(2));
        timings.find((t) => t.model === f.m.name && t.variant === f.variant && t.batch === batch)!.web_ms_per_batch = webMs;
        result[`${key(f)}_b${batch}_web_ms`] = webMs;
        console.log(`  ${f.m.name} ${f.variant} batch ${batch}: web ${webMs} ms`);
      }
    for (const f of files.filter((f) => f.m.name === 'resnet20')) {
      result[`${key(f)}_web_top1`] = await top1(await webRunner(f.file));
      console.log(`  ${f.m.name} ${f.variant}: top-1 ${result[`${key(f)}_top1`]} %, web ${result[`${key(f)}_web_top1`]} %`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    ...result,
    onnxruntime: ort.env.versions.common,
    threads: THREADS,
    onnxruntime_web: web.env.versions.web ?? web.env.versions.common,
    note: 'median of repeated runs after 3 warm-ups; ops = the graph onnxruntime runs after its default optimizations; web = onnxruntime-web WebAssembly backend in Node with the same thread count; top-1 on the 10,000 CIFAR-10 test images (resnet20 is trained; resnet18 has random weights)',
    timings,
  };
}
