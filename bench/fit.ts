/**
 * `npm run bench -- fit`: how well each finished recon run fits its calibration images against how it does on the
 * test set. For every entry of bench/results/recon.json whose checkpoint is still in bench/out, the quantized model
 * is evaluated on the 1024 calibration images (CIFAR-10 training images, labelled by their class folders); the gap
 * calibration − test top-1 measures over-fitting to the calibration set (the FP model's own gap is the baseline).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTransform, openDataset } from '../src/data/index.js';
import { evaluateGraph } from '../src/eval/index.js';
import { loadModel } from '../src/graph/load.js';
import { method } from '../src/methods/registry.js';
import { QuantizedModel, type QParamsFile } from '../src/quant/qmodel.js';
import { reconUnits } from '../src/recon/run.js';
import { runDirName, type Entry } from './recon.js';
import { shared, requireShared } from './shared.js';
import { resultsDir, type BenchResult } from './run.js';

export interface FitEntry {
  run: string;
  method: string;
  w_bits: number;
  a_bits: number;
  test_top1: number;
  calib_top1: number;
  /** calib_top1 − test_top1. */
  gap: number;
}

export async function run(): Promise<BenchResult> {
  const reconFile = join(resultsDir(), 'recon.json');
  requireShared(shared.resnet20, shared.calib1024, reconFile);
  const entries = (JSON.parse(readFileSync(reconFile, 'utf8')) as { runs: Entry[] }).runs;
  const loaded = loadModel(shared.resnet20);
  const calib = await openDataset(shared.calib1024);
  const opts = { transform: makeTransform('cifar'), batchSize: 256 };
  const fpCalib = (await evaluateGraph(loaded.fp, calib, opts)).top1;
  const fpTest = entries[0]?.fp_top1 ?? NaN;
  const runs: FitEntry[] = [];
  for (const e of entries) {
    const run = runDirName(e);
    const ckpt = join(resultsDir(), '..', 'out', run, 'checkpoint.json');
    if (!existsSync(ckpt)) continue;
    const c = JSON.parse(readFileSync(ckpt, 'utf8')) as { done: string[]; qparams: QParamsFile };
    if (c.done.length !== reconUnits(loaded, method(e.method).recon!).length) continue; // a run started again and not finished
    const qmodel = QuantizedModel.fromQParams(loaded.folded, loaded.units, c.qparams);
    const top1 = (await evaluateGraph(loaded.folded, calib, { ...opts, hooks: qmodel.hooks({ weights: true, acts: true }) })).top1;
    qmodel.dispose();
    runs.push({ run, method: e.method, w_bits: e.w_bits, a_bits: e.a_bits, test_top1: e.top1, calib_top1: top1, gap: top1 - e.top1 });
    console.log(`bench fit: ${run}: calibration ${top1.toFixed(2)}, test ${e.top1.toFixed(2)}, gap ${(top1 - e.top1).toFixed(2)}`);
  }
  console.log(`bench fit: FP: calibration ${fpCalib.toFixed(2)}, test ${fpTest.toFixed(2)}, gap ${(fpCalib - fpTest).toFixed(2)}`);
  return { fp: { calib_top1: fpCalib, test_top1: fpTest, gap: fpCalib - fpTest }, runs };
}
