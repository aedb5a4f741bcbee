/** Quantizers and their initialisation (engine only: no ONNX, no graphs). */
export { UniformQuantizer, checkBits } from './uniform.js';
export type { UniformQuantizerOptions, UniformQuantizerState, InitMethod, SearchStrategy } from './uniform.js';
export { calcQParams, searchRange, INIT_METHODS, SEARCH_STEPS, SCORE_P, EXHAUSTIVE_LIMIT } from './search.js';
export { AdaRoundQuantizer, roundingRegularizer, GAMMA, ZETA } from './adaround.js';
export type { AdaRoundState } from './adaround.js';
export { QDropQuantizer, dropMix, ACT_MODES } from './qdrop.js';
export type { ActMode } from './qdrop.js';
