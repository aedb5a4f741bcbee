/**
 * Passing tensors between worker threads. A tensor handle belongs to the thread that made it; `shareTensor` turns a
 * tensor into a number any thread can take once with `takeShared`. Both sides then see the same memory (no copy),
 * and the tensor is detached from autograd. A shared tensor that is never taken stays alive until the process ends.
 */
import { native } from './native.js';
import { Tensor } from './tensor.js';
import { call } from './errors.js';

export function shareTensor(t: Tensor): number {
  return call('shareTensor', () => native.shareTensor(t.handle));
}

export function takeShared(id: number): Tensor {
  return new Tensor(call('takeShared', () => native.takeShared(id)));
}
