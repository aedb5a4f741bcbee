/** Engine-wide settings: threads, random seed, version and CUDA availability. */
import { availableParallelism } from 'node:os';
import { native } from './native.js';

/** Seeds every random generator of the engine (CPU and CUDA). */
export function manualSeed(seed: number): void {
  native.manualSeed(seed);
}

/** Intra-op threads used by the kernels. */
export function setThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`Expected a positive integer for threads but received ${n}`);
  native.setThreads(n);
}

export function threadsFromEnv(): number {
  const env = process.env.PDQUANT_THREADS;
  if (env === undefined || env === '') return availableParallelism();
  const n = Number(env);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`Expected a positive integer for PDQUANT_THREADS but received "${env}"`);
  return n;
}

export interface EngineInfo {
  torch: string;
  cuda: boolean;
  cudaDevices: number;
  threads: number;
}
/** LibTorch version, CUDA availability and thread count. */
export function engineInfo(): EngineInfo {
  return native.version();
}

/** Native tensors alive now (for leak checks). */
export function liveTensors(): number {
  return native.liveCount();
}

setThreads(threadsFromEnv());
