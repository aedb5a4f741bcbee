/** `pdquant eval`: top-1/top-5 of a model on labelled images, on the engine or in onnxruntime-node. */
import type { Command } from 'commander';
import { intIn, existingPath, outputFile, transformFor, openData } from './options.js';
import { progressBar } from './progress.js';
import { writeJsonAtomic } from '../util/atomic.js';

export function evalCommand(program: Command): void {
  program
    .command('eval')
    .description('top-1/top-5 accuracy of an ONNX model on labelled images')
    .argument('<model>', 'ONNX model', existingPath('Model'))
    .requiredOption('--data <path>', 'image folder (class sub-folders), list file, CIFAR-10 .bin or IDX files', existingPath('Data path'))
    .option('--preset <name>', 'preprocessing: cifar, imagenet, mnist, none (default from the model input size)')
    .option('--split <split>', 'train or test, for data holding both')
    .option('--backend <name>', 'torch (our engine) or ort (onnxruntime-node)', 'torch')
    .option('--batch <n>', 'batch size', intIn('--batch', 1), 100)
    .option('--limit <n>', 'evaluate only the first N images', intIn('--limit', 1))
    .option('--json <file>', 'write {"top1", "top5", "n", "seconds"} to this file', outputFile('--json'))
    .option('--qparams <file>', 'simulate the quantized model saved by `pdquant quantize --save-qparams` (torch backend)', existingPath('Quantization parameters'))
    .action(async (model: string, o: { data: string; preset?: string; split?: string; backend: string; batch: number; limit?: number; json?: string; qparams?: string }) => {
      if (o.backend !== 'torch' && o.backend !== 'ort') throw new Error(`Expected torch or ort for --backend but received ${o.backend}`);
      const { loadModel, inputChannels, inputChw } = await import('../graph/load.js');
      const { checkEvalData, evaluateGraph, evaluateOrt } = await import('../eval/index.js');
      const loaded = loadModel(model);
      const dataset = await openData(o.data, o.split, inputChannels(loaded.fp));
      const transform = transformFor(o.preset, inputChw(loaded.fp).slice(1), loaded.onnx.metadata);
      for (const w of await checkEvalData(loaded.fp, dataset, transform, o.limit)) console.error(`pdquant: warning: ${w}`);
      const bar = progressBar(`eval (${o.backend})`);
      const opts = { transform, batchSize: o.batch, limit: o.limit, onProgress: (d: number, t: number) => bar.update(d, t) };
      let acc;
      if (o.qparams) {
        if (o.backend === 'ort') throw new Error('--qparams simulates on our engine; use --backend torch (or export the model with -o and evaluate that file with --backend ort)');
        const { readQParams, QuantizedModel } = await import('../quant/qmodel.js');
        const file = readQParams(o.qparams);
        const qmodel = QuantizedModel.fromQParams(loaded.folded, loaded.units, file);
        acc = await evaluateGraph(loaded.folded, dataset, { ...opts, hooks: qmodel.hooks({ weights: true, acts: true }) });
      } else acc = o.backend === 'ort' ? await evaluateOrt(model, dataset, opts) : await evaluateGraph(loaded.fp, dataset, opts);
      bar.stop();
      console.log(`top-1 ${acc.top1.toFixed(2)} %  top-5 ${acc.top5.toFixed(2)} %  on ${acc.n} images (${o.backend}, ${acc.seconds.toFixed(1)} s)`);
      if (o.json) writeJsonAtomic(o.json, { ...acc, model, data: o.data, backend: o.backend });
    });
}
