/** `pdquant sensitivity`: which units lose most when quantized, and the --bits rule that keeps each at more bits. */
import type { Command } from 'commander';
import { addCalibrationOptions, addPreprocessOptions, bitRule, existingPath, intIn, outputFile, unitsFile, useDevice } from './options.js';
import type { PreprocessOptions } from '../data/index.js';
import { FLOAT_BITS, type BitRule } from '../quant/placement.js';
import { writeJsonAtomic } from '../util/atomic.js';

interface Flags extends PreprocessOptions {
  calib: string;
  w: number;
  a: number;
  numSamples: number;
  seed: number;
  '8bitHeadStem': boolean;
  bits?: BitRule[];
  int8Kernels?: boolean;
  units?: string;
  eval?: string;
  evalLimit?: number;
  batch: number;
  device?: string;
  json?: string;
}

export function sensitivityCommand(program: Command): void {
  const command = program
    .command('sensitivity')
    .description('which units lose most when quantized (scale-only): each unit alone quantized against the float model, with the --bits rule that selects it');
  addPreprocessOptions(addCalibrationOptions(command, 256))
    .option('--eval <path>', 'labelled images: also top-1 with everything and with each unit alone quantized', existingPath('Evaluation path'))
    .option('--eval-limit <n>', 'evaluate only the first N images', intIn('--eval-limit', 1))
    .option('--no-8bit-head-stem', 'quantize the first/last layers and the classifier input at the chosen bits too')
    .option('--bits <pattern=w/a>', 'rules already decided on, as quantize takes them (repeatable)', bitRule)
    .option('--int8-kernels', 'the placement quantize --int8-kernels uses (needs --a 8)')
    .option('--units <file>', 'JSON list overriding the grouping into units (see `pdquant inspect`)', existingPath('Units file'))
    .option('--batch <n>', 'batch size', intIn('--batch', 1), 64)
    .option('--device <name>', 'cpu, cuda or cuda:N (default: $PDQUANT_DEVICE, else cpu)')
    .option('--json <file>', 'write the analysis here', outputFile('--json'))
    .action(async (model: string, f: Flags) => {
      await useDevice(f.device);
      const { analyzeSensitivity } = await import('../index.js');
      const r = await analyzeSensitivity(
        {
          model, calib: f.calib, wBits: f.w, aBits: f.a, numSamples: f.numSamples, seed: f.seed, eightBitHeadStem: f['8bitHeadStem'], bitRules: f.bits, int8Kernels: f.int8Kernels,
          units: unitsFile(f.units), eval: f.eval, evalLimit: f.evalLimit, batch: f.batch, device: f.device,
          preset: f.preset, resize: f.resize, crop: f.crop, mean: f.mean, std: f.std,
        },
        { warning: (m) => console.error(`pdquant: warning: ${m}`), pass: (k, total, what) => console.error(`pdquant: pass ${k + 1}/${total}: ${what}`) },
      );
      const top1 = r.fp_top1 !== undefined;
      const pct = (x: number | undefined) => (x === undefined ? '' : `${x.toFixed(2)} %`);
      const kl = (x: number) => (x !== 0 && Math.abs(x) < 1e-3 ? x.toExponential(2) : x.toPrecision(3));
      console.log(`W${r.w_bits}A${r.a_bits}${r.int8_kernels ? ' for integer kernels' : ''} scale-only (mse), ${r.images} calibration images${top1 ? `, top-1 on ${r.n} labelled images (FP ${pct(r.fp_top1)})` : ''}`);
      console.log(`every unit quantized: KL ${kl(r.all.kl)}, top class kept on ${pct(r.all.agreement)}${top1 ? `, top-1 ${pct(r.all.top1)}` : ''}`);
      console.log('each unit alone quantized (all of it; its weights only; its activations only), most sensitive first:');
      const rows = [...r.units].sort((a, b) => b.kl - a.kl);
      const name = Math.max(4, ...rows.map((u) => u.unit.length));
      console.log(`  ${'unit'.padEnd(name)}  kind   ${'KL'.padStart(9)}  ${'kept'.padStart(8)}${top1 ? `  ${'top-1'.padStart(8)}` : ''}  ${'KL W only'.padStart(9)}  ${'KL A only'.padStart(9)}  --bits pattern`);
      for (const u of rows)
        console.log(`  ${u.unit.padEnd(name)}  ${u.kind.padEnd(5)}  ${kl(u.kl).padStart(9)}  ${pct(u.agreement).padStart(8)}${top1 ? `  ${pct(u.top1).padStart(8)}` : ''}  ` +
          `${kl(u.weightsOnly.kl).padStart(9)}  ${kl(u.actsOnly.kl).padStart(9)}  '${u.pattern}'`);
      const worst = rows[0];
      if (worst) {
        // Raise what hurts: the activations, the weights, or both when neither dominates.
        const [w, a] = [worst.weightsOnly.kl, worst.actsOnly.kl];
        const eight = (bits: number) => (bits === FLOAT_BITS ? bits : 8); // float stays float
        const [what, bitsRule] = a > 2 * w ? ['activations', `${r.w_bits}/8`] : w > 2 * a ? ['weights', `8/${r.a_bits}`] : ['weights and activations', `${eight(r.w_bits)}/${eight(r.a_bits)}`];
        console.log(`e.g. keep the most sensitive unit's ${what} at 8 bits: pdquant quantize ... --bits '${worst.pattern}=${bitsRule}'`);
      }
      if (f.json) writeJsonAtomic(f.json, r);
    });
}
