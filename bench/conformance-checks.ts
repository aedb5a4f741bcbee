/** The conformance table: each entry one accuracy on the shared resnet20 / CIFAR-10 with its tolerance. */
import { shared } from './shared.js';
import { loadModel } from '../src/graph/load.js';
import { evaluateGraph, evaluateOrt } from '../src/eval/index.js';
import { openDataset, makeTransform } from '../src/data/index.js';

export interface Check {
  name: string;
  expected: number;
  tolerance: number;
  run(): Promise<{ value: number; note?: string }>;
}

const transform = makeTransform('cifar');
const opts = { transform, batchSize: 200 };

export const checks: Check[] = [
  {
    name: 'resnet20 FP top-1 (engine)',
    expected: 81.03,
    tolerance: 0.001,
    async run() {
      const m = loadModel(shared.resnet20);
      return { value: (await evaluateGraph(m.fp, await openDataset(shared.cifarTest), opts)).top1 };
    },
  },
  {
    name: 'resnet20 FP top-1 (onnxruntime)',
    expected: 81.03,
    tolerance: 0.001,
    async run() {
      return { value: (await evaluateOrt(shared.resnet20, await openDataset(shared.cifarTest), opts)).top1 };
    },
  },
];
