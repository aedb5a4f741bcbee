/** Top-1/top-5 accuracy of a graph on the engine, or of an ONNX file in onnxruntime-node. */
import * as E from '../engine/index.js';
import { batches, formatSize, type Dataset, type Transform } from '../data/index.js';
import { execute, type Graph, type RunHooks } from '../graph/index.js';
import { inputChw, type ModelIo } from '../graph/load.js';
import { openOrt, runOrt } from './ort.js';

export interface Accuracy {
  top1: number;
  top5: number;
  n: number;
  seconds: number;
}

export interface EvalOptions {
  transform: Transform;
  batchSize: number;
  limit?: number;
  onProgress?: (done: number, total: number) => void;
}

/** Counts hits of a batch of logits against labels. */
export class TopK {
  n = 0;
  hit1 = 0;
  hit5 = 0;
  add(logits: Float32Array, classes: number, labels: Int32Array): void {
    for (let i = 0; i < labels.length; i++) {
      const row = logits.subarray(i * classes, (i + 1) * classes);
      const label = labels[i]!;
      if (label < 0) throw new Error(`sample ${i} of a batch has no label; accuracy needs labelled data`);
      // row[label] past the end would be undefined, which no comparison beats: a silent top-1 hit.
      if (label >= classes) throw new Error(`label ${label} is outside the model's ${classes} outputs`);
      const target = row[label]!;
      let better = 0;
      for (let c = 0; c < classes; c++) if (row[c]! > target || (row[c] === target && c < label)) better++;
      this.n++;
      if (better === 0) this.hit1++;
      if (better < 5) this.hit5++;
    }
  }
  result(seconds: number): Accuracy {
    return { top1: (100 * this.hit1) / this.n, top5: (100 * this.hit5) / this.n, n: this.n, seconds };
  }
}

/** Checks that the data's image shape [C, H, W] matches the model input, naming both. */
export function checkInputShape(expected: (number | null)[], got: readonly number[], what = 'the data gives', preprocessed = false): void {
  const [, h, w] = expected;
  const crop = typeof h === 'number' && typeof w === 'number' ? ` (--crop ${formatSize(h === w ? h : [h, w])} gives ${h}×${w} images)` : '';
  const fix = preprocessed ? 'model-ready tensors (.npy) must have the shape of the model input' : `choose the matching --preset, or set --resize and --crop${crop}`;
  const fits = (order: readonly number[]) => expected.length === 3 && expected.every((d, i) => d === null || d === order[i]);
  if (fits(got)) return;
  // An [N, H, W, C] input that no Transpose right after it turns into NCHW (those pdquant reads: onnx/channels-last.ts).
  const channelsLast = fits([got[1]!, got[2]!, got[0]!])
    ? '; the model takes its images channels-last, which pdquant reads only when the model transposes its input to NCHW first (perm [0, 3, 1, 2]), as tf2onnx writes it when the input feeds the Transpose directly'
    : '';
  throw new Error(`The model expects input [N, ${expected.map((d) => d ?? '?').join(', ')}] but ${what} [N, ${got.join(', ')}]${channelsLast || `; ${fix}`}`);
}

/** The number of classes a graph's output [N, K] gives, if the file states K. */
function outputClasses(graph: ModelIo): number | undefined {
  const dims = graph.output.dims;
  const k = dims?.length === 2 ? dims[1] : undefined;
  return typeof k === 'number' ? k : undefined;
}

/**
 * Checks before any long work that a dataset can measure a graph's accuracy: every sample used has a label, the
 * labels fit the model's outputs, and the first image, transformed, has the model's input shape. Returns warnings
 * for things that are allowed but probably a mistake.
 */
export async function checkEvalData(graph: ModelIo, dataset: Dataset, transform: Transform, limit?: number): Promise<string[]> {
  const idx = indices(dataset, limit);
  const where = `${dataset.root} (${dataset.kind})`;
  if (idx.length === 0) throw new Error(`${where} holds no images to evaluate on`);
  const unlabelled = idx.filter((i) => dataset.sample(i).label < 0);
  if (unlabelled.length > 0) {
    const first = dataset.sample(unlabelled[0]!).path;
    throw new Error(`${where} has no label for ${unlabelled.length} of ${idx.length} images (first: ${first}); accuracy needs labelled images: ` +
      'an ImageFolder <root>/<class>/<image>, a list file of <class>/<image> paths or of "<image> <label>" lines, CIFAR-10 batches, IDX images with their labels file beside them, or .npy with X_labels.npy (or X.labels.npy) beside it');
  }
  const warnings: string[] = [];
  const outputs = outputClasses(graph);
  if (outputs !== undefined) {
    const maxLabel = idx.reduce((m, i) => Math.max(m, dataset.sample(i).label), 0);
    const name = (k: number) => (dataset.classes[k] !== undefined ? ` ('${dataset.classes[k]}')` : '');
    if (maxLabel >= outputs)
      throw new Error(`${where} has label ${maxLabel}${name(maxLabel)} but the model gives ${outputs} outputs; labels index the outputs, so the data must have at most ${outputs} classes`);
    if (dataset.classes.length > 0 && dataset.classes.length !== outputs)
      warnings.push(`${where} has ${dataset.classes.length} classes but the model gives ${outputs} outputs; class k (folders sorted alphabetically) is scored as output k`);
  }
  checkInputShape(inputChw(graph), (await dataset.get(idx[0]!, transform)).shape, undefined, dataset.preprocessed);
  return warnings;
}

function indices(dataset: Dataset, limit?: number): number[] {
  return Array.from({ length: Math.min(dataset.size, limit ?? Infinity) }, (_, i) => i);
}

/** Accuracy of a graph run on the engine (optionally with quantizer hooks). */
export async function evaluateGraph(graph: Graph, dataset: Dataset, o: EvalOptions & { hooks?: RunHooks }): Promise<Accuracy> {
  const start = performance.now();
  const acc = new TopK();
  const idx = indices(dataset, o.limit);
  const expected = inputChw(graph);
  for await (const b of batches(dataset, { batchSize: o.batchSize, transform: o.transform, indices: idx })) {
    checkInputShape(expected, b.shape.slice(1), undefined, dataset.preprocessed);
    const logits = E.tidy(() =>
      E.noGrad(() => {
        const x = E.tensor(b.data, b.shape);
        return execute(graph, { feeds: new Map([[graph.input.name, x]]), outputs: [graph.output.name], hooks: o.hooks }).get(graph.output.name)!;
      }),
    );
    const classes = logits.shape[1]!;
    acc.add(logits.data() as Float32Array, classes, b.labels);
    logits.dispose();
    o.onProgress?.(acc.n, idx.length);
  }
  return acc.result((performance.now() - start) / 1000);
}

/** Accuracy of an ONNX file run by onnxruntime-node (CPU). */
export async function evaluateOrt(modelPath: string, dataset: Dataset, o: EvalOptions): Promise<Accuracy> {
  const start = performance.now();
  const session = await openOrt(modelPath);
  const outputName = session.outputNames[0]!;
  const acc = new TopK();
  const idx = indices(dataset, o.limit);
  try {
    for await (const b of batches(dataset, { batchSize: o.batchSize, transform: o.transform, indices: idx })) {
      const logits = (await runOrt(session, b.data, b.shape, [outputName]))[outputName]!;
      acc.add(logits.data, logits.dims[1]!, b.labels);
      o.onProgress?.(acc.n, idx.length);
    }
  } finally {
    await session.release();
  }
  return acc.result((performance.now() - start) / 1000);
}
