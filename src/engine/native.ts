/** Loads the LibTorch addon. The only module that touches the `.node` file. */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';

export type Handle = { readonly __handle: unique symbol };
type Num = number;
type HandleOrNum = Handle | Num;
type Opt<T> = T | null;

/** What the addon exports (see native/src). */
export interface NativeEngine {
  unaryNames: string[];
  binaryNames: string[];
  fromArray(data: ArrayBufferView, shape: number[], device: Opt<string>, isBool?: boolean): Handle;
  toArray(t: Handle): Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Int8Array;
  item(t: Handle): number;
  info(t: Handle): { shape: number[]; dtype: string; device: string; requiresGrad: boolean; layout: 'contiguous' | 'channels-last' | 'strided' };
  shape(t: Handle): number[];
  free(t: Handle): void;
  liveCount(): number;
  zeros(shape: number[], dtype: string, device: Opt<string>): Handle;
  ones(shape: number[], dtype: string, device: Opt<string>): Handle;
  full(shape: number[], dtype: string, device: Opt<string>, value: number): Handle;
  randn(shape: number[], dtype: string, device: Opt<string>): Handle;
  rand(shape: number[], dtype: string, device: Opt<string>): Handle;
  randint(shape: number[], dtype: string, device: Opt<string>, low: number, high: number): Handle;
  bernoulli(p: Handle): Handle;
  arange(start: number, end: number, step: number, dtype: string, device: Opt<string>): Handle;
  setRequiresGrad(t: Handle, on: boolean): void;
  backward(t: Handle, grad: Opt<Handle>, retainGraph: boolean): void;
  grad(t: Handle): Opt<Handle>;
  zeroGrad(t: Handle): void;
  setGradEnabled(on: boolean): boolean;
  adamStep(p: Handle, g: Handle, m: Handle, v: Handle, step: number, lr: HandleOrNum, b1: number, b2: number, eps: number, wd: number): void;
  sgdStep(p: Handle, g: Handle, buf: Opt<Handle>, lr: number, momentum: number, wd: number, first: boolean): void;
  copyInto(dst: Handle, src: Handle): void;
  version(): { torch: string; cuda: boolean; cudaDevices: number; threads: number; blas: string };
  setThreads(n: number): void;
  /** Whether 1×1 convolutions LibTorch would send to its im2col + BLAS kernel run on their pixels instead (default on); returns the previous setting. */
  setPointwiseAsPixels(on: boolean): boolean;
  /** Whether 2-D linear layers of 128×128+ weights (16+ rows, or 2+ on several threads) run as 1×1 convolutions on oneDNN, not on LibTorch's generic BLAS (default on there); returns the previous setting. */
  setLinearAsPointwise(on: boolean): boolean;
  manualSeed(seed: number): void;
  rngState(device: string): Handle;
  setRngState(device: string, state: Handle): void;
  shareTensor(x: Handle): number;
  takeShared(id: number): Handle;
  unary(id: number, x: Handle): Handle;
  binary(id: number, a: HandleOrNum, b: HandleOrNum): Handle;
  reduce(name: string, x: Handle, dims: Opt<number[]>, keepdim: boolean, unbiased: boolean): Handle;
  clamp(x: Handle, lo: Opt<HandleOrNum>, hi: Opt<HandleOrNum>): Handle;
  where(cond: Handle, a: HandleOrNum, b: HandleOrNum): Handle;
  conv2d(x: Handle, w: Handle, b: Opt<Handle>, stride: number[], padding: number[], dilation: number[], groups: number): Handle;
  linear(x: Handle, w: Handle, b: Opt<Handle>): Handle;
  batchNorm(x: Handle, w: Opt<Handle>, b: Opt<Handle>, mean: Opt<Handle>, variance: Opt<Handle>, training: boolean, momentum: number, eps: number): Handle;
  layerNorm(x: Handle, normalizedShape: number[], w: Opt<Handle>, b: Opt<Handle>, eps: number): Handle;
  maxPool2d(x: Handle, kernel: number[], stride: number[], padding: number[], dilation: number[], ceil: boolean): Handle;
  avgPool2d(x: Handle, kernel: number[], stride: number[], padding: number[], ceil: boolean, countIncludePad: boolean): Handle;
  adaptiveAvgPool2d(x: Handle, out: number[]): Handle;
  pad(x: Handle, pads: number[], value: number): Handle;
  slice(x: Handle, dim: number, start: number, end: number, step: number): Handle;
  flip(x: Handle, dims: number[]): Handle;
  indexSelect(x: Handle, dim: number, idx: Handle): Handle;
  split(x: Handle, sizes: number[], dim: number): Handle[];
  cat(xs: Handle[], dim: number): Handle;
  reshape(x: Handle, shape: number[]): Handle;
  permute(x: Handle, dims: number[]): Handle;
  expand(x: Handle, shape: number[]): Handle;
  flatten(x: Handle, start: number, end: number): Handle;
  softmax(x: Handle, dim: number): Handle;
  logSoftmax(x: Handle, dim: number): Handle;
  hardtanh(x: Handle, min: number, max: number): Handle;
  klDivSum(logInput: Handle, target: Handle): Handle;
  mseLoss(a: Handle, b: Handle): Handle;
  rowMomentLoss(x: Handle, mean: Handle, std: Handle, eps: number): Handle;
  rowSqDist(x: Handle, y: Handle): Handle;
  fakeQuantize(x: Handle, delta: Handle, zeroPoint: Handle, qmin: number, qmax: number): Handle;
  dropSelect(a: Handle, b: Handle, p: number): Handle;
  dropFakeQuantize(x: Handle, delta: Handle, zeroPoint: Handle, qmin: number, qmax: number, p: number): Handle;
  crossEntropy(logits: Handle, targets: Handle): Handle;
  argmax(x: Handle, dim: number): Handle;
  topk(x: Handle, k: number, dim: number): Handle;
  to(x: Handle, dtype: Opt<string>, device: Opt<string>): Handle;
}

const here = dirname(fileURLToPath(import.meta.url));

/** The addon's path: native/build/Release under the package root (`from`: src/engine or dist/src/engine below it). */
export function addonPath(from: string = here): string {
  const roots = [resolve(from, '../..'), resolve(from, '../../..')];
  const addon = (root: string) => join(root, 'native/build/Release/pdquant_engine.node');
  // Not built yet: the error names where the build puts it, under the folder with package.json.
  const packageRoot = roots.find((root) => existsSync(join(root, 'package.json'))) ?? roots[0]!;
  return roots.map(addon).find((p) => existsSync(p)) ?? addon(packageRoot);
}

function load(): NativeEngine {
  const path = addonPath();
  // OpenMP threads that spin while idle starve the image decoders (sharp's threads) on small machines:
  // measured 35 s vs 6 s for 3,000 CIFAR images on 2 cores. Must be set before libgomp loads.
  process.env.OMP_WAIT_POLICY ??= 'PASSIVE';
  try {
    return createRequire(import.meta.url)(path) as NativeEngine;
  } catch (e) {
    const reason = e instanceof Error ? e.message.split('\n')[0] : String(e);
    throw new Error(
      `Cannot load the pdquant engine (${path}): ${reason}\n` +
        'Build it with `npm run build` after providing LibTorch in one of three ways:\n' +
        '  1. set LIBTORCH to a LibTorch folder with include/ and lib/;\n' +
        '  2. install PyTorch for python3 (its bundled LibTorch is used, CUDA included);\n' +
        '  3. on Debian/Ubuntu: apt-get install libtorch-dev.',
    );
  }
}

export const native: NativeEngine = load();
