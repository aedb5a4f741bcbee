/** Engine-wide settings: threads, random seed, version and CUDA availability. */
import { availableParallelism } from 'node:os';
import { native } from './native.js';
import { call } from './errors.js';
import { setDefaultDevice } from './tensor.js';

/** Seeds every random generator of the engine (CPU and CUDA). */
export function manualSeed(seed: number): void {
  native.manualSeed(seed);
}

/**
 * The state of a device's default random generator (`cpu`, `cuda:0`), as bytes: after setRngState with it, the
 * generator draws again what it drew after this call.
 */
export function rngState(device = 'cpu'): Uint8Array {
  const h = call('rngState', () => native.rngState(device));
  try {
    return native.toArray(h) as Uint8Array;
  } finally {
    native.free(h);
  }
}

export function setRngState(device: string, state: Uint8Array): void {
  const h = call('setRngState', () => native.fromArray(state, [state.length], 'cpu', false));
  try {
    call('setRngState', () => native.setRngState(device, h));
  } finally {
    native.free(h);
  }
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
  /** The BLAS LibTorch was built with (BLAS_INFO of its build configuration: generic, mkl, open, ...). */
  blas: string;
}
/** LibTorch version, CUDA availability, thread count and BLAS. */
export function engineInfo(): EngineInfo {
  return native.version();
}

/**
 * Makes `device` (cpu, cuda or cuda:N) the default for new tensors. A device this LibTorch build cannot use is one
 * clear error here, not an exception from deep inside the first tensor; `where` names the setting in messages.
 */
export function selectDevice(device: string, where = 'device'): void {
  const m = /^(cpu|cuda)(?::(\d+))?$/.exec(device);
  if (!m || (m[1] === 'cpu' && m[2] !== undefined)) throw new Error(`Expected cpu, cuda or cuda:N for ${where} but received ${device}`);
  if (m[1] === 'cuda') {
    const info = engineInfo();
    if (!info.cuda) throw new Error(`${where} ${device}: this LibTorch build has no CUDA (see pdquant doctor); build pdquant against a PyTorch with CUDA (README, Engine) or use cpu`);
    if (m[2] !== undefined && Number(m[2]) >= info.cudaDevices) throw new Error(`${where} ${device}: there ${info.cudaDevices === 1 ? 'is 1 CUDA device' : `are ${info.cudaDevices} CUDA devices`} (cuda:0${info.cudaDevices > 1 ? `..cuda:${info.cudaDevices - 1}` : ''})`);
  }
  setDefaultDevice(device);
}

/** The device a setting asks for, else $PDQUANT_DEVICE, else the CPU: made the default (selectDevice). */
export function selectDeviceOrEnv(device: string | undefined, where: string): void {
  if (device !== undefined) selectDevice(device, where);
  else selectDevice(process.env.PDQUANT_DEVICE ?? 'cpu', 'PDQUANT_DEVICE');
}

/** Native tensors alive now (for leak checks). */
export function liveTensors(): number {
  return native.liveCount();
}

setThreads(threadsFromEnv());
