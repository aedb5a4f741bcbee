/** The in-memory model: graph, executor, BN folding and the unit partition. */
export { Graph } from './graph.js';
export { execute, isWeightLayer } from './executor.js';
export type { RunHooks, RunOptions } from './executor.js';
export { foldBatchNorm } from './fold-bn.js';
export type { BnStats, FoldedModel } from './fold-bn.js';
export { partition, partitionLayers, modulePath, namePattern } from './partition.js';
export type { Unit, UnitOverride } from './partition.js';
export { registeredOps } from './kernel.js';
export { activationAfter } from './activation.js';
export { nodesBetween, tailFrom, type Tail } from './subgraph.js';
