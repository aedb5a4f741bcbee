export { evaluateGraph, evaluateOrt, checkInputShape, checkEvalData, TopK } from './evaluate.js';
export type { Accuracy, EvalOptions } from './evaluate.js';
