/** The Tensor type: an owned handle to a LibTorch tensor, with elementwise, reduction and shape methods. */
import { native, type Handle } from './native.js';
import { track, untrack, type Disposable } from './scope.js';
import { call, checkInt } from './errors.js';

export type DType = 'float32' | 'float64' | 'int32' | 'int64' | 'uint8' | 'int8' | 'bool';
export type TypedArray = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Int8Array;
export type Scalar = number;
export type TensorLike = Tensor | Scalar;

const unaryId = new Map(native.unaryNames.map((n, i) => [n, i]));
const binaryId = new Map(native.binaryNames.map((n, i) => [n, i]));

let defaultDevice = process.env.PDQUANT_DEVICE ?? 'cpu';
/** Device for newly created tensors: 'cpu' or 'cuda' / 'cuda:N'. */
export function setDefaultDevice(device: string): void {
  defaultDevice = device;
}
export function getDefaultDevice(): string {
  return defaultDevice;
}

function h(x: TensorLike): Handle | number {
  return typeof x === 'number' ? x : x.handle;
}

export class Tensor implements Disposable {
  #handle: Handle | null;
  #shape: number[] | undefined;
  #dtype: DType | undefined;

  /** Wraps a native handle; new tensors join the innermost tidy() scope. */
  constructor(handle: Handle) {
    this.#handle = handle;
    track(this);
  }

  get handle(): Handle {
    if (this.#handle === null) throw new Error('Tensor is disposed');
    return this.#handle;
  }
  get disposed(): boolean {
    return this.#handle === null;
  }
  /** Frees the native memory now (idempotent). */
  dispose(): void {
    if (this.#handle !== null) {
      native.free(this.#handle);
      this.#handle = null;
      untrack(this);
    }
  }

  get shape(): number[] {
    return (this.#shape ??= native.shape(this.handle));
  }
  get rank(): number {
    return this.shape.length;
  }
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  get dtype(): DType {
    return (this.#dtype ??= native.info(this.handle).dtype as DType);
  }
  get device(): string {
    return native.info(this.handle).device;
  }
  /** How the elements lie in memory: 'contiguous' (row-major), 'channels-last' (NHWC order of an NCHW tensor) or 'strided'. */
  get layout(): 'contiguous' | 'channels-last' | 'strided' {
    return native.info(this.handle).layout;
  }

  /** A copy of the values (on the CPU): Float32Array for float32, BigInt64Array for int64, Uint8Array for bool. */
  data(): TypedArray {
    return native.toArray(this.handle);
  }
  /** The values as plain numbers (int64 converted). */
  toArray(): number[] {
    return Array.from(this.data() as ArrayLike<number | bigint>, Number);
  }
  item(): number {
    return call('item', () => native.item(this.handle));
  }

  // ---- autograd ----
  get requiresGrad(): boolean {
    return native.info(this.handle).requiresGrad;
  }
  /** Marks this (leaf) tensor as a parameter whose gradient backward() accumulates. */
  requiresGrad_(on = true): this {
    call('requiresGrad', () => native.setRequiresGrad(this.handle, on));
    return this;
  }
  /** The accumulated gradient, or null. A new handle each call (dispose it or use tidy). */
  get grad(): Tensor | null {
    const g = native.grad(this.handle);
    return g === null ? null : new Tensor(g);
  }
  zeroGrad(): void {
    native.zeroGrad(this.handle);
  }
  backward(gradient?: Tensor, retainGraph = false): void {
    call('backward', () => native.backward(this.handle, gradient?.handle ?? null, retainGraph));
  }
  /** Overwrites the values in place, outside autograd (shapes must broadcast). */
  assign(src: Tensor): this {
    call('assign', () => native.copyInto(this.handle, src.handle));
    return this;
  }

  // ---- elementwise ----
  #un(op: string): Tensor {
    return new Tensor(call(op, () => native.unary(unaryId.get(op)!, this.handle)));
  }
  #bin(op: string, other: TensorLike): Tensor {
    return new Tensor(call(op, () => native.binary(binaryId.get(op)!, this.handle, h(other))));
  }
  add(o: TensorLike): Tensor { return this.#bin('add', o); }
  sub(o: TensorLike): Tensor { return this.#bin('sub', o); }
  mul(o: TensorLike): Tensor { return this.#bin('mul', o); }
  div(o: TensorLike): Tensor { return this.#bin('div', o); }
  pow(o: TensorLike): Tensor { return this.#bin('pow', o); }
  maximum(o: TensorLike): Tensor { return this.#bin('maximum', o); }
  minimum(o: TensorLike): Tensor { return this.#bin('minimum', o); }
  lt(o: TensorLike): Tensor { return this.#bin('lt', o); }
  le(o: TensorLike): Tensor { return this.#bin('le', o); }
  gt(o: TensorLike): Tensor { return this.#bin('gt', o); }
  ge(o: TensorLike): Tensor { return this.#bin('ge', o); }
  eq(o: TensorLike): Tensor { return this.#bin('eq', o); }
  ne(o: TensorLike): Tensor { return this.#bin('ne', o); }
  logicalAnd(o: Tensor): Tensor { return this.#bin('logicalAnd', o); }
  matmul(o: Tensor): Tensor { return this.#bin('matmul', o); }
  neg(): Tensor { return this.#un('neg'); }
  abs(): Tensor { return this.#un('abs'); }
  exp(): Tensor { return this.#un('exp'); }
  log(): Tensor { return this.#un('log'); }
  sqrt(): Tensor { return this.#un('sqrt'); }
  floor(): Tensor { return this.#un('floor'); }
  ceil(): Tensor { return this.#un('ceil'); }
  /** Round half to even (as torch.round and ONNX QuantizeLinear). */
  round(): Tensor { return this.#un('round'); }
  /** Straight-through round: forward round(x), gradient 1. */
  roundSte(): Tensor { return this.#un('roundSte'); }
  sign(): Tensor { return this.#un('sign'); }
  relu(): Tensor { return this.#un('relu'); }
  sigmoid(): Tensor { return this.#un('sigmoid'); }
  tanh(): Tensor { return this.#un('tanh'); }
  /** The Gauss error function (GELU is x·(1 + erf(x/√2))/2). */
  erf(): Tensor { return this.#un('erf'); }
  logicalNot(): Tensor { return this.#un('logicalNot'); }
  clone(): Tensor { return this.#un('clone'); }
  /** The same values, cut from the autograd graph. */
  detach(): Tensor { return this.#un('detach'); }
  contiguous(): Tensor { return this.#un('contiguous'); }
  /** The same values in NHWC memory order (rank 4), which oneDNN's convolutions run faster on for few channels. */
  channelsLast(): Tensor { return this.#un('channelsLast'); }
  /** Clamp with scalar or tensor bounds (null = unbounded). Gradient 0 where clamped. */
  clamp(lo: TensorLike | null, hi: TensorLike | null): Tensor {
    return new Tensor(call('clamp', () => native.clamp(this.handle, lo === null ? null : h(lo), hi === null ? null : h(hi))));
  }

  // ---- reductions (dims omitted = all) ----
  #reduce(op: string, dims: number[] | undefined, keepdim: boolean, unbiased = false): Tensor {
    return new Tensor(call(op, () => native.reduce(op, this.handle, dims ?? null, keepdim, unbiased)));
  }
  sum(dims?: number[], keepdim = false): Tensor { return this.#reduce('sum', dims, keepdim); }
  mean(dims?: number[], keepdim = false): Tensor { return this.#reduce('mean', dims, keepdim); }
  /** Variance; unbiased divides by n − 1. */
  var(dims?: number[], unbiased = true, keepdim = false): Tensor { return this.#reduce('var', dims, keepdim, unbiased); }
  amin(dims?: number[], keepdim = false): Tensor { return this.#reduce('amin', dims, keepdim); }
  amax(dims?: number[], keepdim = false): Tensor { return this.#reduce('amax', dims, keepdim); }
  argmax(dim: number): Tensor { return new Tensor(call('argmax', () => native.argmax(this.handle, dim))); }
  /** Indices of the k largest values along dim. */
  topk(k: number, dim = -1): Tensor { return new Tensor(call('topk', () => native.topk(this.handle, k, dim))); }

  // ---- shape ----
  reshape(shape: number[]): Tensor { return new Tensor(call('reshape', () => native.reshape(this.handle, shape))); }
  permute(dims: number[]): Tensor { return new Tensor(call('permute', () => native.permute(this.handle, dims))); }
  expand(shape: number[]): Tensor { return new Tensor(call('expand', () => native.expand(this.handle, shape))); }
  flatten(start = 0, end = -1): Tensor { return new Tensor(call('flatten', () => native.flatten(this.handle, start, end))); }
  unsqueeze(dim: number): Tensor {
    const s = [...this.shape];
    if (!Number.isInteger(dim) || dim < -s.length - 1 || dim > s.length)
      throw new RangeError(`Error in unsqueeze: dim must be an integer in [${-s.length - 1}, ${s.length}] for rank ${s.length}, got ${dim}`);
    s.splice(dim < 0 ? s.length + 1 + dim : dim, 0, 1);
    return this.reshape(s);
  }
  /** Strided slice along one dim (step ≥ 1; end is clamped like Python slicing). */
  slice(dim: number, start: number, end: number, step = 1): Tensor {
    checkInt('slice', 'step', step, 1);
    return new Tensor(call('slice', () => native.slice(this.handle, dim, start, end, step)));
  }
  /** Consecutive pieces along dim with the given sizes (views; one backward step for all of them, unlike slices). */
  split(sizes: number[], dim = 0): Tensor[] {
    const d = dim < 0 ? dim + this.rank : dim;
    const total = sizes.reduce((a, b) => a + b, 0);
    if (total !== this.shape[d]) throw new RangeError(`Error in split: sizes [${sizes}] add up to ${total} but dim ${dim} has ${this.shape[d]}`);
    return call('split', () => native.split(this.handle, sizes, dim)).map((h) => new Tensor(h));
  }
  flip(dims: number[]): Tensor { return new Tensor(call('flip', () => native.flip(this.handle, dims))); }
  /** Rows (or slices along dim) picked by an int64 index tensor. */
  indexSelect(dim: number, indices: Tensor): Tensor {
    return new Tensor(call('indexSelect', () => native.indexSelect(this.handle, dim, indices.handle)));
  }
  /** Converts dtype and/or device. */
  to(opts: { dtype?: DType; device?: string }): Tensor {
    return new Tensor(call('to', () => native.to(this.handle, opts.dtype ?? null, opts.device ?? null)));
  }

  toString(): string {
    return `Tensor(${this.dtype}, [${this.shape.join(', ')}])`;
  }
}

function shapeOf(op: string, shape: number[]): number[] {
  for (const d of shape) checkInt(op, 'every dimension of the shape', d, 0);
  return shape;
}

/** A typed array of the given dtype holding plain numbers (float32 by default). */
function fromNumbers(data: number[], dtype: DType | undefined): TypedArray {
  switch (dtype) {
    case 'float64': return Float64Array.from(data);
    case 'int32': return Int32Array.from(data);
    case 'int64': return BigInt64Array.from(data, (v) => BigInt(Math.trunc(v)));
    case 'uint8': return Uint8Array.from(data);
    case 'bool': return Uint8Array.from(data, (v) => (v ? 1 : 0));
    case 'int8': return Int8Array.from(data);
    default: return Float32Array.from(data);
  }
}

/**
 * A tensor copied from a typed array (its type gives the dtype; Uint8Array with dtype 'bool' gives bool) or
 * from plain numbers (float32 unless opts.dtype says otherwise). A dtype that differs from the typed array's
 * converts the values.
 */
export function tensor(data: TypedArray | number[], shape?: number[], opts: { dtype?: DType; device?: string } = {}): Tensor {
  let arr = Array.isArray(data) ? fromNumbers(data, opts.dtype) : data;
  // bool storage must hold 0/1 bytes only: other bytes were copied as is and read back as 2, 255, ... by data()
  if (opts.dtype === 'bool' && arr instanceof Uint8Array && arr.some((v) => v > 1)) arr = arr.map((v) => (v ? 1 : 0));
  const s = shapeOf('tensor', shape ?? [arr.length]);
  const t = new Tensor(call('tensor', () => native.fromArray(arr, s, opts.device ?? defaultDevice, opts.dtype === 'bool')));
  if (opts.dtype === undefined || t.dtype === opts.dtype) return t;
  const converted = t.to({ dtype: opts.dtype });
  t.dispose();
  return converted;
}
/** A 1-D int64 tensor (indices). */
export function int64(values: ArrayLike<number> | number[], shape?: number[]): Tensor {
  return tensor(BigInt64Array.from(Array.from(values, (v) => BigInt(v))), shape);
}
export function scalar(value: number): Tensor {
  return tensor(new Float32Array([value]), []);
}
type Opts = { dtype?: DType; device?: string };
export function zeros(shape: number[], o: Opts = {}): Tensor {
  return new Tensor(call('zeros', () => native.zeros(shapeOf('zeros', shape), o.dtype ?? 'float32', o.device ?? defaultDevice)));
}
export function ones(shape: number[], o: Opts = {}): Tensor {
  return new Tensor(call('ones', () => native.ones(shapeOf('ones', shape), o.dtype ?? 'float32', o.device ?? defaultDevice)));
}
export function full(shape: number[], value: number, o: Opts = {}): Tensor {
  return new Tensor(call('full', () => native.full(shapeOf('full', shape), o.dtype ?? 'float32', o.device ?? defaultDevice, value)));
}
/** Standard normal samples (seeded by manualSeed). */
export function randn(shape: number[], o: Opts = {}): Tensor {
  return new Tensor(call('randn', () => native.randn(shapeOf('randn', shape), o.dtype ?? 'float32', o.device ?? defaultDevice)));
}
/** Uniform samples in [0, 1) (seeded by manualSeed). */
export function rand(shape: number[], o: Opts = {}): Tensor {
  return new Tensor(call('rand', () => native.rand(shapeOf('rand', shape), o.dtype ?? 'float32', o.device ?? defaultDevice)));
}
/** Integers uniform in [low, high) as int64 (seeded by manualSeed). */
export function randint(low: number, high: number, shape: number[], o: Opts = {}): Tensor {
  return new Tensor(call('randint', () => native.randint(shapeOf('randint', shape), o.dtype ?? 'int64', o.device ?? defaultDevice, low, high)));
}
/** 0/1 samples with the given probabilities (same dtype as p). */
export function bernoulli(p: Tensor): Tensor {
  return new Tensor(call('bernoulli', () => native.bernoulli(p.handle)));
}
export function arange(start: number, end: number, step = 1, o: Opts = {}): Tensor {
  return new Tensor(call('arange', () => native.arange(start, end, step, o.dtype ?? 'int64', o.device ?? defaultDevice)));
}
