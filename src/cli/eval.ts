/** `pdquant eval`: top-1/top-5 of a model on labelled images, on the engine or in onnxruntime-node. */
import type { Command } from 'commander';
import { intIn, existingPath, outputFile, addPreprocessOptions, transformFor, openData, useDevice, type PreprocessOptions } from './options.js';
import { progressBar } from './progress.js';
import { writeJsonAtomic } from '../util/atomic.js';

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
    .option('--json <file>', 'write {"top1", "top5", "n", "seconds"} to this file', outputFile('--json'))
    .option('--qparams <file>', 'simulate the quantized model saved by `pdquant quantize --save-qparams` (torch backend)', existingPath('Quantization parameters'))
    .action(async (model: string, o: PreprocessOptions & { data: string; split?: string; backend: string; batch: number; limit?: number; json?: string; qparams?: string; device?: string }) => {
      await useDevice(o.device);
      if (o.backend !== 'torch' && o.backend !== 'ort') throw new Error(`Expected torch or ort for --backend but received ${o.backend}`);
      const { loadModel, inputChw, modelIo } = await import('../graph/load.js');
      const { freeImageDims, imageChannels } = await import('../onnx/image-input.js');
      const { checkEvalData, evaluateGraph, evaluateOrt } = await import('../eval/index.js');
      if (o.qparams && o.backend === 'ort') throw new Error('--qparams simulates on our engine; use --backend torch (or export the model with -o and evaluate that file with --backend ort)');
      // onnxruntime runs what our engine does not compile, such as the QDQ files pdquant exports: those are only read.
      // pdquant's side sees the image NCHW; onnxruntime gets it in the file's own layout (runOrt).
      const onnx = (await import('../onnx/channels-last.js')).withoutChannelsLast((await import('../onnx/read.js')).readOnnx(model));
      if (o.backend === 'torch' && (await import('../onnx/qdq-summary.js')).isQdq(onnx))
        throw new Error(`${model} is a quantized (QDQ) model: evaluate it with --backend ort, or the float model with --qparams on our engine`);
      const dataset = await openData(o.data, o.split, imageChannels(onnx));
      const transform = transformFor(o, inputChw(modelIo(onnx)).slice(1), onnx.metadata);
      // A model that leaves its image size free runs on our engine at the size of the data.
      const imageShape = o.backend === 'torch' && freeImageDims(onnx).length > 0
        ? { chw: await (await import('../data/index.js')).firstSampleShape(dataset, transform), source: `the images of ${o.data}` } : undefined;
      const loaded = o.backend === 'torch' ? loadModel(onnx, { imageShape }) : undefined;
      const io = loaded?.fp ?? modelIo(onnx);
      for (const w of await checkEvalData(io, dataset, transform, o.limit)) console.error(`pdquant: warning: ${w}`);
      const bar = progressBar(`eval (${o.backend})`);
      const opts = { transform, batchSize: o.batch, limit: o.limit, onProgress: (d: number, t: number) => bar.update(d, t) };
      let acc;
      if (!loaded) acc = await evaluateOrt(model, dataset, opts);
      else if (o.qparams) {
        const { readQParams, QuantizedModel } = await import('../quant/qmodel.js');
        const qmodel = QuantizedModel.fromQParams(loaded.folded, loaded.units, readQParams(o.qparams));
        acc = await evaluateGraph(loaded.folded, dataset, { ...opts, hooks: qmodel.hooks({ weights: true, acts: true }) });
      } else acc = await evaluateGraph(loaded.fp, dataset, opts);
      bar.stop();
      console.log(`top-1 ${acc.top1.toFixed(2)} %  top-5 ${acc.top5.toFixed(2)} %  on ${acc.n} images (${o.backend}, ${acc.seconds.toFixed(1)} s)`);
      if (o.json) writeJsonAtomic(o.json, { ...acc, model, data: o.data, backend: o.backend });
    });
}
