/** `pdquant eval`: top-1/top-5 of a model on labelled images, on the engine or in onnxruntime-node. */
import type { Command } from 'commander';
import { intIn, existingPath, outputFile, addPreprocessOptions, useDevice } from './options.js';
import type { PreprocessOptions } from '../data/index.js';
import { progressBar } from './progress.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { machineInfo } from '../util/machine.js';

export function evalCommand(program: Command): void {
  const command = program
    .command('eval')
    .description('top-1/top-5 accuracy of an ONNX model on labelled images')
    .argument('<model>', 'ONNX model', existingPath('Model'))
    .requiredOption('--data <path>', 'image folder (class sub-folders), list file, CIFAR-10 .bin, IDX files, or .npy (labels in X_labels.npy)', existingPath('Data path'));
  addPreprocessOptions(command)
    .option('--split <split>', 'train or test, for data holding both')
    .option('--backend <name>', 'torch (our engine) or ort (onnxruntime-node)', 'torch')
    .option('--batch <n>', 'batch size', intIn('--batch', 1), 100)
    .option('--limit <n>', 'evaluate only the first N images', intIn('--limit', 1))
    .option('--device <name>', 'torch backend: cpu, cuda or cuda:N (default: $PDQUANT_DEVICE, else cpu)')
    .option('--json <file>', 'write {"top1", "top5", "n", "seconds", "machine"} to this file', outputFile('--json'))
    .option('--qparams <file>', 'simulate the quantized model saved by `pdquant quantize --save-qparams` (torch backend)', existingPath('Quantization parameters'))
    .action(async (model: string, o: PreprocessOptions & { data: string; split?: string; backend: string; batch: number; limit?: number; json?: string; qparams?: string; device?: string }) => {
      if (o.backend !== 'torch' && o.backend !== 'ort') throw new Error(`Expected torch or ort for --backend but received ${o.backend}`);
      if (o.qparams && o.backend === 'ort') throw new Error('--qparams simulates on our engine; use --backend torch (or export the model with -o and evaluate that file with --backend ort)');
      if (o.split !== undefined && o.split !== 'train' && o.split !== 'test') throw new Error(`Expected train or test for --split but received ${o.split}`);
      if (o.backend === 'torch') await useDevice(o.device); // its messages name --device
      const { evaluateModel } = await import('../index.js');
      const { readQParams } = await import('../quant/qmodel.js');
      const bar = progressBar(`eval (${o.backend})`);
      const acc = await evaluateModel(model, o.data, {
        backend: o.backend, batch: o.batch, limit: o.limit, split: o.split, device: o.device, qparams: o.qparams ? readQParams(o.qparams) : undefined,
        preset: o.preset, resize: o.resize, crop: o.crop, mean: o.mean, std: o.std,
        onWarning: (w) => console.error(`pdquant: warning: ${w}`), onProgress: (d, t) => bar.update(d, t),
      });
      bar.stop();
      console.log(`top-1 ${acc.top1.toFixed(2)} %  top-5 ${acc.top5.toFixed(2)} %  on ${acc.n} images (${o.backend}, ${acc.seconds.toFixed(1)} s)`);
      // The seconds depend on the machine, so the file names it.
      if (o.json) writeJsonAtomic(o.json, { ...acc, model, data: o.data, backend: o.backend, machine: machineInfo() });
    });
}
