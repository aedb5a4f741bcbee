/** `pdquant quantize`: quantize an ONNX model with a method and report FP vs quantized accuracy. */
import type { Command } from 'commander';
import { bits, intIn, existingPath, transformFor } from './options.js';
import { progressBar } from './progress.js';
import { writeJsonAtomic } from '../report/atomic.js';

interface Flags {
  calib: string;
  method: string;
  w: number;
  a: number;
  numSamples: number;
  seed: number;
  preset?: string;
  eval?: string;
  evalLimit?: number;
  batch: number;
  json?: string;
  saveQparams?: string;
  head8: boolean;
}

export function quantizeCommand(program: Command, version: string): void {
  program
    .command('quantize')
    .description('quantize an ONNX model (PD-Quant, QDrop, BRECQ, AdaRound, or scale-only baselines)')
    .argument('<model>', 'ONNX model (BatchNormalization kept)', existingPath('Model'))
    .requiredOption('--calib <path>', 'calibration images: folder, list file, CIFAR-10 .bin or IDX', existingPath('Calibration path'))
    .option('--method <name>', 'minmax | mse | cosine | adaround | brecq | qdrop | pd-only | pd-reg | pd-reg-drop | qdrop-dc | pdquant', 'pdquant')
    .requiredOption('--w <bits>', 'weight bit-width 2..8', bits('--w'))
    .requiredOption('--a <bits>', 'activation bit-width 2..8', bits('--a'))
    .option('--num-samples <n>', 'calibration images', intIn('--num-samples', 1), 1024)
    .option('--seed <n>', 'random seed', intIn('--seed', 0), 1005)
    .option('--preset <name>', 'preprocessing: cifar, imagenet, mnist, none (default from the model input size)')
    .option('--eval <path>', 'labelled images to measure FP and quantized top-1 on', existingPath('Evaluation path'))
    .option('--eval-limit <n>', 'evaluate only the first N images', intIn('--eval-limit', 1))
    .option('--batch <n>', 'evaluation batch size', intIn('--batch', 1), 100)
    .option('--json <file>', 'write the run record here')
    .option('--save-qparams <file>', 'write the quantization parameters (for `pdquant eval --qparams`)')
    .option('--no-8bit-head-stem', 'quantize the first/last layers and the classifier input at the chosen bits too')
    .action(async (model: string, f: Flags) => {
      const { quantize } = await import('../methods/pipeline.js');
      const { method } = await import('../methods/registry.js');
      const { readOnnx } = await import('../onnx/read.js');
      method(f.method);
      const input = readOnnx(model).inputs[0]?.dims ?? [];
      const transform = transformFor(f.preset, input.slice(2).map((d) => (typeof d === 'number' ? d : null)));
      const bar = progressBar('eval');
      const { record, qmodel } = await quantize(
        { model, calib: f.calib, method: f.method, wBits: f.w, aBits: f.a, numSamples: f.numSamples, seed: f.seed, transform, eightBitHeadStem: f.head8, eval: f.eval, evalLimit: f.evalLimit, batch: f.batch },
        version,
        { phase: (p) => console.error(`pdquant: ${p}`), evalProgress: (what, d, t) => bar.update(d, t, what) },
      );
      bar.stop();
      if (f.saveQparams) writeJsonAtomic(f.saveQparams, qmodel.state());
      if (record.top1 !== undefined)
        console.log(`${f.method} W${f.w}A${f.a}: top-1 ${record.top1.toFixed(2)} % (FP ${record.fp_top1!.toFixed(2)} %), top-5 ${record.top5!.toFixed(2)} %, ${record.n} images`);
      else console.log(`${f.method} W${f.w}A${f.a}: done (no --eval given)`);
      if (f.json) writeJsonAtomic(f.json, record);
    });
}
