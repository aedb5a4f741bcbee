export { evaluateGraph, evaluateOrt, checkInputShape, TopK } from './evaluate.js';
export type { Accuracy, EvalOptions } from './evaluate.js';
