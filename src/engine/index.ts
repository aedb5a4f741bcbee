/** pdquant's compute engine: LibTorch tensors, ops, autograd and optimisers. */
export { Tensor, tensor, int64, scalar, zeros, ones, full, randn, rand, randint, bernoulli, arange, setDefaultDevice, getDefaultDevice } from './tensor.js';
export type { DType, TypedArray, TensorLike } from './tensor.js';
export * from './functional.js';
export { noGrad } from './autograd.js';
export { tidy, keep, dispose } from './scope.js';
export { Adam, SGD } from './optim.js';
export type { ParamGroup, AdamOptions, AdamSnapshot } from './optim.js';
export { manualSeed, rngState, setRngState, setThreads, engineInfo, liveTensors, selectDevice, selectDeviceOrEnv } from './settings.js';
export { shareTensor, takeShared } from './share.js';
export { checkProbability } from './errors.js';
