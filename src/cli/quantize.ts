/** `pdquant quantize`: quantize an ONNX model with a method and report FP vs quantized accuracy. */
import { InvalidArgumentError, type Command } from 'commander';
import { addCalibrationOptions, bitRule, intIn, existingPath, outputFile, outputFolder, positiveNumber, addPreprocessOptions, unitsFile, useDevice } from './options.js';
import { progressBar } from './progress.js';
import { reconProgress } from './recon-progress.js';
import { writeJsonAtomic } from '../util/atomic.js';
import type { ReconConfig } from '../recon/config.js';
import type { BitRule } from '../quant/placement.js';
import type { RunRecord } from '../methods/pipeline.js';
import type { ImageSize } from '../data/types.js';

interface Flags {
  device?: string;
  calib: string;
  method: string;
  w: number;
  a: number;
  numSamples: number;
  seed: number;
  preset?: string;
  resize?: ImageSize;
  crop?: ImageSize;
  mean?: number[];
  std?: number[];
  eval?: string;
  evalLimit?: number;
  evalBatch: number;
  json?: string;
  report?: string;
  saveQparams?: string;
  '8bitHeadStem': boolean;
  bits?: BitRule[];
  runDir?: string;
  resume?: string;
  checkpointMinutes?: number;
  units?: string;
  output?: string;
  int4Storage?: boolean;
  int8Kernels?: boolean;
  verify: boolean;
  archPreset?: string;
  iters?: number;
  batch?: number;
  wRound?: number;
  T?: number;
  lambdaR?: number;
  lambdaC?: number;
  dcSteps?: number;
  dcLr?: number;
  dropP?: number;
  inputDropP?: number;
  weightLr?: number;
  actLr?: number;
  warmup?: number;
}

const probability = (flag: string) => (v: string) => {
  const n = positiveNumber(flag)(v);
  if (n > 1) throw new InvalidArgumentError(`Expected a number in (0, 1] for ${flag} but received ${v}`);
  return n;
};

export function quantizeCommand(program: Command): void {
  const command = program
    .command('quantize')
    .description('quantize an ONNX model (PD-Quant, QDrop, BRECQ, AdaRound, or scale-only baselines)');
  addPreprocessOptions(addCalibrationOptions(command, 1024).option('--method <name>', 'minmax | mse | cosine | adaround | brecq | qdrop | pd-only | pd-reg | pd-reg-drop | qdrop-dc | pdquant', 'pdquant'))
    .option('--eval <path>', 'labelled images to measure FP and quantized top-1 on', existingPath('Evaluation path'))
    .option('--eval-limit <n>', 'evaluate only the first N images', intIn('--eval-limit', 1))
    .option('--eval-batch <n>', 'evaluation batch size', intIn('--eval-batch', 1), 100)
    .option('--device <name>', 'cpu, cuda or cuda:N (default: $PDQUANT_DEVICE, else cpu)')
    .option('--json <file>', 'write the run record here', outputFile('--json'))
    .option('--report <file>', 'write an HTML report with charts (accuracy, times, loss curves) here', outputFile('--report'))
    .option('--save-qparams <file>', 'write the quantization parameters (for `pdquant eval --qparams`)', outputFile('--save-qparams'))
    .option('--no-8bit-head-stem', 'quantize the first/last layers and the classifier input at the chosen bits too')
    .option('--bits <pattern=w/a>', 'other bit-widths for the weight layers whose node name starts with the pattern (or matches re:<regex>) and the activation quantizer after each, e.g. \'re:depthwise=8/8\' (activations 32: left float); repeatable, later rules win', bitRule)
    .option('-o, --output <file>', 'write the deployable QDQ ONNX model here (verified in onnxruntime)', outputFile('-o'))
    .option('--int4-storage', 'store weights of 4 bits or fewer as packed UINT4 (ONNX opset 21)')
    .option('--int8-kernels', 'quantize so that onnxruntime runs the export with integer kernels (QLinearConv, QLinearAdd; faster than float on CPU): also quantizes the image and residual branches at 8 bits, 8-bit weights symmetric; needs --a 8')
    .option('--no-verify', 'skip checking the exported model in onnxruntime against the simulation')
    .option('--units <file>', 'JSON list overriding the grouping into reconstruction units (see `pdquant inspect`)', existingPath('Units file'))
    .option('--run-dir <dir>', 'folder for per-unit checkpoints (default runs/<model>-<method>-w<w>a<a>-seed<seed>)', outputFolder('--run-dir'))
    .option('--resume <dir>', 'continue a crashed run from its run folder: finished units are skipped, and the unit it was in continues from its last saved progress')
    .option('--checkpoint-minutes <m>', 'while a unit runs, save its progress in the run folder this often, so that --resume continues inside it (default 10)', positiveNumber('--checkpoint-minutes'))
    .option('--arch-preset <name>', 'w_round, T and λc of PDQUANT.md §6: resnet | regnet | mobilenetv2 | mnasnet', 'resnet')
    .option('--iters <n>', 'iterations per unit (default 20000)', intIn('--iters', 1))
    .option('--batch <n>', 'reconstruction batch size (default 32)', intIn('--batch', 1))
    .option('--w-round <x>', 'rounding regulariser weight', positiveNumber('--w-round'))
    .option('--T <x>', 'PD loss temperature', positiveNumber('--T'))
    .option('--lambda-r <x>', 'PD loss divided by λr (default 0.1)', positiveNumber('--lambda-r'))
    .option('--lambda-c <x>', 'DC anchor term divided by λc', positiveNumber('--lambda-c'))
    .option('--dc-steps <n>', 'DC Adam steps (default 500)', intIn('--dc-steps', 0))
    .option('--dc-lr <x>', 'DC learning rate (default 1e-3)', positiveNumber('--dc-lr'))
    .option('--drop-p <x>', 'QDrop: probability that an activation quantizer quantizes an element (default 0.5)', probability('--drop-p'))
    .option('--input-drop-p <x>', 'input drop: probability that a unit input element is the quantized one, else FP (default 0.5)', probability('--input-drop-p'))
    .option('--weight-lr <x>', 'rounding learning rate (default 3e-3)', positiveNumber('--weight-lr'))
    .option('--act-lr <x>', 'activation step learning rate (default 4e-5)', positiveNumber('--act-lr'))
    .option('--warmup <x>', 'fraction of iterations without rounding loss (default 0.2)', probability('--warmup'))
    .action(async (model: string, f: Flags) => {
      await useDevice(f.device); // its messages name --device
      const { quantizeModel, defaultRunDir, int8KernelsRefusal } = await import('../index.js');
      const { method } = await import('../methods/registry.js');
      const given = {
        iters: f.iters, batch: f.batch, wRound: f.wRound, T: f.T, lambdaR: f.lambdaR, lambdaC: f.lambdaC, dcSteps: f.dcSteps,
        dcLr: f.dcLr, dropP: f.dropP, inputDropP: f.inputDropP, weightLr: f.weightLr, actLr: f.actLr, warmup: f.warmup,
      };
      const recon: Partial<ReconConfig> = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined));
      const runDir = f.resume ?? f.runDir ?? defaultRunDir(model, f.method, f.w, f.a, f.seed);
      // Said when the reconstruction starts, after the model and the images were found usable.
      const runDirNote = method(f.method).recon && f.resume === undefined
        ? `pdquant: each finished unit, and a running one every ${f.checkpointMinutes ?? 10} minutes, is checkpointed in ${runDir}; if the run stops, the same command with --resume ${runDir} continues it` : undefined;
      const stage = (p: string) => {
        console.error(`pdquant: ${p}`);
        if (p === 'reconstruction' && runDirNote) console.error(runDirNote);
      };
      const bar = progressBar('eval');
      const rp = reconProgress(recon.iters ?? 20000);
      const { record, qparams } = await quantizeModel(
        {
          model, calib: f.calib, method: f.method, wBits: f.w, aBits: f.a, numSamples: f.numSamples, seed: f.seed,
          preset: f.preset, resize: f.resize, crop: f.crop, mean: f.mean, std: f.std, archPreset: f.archPreset,
          eightBitHeadStem: f['8bitHeadStem'], bitRules: f.bits, int8Kernels: f.int8Kernels, eval: f.eval, evalLimit: f.evalLimit, evalBatch: f.evalBatch, recon,
          runDir, resume: f.resume !== undefined, device: f.device,
          ...(f.checkpointMinutes !== undefined ? { unitCheckpointSeconds: f.checkpointMinutes * 60 } : {}),
          output: f.output, int4Storage: f.int4Storage, verify: f.verify, units: unitsFile(f.units),
        },
        { ...rp, stage, warning: (m: string) => console.error(`pdquant: warning: ${m}`), evalProgress: (what: string, d: number, t: number) => bar.update(d, t, what) },
      );
      rp.stop();
      bar.stop();
      if (f.saveQparams) writeJsonAtomic(f.saveQparams, qparams);
      if (record.top1 !== undefined)
        console.log(`${f.method} W${f.w}A${f.a}: top-1 ${record.top1.toFixed(2)} % (FP ${record.fp_top1!.toFixed(2)} %), top-5 ${record.top5!.toFixed(2)} %, ${record.n} images`);
      else console.log(`${f.method} W${f.w}A${f.a}: done (no --eval given)`);
      const ex = record.export;
      if (ex) {
        const check = ex.max_logit_diff === undefined ? 'not verified (--no-verify)'
          : `verified in onnxruntime: ${ex.ort_top1 !== undefined ? `top-1 ${ex.ort_top1.toFixed(2)} % vs simulated ${record.top1!.toFixed(2)} %, ` : ''}max |Δlogit| ${ex.max_logit_diff.toPrecision(3)} (logits up to ${ex.max_logit!.toPrecision(3)}), same top-1 class on ${(ex.agreement! * 100).toFixed(1)} % of probe images${layerwiseSummary(ex.layerwise)}`;
        const k = ex.integer_kernels;
        const linears = k && k.linears > 0 ? `, ${k.integerLinears} of ${k.linears} linear layers` : '';
        const kernels = k ? `; onnxruntime runs ${k.integerConvs} of ${k.convs} convolutions${linears} and ${k.integerAdds} of ${k.adds} residual additions with integer kernels` : '';
        console.log(`wrote ${ex.path}${ex.int4_storage ? ' (4-bit weight storage)' : ''}: ${check}${kernels}`);
        const wide = ex.uint8_weights;
        if (wide && wide.layers > 0)
          console.log(`note: ${wide.layers} of ${wide.of} layers have weight codes past ±64 (8-bit weights), written as UINT8: onnxruntime computes them exactly on every CPU, but on CPUs without VNNI with kernels slower than those of the narrower ones (README: Running the exported model); with every layer at 6 bits or fewer (--no-8bit-head-stem, --bits '<layer>=6/8') all run on the faster ones`);
        if (!f.int8Kernels && int8KernelsRefusal(f.w, f.a, { bitRules: f.bits, int4Storage: f.int4Storage }) === undefined)
          console.log('tip: with --int8-kernels onnxruntime runs such a model with integer kernels, faster than float (README: Running the exported model); without it, it runs in float and slower than the float model');
      }
      if (f.json) writeJsonAtomic(f.json, record);
      if (f.report) {
        const { writeReport } = await import('../report/index.js');
        await writeReport(record, f.report);
        console.log(`wrote ${f.report}`);
      }
    });
}

/** The layer-by-layer check in a few words, for the line that says where the export went. */
function layerwiseSummary(l: NonNullable<RunRecord['export']>['layerwise']): string {
  if (!l) return '';
  const acts = `each of ${l.quantizers} activation quantizers equal layer by layer (${l.rounding_flips} of ${l.values} values one rounding step apart)`;
  if (l.weight_layers === 0) return `, ${acts} (weights float: no quantizers to compare)`;
  const layers = `, the weights and biases of all ${l.weight_layers} layers`;
  return l.quantizers === 0 ? `${layers} equal (activations float: no quantizers to compare)` : `${layers} and ${acts}`;
}
