/**
 * `npm run bench -- ort`: what the exported QDQ model costs to run in onnxruntime-node, against the float model it came
 * from. Exports resnet20 and torchvision's ResNet-18 (random weights; only their structure matters here) with the mse
 * baseline at W8A8 and W4A4, and with --int8-kernels at W8A8 and W4A8 (the export's structure does not depend on the
 * method), then times each file in
 * onnxruntime with its default graph optimizations on 2 intra-op threads, at batch 1 and 32, and counts the ops
 * onnxruntime ran after its own rewriting (how many convolutions it turned into integer QLinearConv kernels).
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { quantizeModel } from '../src/index.js';
import { readOnnx } from '../src/onnx/index.js';
import { shared, requireShared } from './shared.js';
import type { BenchResult } from './run.js';

const THREADS = 2;
const REPEATS = { 1: 30, 32: 5 } as const;

interface Timing {
  model: string;
  variant: string;
  batch: number;
  ms_per_batch: number;
  file_mb: number;
  /** Op counts of the graph onnxruntime runs, after its optimizations. */
  ops: Record<string, number>;
}

async function time(file: string, optimized: string, size: number, batch: 1 | 32): Promise<{ ms: number; ops: Record<string, number> }> {
  const session = await ort.InferenceSession.create(file, { graphOptimizationLevel: 'all', intraOpNumThreads: THREADS, optimizedModelFilePath: optimized, logSeverityLevel: 3 });
  const x = new ort.Tensor('float32', Float32Array.from({ length: batch * 3 * size * size }, (_, i) => Math.sin(i) * 2), [batch, 3, size, size]);
  const feeds = { [session.inputNames[0]!]: x };
  for (let i = 0; i < 3; i++) await session.run(feeds);
  const runs: number[] = [];
  for (let i = 0; i < REPEATS[batch]; i++) {
    const t = performance.now();
    await session.run(feeds);
    runs.push(performance.now() - t);
  }
  await session.release();
  const ops: Record<string, number> = {};
  for (const n of readOnnx(optimized).nodes) ops[n.opType] = (ops[n.opType] ?? 0) + 1;
  runs.sort((a, b) => a - b);
  return { ms: runs[Math.floor(runs.length / 2)]!, ops };
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
    for (const m of models) {
      const variants: [string, string][] = [['float', m.file]];
      for (const [w, a, int4Storage, int8Kernels] of [[8, 8, false, false], [4, 4, false, false], [4, 4, true, false], [8, 8, false, true], [4, 8, false, true]] as const) {
        const variant = `qdq-w${w}a${a}${int4Storage ? '-int4' : ''}${int8Kernels ? '-int8-kernels' : ''}`;
        const output = join(dir, `${m.name}.${variant}.onnx`);
        await quantizeModel({ model: m.file, calib: shared.calib1024, numSamples: 64, method: 'mse', wBits: w, aBits: a, int4Storage, int8Kernels, preset: m.preset, output, runDir: join(dir, 'runs') });
        variants.push([variant, output]);
      }
      for (const batch of [1, 32] as const)
        for (const [variant, file] of variants) {
          const { ms, ops } = await time(file, join(dir, 'optimized.onnx'), m.size, batch);
          const mb = Number((statSync(file).size / 2 ** 20).toFixed(2));
          timings.push({ model: m.name, variant, batch, ms_per_batch: Number(ms.toFixed(2)), file_mb: mb, ops });
          result[`${m.name}_${variant.replace('qdq-', '')}_mb`] = mb;
          result[`${m.name}_${variant.replace('qdq-', '')}_b${batch}_ms`] = Number(ms.toFixed(2));
          console.log(`  ${m.name} ${variant} batch ${batch}: ${ms.toFixed(2)} ms  (${ops.QLinearConv ?? 0} QLinearConv, ${ops.Conv ?? 0} Conv, ${ops.FusedConv ?? 0} FusedConv)`);
        }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    ...result,
    onnxruntime: ort.env.versions.common,
    threads: THREADS,
    note: 'median of repeated runs after 3 warm-ups; ops = the graph onnxruntime runs after its default optimizations',
    timings,
  };
}
