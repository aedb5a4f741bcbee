/** Misuse gives a clear error of the right class ("Error in <op>: ..."), never a crash, and leaks nothing. */
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  tensor, zeros, ones, int64, arange, tidy, liveTensors, setThreads, conv2d, linear, batchNorm, crossEntropy, where, pad,
  maxPool2d, avgPool2d, adaptiveAvgPool2d, cat, klDivBatchmean, mseLoss, softmax, Adam,
} from '../src/engine/index.js';
import { assertThrows } from './helpers/engine-check.js';

let live0 = 0;
beforeEach(() => {
  live0 = liveTensors();
});
afterEach(() => {
  assert.equal(liveTensors(), live0, 'a failing op leaked native tensors');
});
const t = (fn: () => void) => () => tidy(fn);

describe('shape mismatches', () => {
  it('add of [2,2] and [3]', t(() => {
    assertThrows(() => zeros([2, 2]).add(zeros([3])), Error,
      /^Error in add: The size of tensor a \(2\) must match the size of tensor b \(3\) at non-singleton dimension 1$/);
    assertThrows(() => zeros([2, 2]).mul(zeros([2, 3])), Error, /^Error in mul: The size of tensor a/);
    assertThrows(() => mseLoss(zeros([2, 3]), zeros([4])), Error, /^Error in mseLoss: The size of tensor a \(3\)/);
  }));

  it('conv2d: channel mismatch, groups, bias, rank, kernel larger than input, dtype', t(() => {
    assertThrows(() => conv2d(zeros([1, 3, 4, 4]), zeros([2, 4, 3, 3])), RangeError,
      /^Error in conv2d: input has 3 channels but weight expects 4 \(4 × groups 1\)$/);
    assertThrows(() => conv2d(zeros([1, 4, 4, 4]), zeros([2, 4, 3, 3]), null, { groups: 2 }), RangeError,
      /^Error in conv2d: input has 4 channels but weight expects 8 \(4 × groups 2\)$/);
    assertThrows(() => conv2d(zeros([1, 4, 4, 4]), zeros([3, 2, 3, 3]), null, { groups: 2 }), Error,
      /^Error in conv2d: Given groups=2, expected weight to be divisible by 2 at dimension 0/);
    assertThrows(() => conv2d(zeros([1, 3, 4, 4]), zeros([2, 3, 3, 3]), zeros([3])), Error,
      /^Error in conv2d: .*expected bias to be 1-dimensional with 2 elements/);
    assertThrows(() => conv2d(zeros([3, 4, 4]), zeros([2, 3, 3, 3])), RangeError, /^Error in conv2d: input must be rank 4, got rank 3 \[3, 4, 4\]$/);
    assertThrows(() => conv2d(zeros([1, 3, 4, 4]), zeros([3, 3, 3])), RangeError, /^Error in conv2d: weight must be rank 4, got rank 3/);
    assertThrows(() => conv2d(zeros([1, 3, 4, 4]), zeros([2, 3, 3, 3]), null, { groups: 0 }), RangeError,
      /^Error in conv2d: groups must be an integer >= 1, got 0$/);
    assertThrows(() => conv2d(zeros([1, 3, 2, 2]), zeros([2, 3, 3, 3])), Error, /^Error in conv2d: .*Kernel size can't be greater than actual input size/);
    assertThrows(() => conv2d(zeros([1, 3, 4, 4]), zeros([2, 3, 3, 3], { dtype: 'float64' })), Error,
      /^Error in conv2d: expected scalar type Float but found Double$/);
  }));

  it('linear: features mismatch and weight rank', t(() => {
    assertThrows(() => linear(zeros([2, 3]), zeros([5, 4])), RangeError, /^Error in linear: input has 3 features but weight expects 4$/);
    assertThrows(() => linear(zeros([2, 3]), zeros([3])), RangeError, /^Error in linear: weight must be rank 2, got rank 1 \[3\]$/);
    assertThrows(() => linear(zeros([2, 3]), zeros([5, 3]), zeros([4])), Error, /^Error in linear: /);
  }));

  it('matmul mismatch and rank', t(() => {
    assertThrows(() => zeros([2, 2]).matmul(zeros([3, 1])), Error, /^Error in matmul: mat1 and mat2 shapes cannot be multiplied \(2x2 and 3x1\)$/);
    assertThrows(() => zeros([]).matmul(zeros([2])), Error, /^Error in matmul: both arguments to matmul need to be at least 1D/);
  }));

  it('batchNorm: channel count, eval without running stats', t(() => {
    const x = zeros([2, 3, 2, 2]);
    assertThrows(() => batchNorm(x, { weight: ones([4]), bias: null, runningMean: zeros([4]), runningVar: ones([4]), eps: 1e-5 }), Error,
      /^Error in batchNorm: running_mean should contain 3 elements not 4$/);
    assertThrows(() => batchNorm(x, { weight: null, bias: null, runningMean: null, runningVar: null, eps: 1e-5 }), Error,
      /^Error in batchNorm: running_mean must be defined in evaluation mode$/);
  }));

  it('cat, klDiv, reshape, expand, permute, assign', t(() => {
    assertThrows(() => cat([]), RangeError, /^Error in cat: needs at least one tensor$/);
    assertThrows(() => cat([zeros([2, 2]), zeros([2, 3])]), Error, /^Error in cat: Sizes of tensors must match except in dimension 0/);
    assertThrows(() => klDivBatchmean(zeros([2, 3]), zeros([2, 4])), RangeError, /^Error in klDiv: shapes differ: \[2,3\] vs \[2,4\]$/);
    assertThrows(() => zeros([2]).reshape([3]), Error, /^Error in reshape: shape '\[3\]' is invalid for input of size 2$/);
    assertThrows(() => zeros([2, 3]).expand([4, 3]), Error, /^Error in expand: The expanded size of the tensor \(4\) must match the existing size \(2\)/);
    assertThrows(() => zeros([2, 3]).permute([0]), Error, /^Error in permute: .*does not match the length of the desired ordering/);
    assertThrows(() => zeros([2]).assign(zeros([3])), Error, /^Error in assign: The size of tensor a \(2\)/);
    assertThrows(() => tensor([1, 2, 3], [2, 2]), RangeError, /^Error in tensor: data has 3 elements but shape needs 4$/);
  }));
});

describe('wrong dtypes', () => {
  it('crossEntropy with float targets, out-of-range class, 1-D logits', t(() => {
    assertThrows(() => crossEntropy(zeros([2, 3]), zeros([2])), TypeError, /^Error in crossEntropy: targets must be int64, got float32$/);
    assertThrows(() => crossEntropy(zeros([2, 3]), int64([0, 5])), Error, /^Error in crossEntropy: Target 5 is out of bounds\.$/);
    assertThrows(() => crossEntropy(zeros([3]), int64([0])), RangeError, /^Error in crossEntropy: logits must be rank 2, got rank 1 \[3\]$/);
  }));

  it('where with a non-bool condition', t(() => {
    assertThrows(() => where(zeros([2]), 1, 0), TypeError, /^Error in where: condition must be bool, got float32$/);
    assertThrows(() => where(arange(0, 2), 1, 0), TypeError, /^Error in where: condition must be bool, got int64$/);
  }));

  it('indexSelect with float or out-of-range indices', t(() => {
    assertThrows(() => zeros([3, 2]).indexSelect(0, tensor([0])), Error, /^Error in indexSelect: .*Expected dtype int32 or int64 for index$/);
    assertThrows(() => zeros([3, 2]).indexSelect(0, int64([5])), Error, /^Error in indexSelect: index out of range in self$/);
  }));

  it('gradients on integers or non-leaves; unknown dtype or device', t(() => {
    assertThrows(() => zeros([2], { dtype: 'int64' }).requiresGrad_(), Error,
      /^Error in requiresGrad: Only Tensors of floating point and complex dtype can require gradients$/);
    const x = zeros([2]).requiresGrad_();
    assertThrows(() => x.mul(2).requiresGrad_(false), Error, /^Error in requiresGrad: you can only change requires_grad flags of leaf variables/);
    assertThrows(() => zeros([2], { dtype: 'float16' as 'float32' }), Error, /^Error in zeros: unknown dtype float16$/);
    assertThrows(() => zeros([1], { device: 'nope' }), Error, /^Error in zeros: Expected one of cpu, cuda/);
  }));
});

describe('disposed tensors', () => {
  it('using a disposed tensor throws "Tensor is disposed"; dispose is idempotent', t(() => {
    const x = tensor([1, 2]);
    const w = zeros([1, 1, 1, 1]);
    x.dispose();
    assert.equal(x.disposed, true);
    x.dispose(); // no-op
    assertThrows(() => x.add(1), Error, /^Error in add: Tensor is disposed$/);
    assertThrows(() => ones([2]).add(x), Error, /^Error in add: Tensor is disposed$/);
    assertThrows(() => x.sum(), Error, /^Error in sum: Tensor is disposed$/);
    assertThrows(() => x.item(), Error, /^Error in item: Tensor is disposed$/);
    assertThrows(() => x.data(), Error, /^Tensor is disposed$/);
    assertThrows(() => x.shape, Error, /Tensor is disposed/); // its shape was never read
    assertThrows(() => conv2d(x, w), Error, /Tensor is disposed/);
    assertThrows(() => cat([ones([2]), x]), Error, /^Error in cat: Tensor is disposed$/);
    // a disposed tensor whose shape was cached still fails at the native call
    const y = zeros([1, 1, 2, 2]);
    assert.deepEqual(y.shape, [1, 1, 2, 2]);
    y.dispose();
    assertThrows(() => conv2d(y, w), Error, /^Error in conv2d: Tensor is disposed$/);
    assertThrows(() => maxPool2d(y, { kernel: 1 }), Error, /^Error in maxPool2d: Tensor is disposed$/);
  }));
});

describe('rank and argument errors', () => {
  it('pooling needs rank 4; pad lengths; slice step; dims out of range; unsqueeze', t(() => {
    assertThrows(() => maxPool2d(zeros([2, 2]), { kernel: 2 }), RangeError, /^Error in maxPool2d: input must be rank 4, got rank 2 \[2, 2\]$/);
    assertThrows(() => avgPool2d(zeros([2, 2]), { kernel: 2 }), RangeError, /^Error in avgPool2d: input must be rank 4/);
    assertThrows(() => adaptiveAvgPool2d(zeros([1, 2, 2]), 1), RangeError, /^Error in adaptiveAvgPool2d: input must be rank 4/);
    assertThrows(() => pad(zeros([2, 2]), [1]), RangeError, /^Error in pad: pads must have an even length of at most 2 × rank \(4\), got 1$/);
    assertThrows(() => pad(zeros([2]), [1, 1, 1, 1]), RangeError, /^Error in pad: pads must have an even length of at most 2 × rank \(2\), got 4$/);
    assertThrows(() => arange(0, 5).slice(0, 0, 5, 0), RangeError, /^Error in slice: step must be an integer >= 1, got 0$/);
    assertThrows(() => zeros([2, 3]).sum([2]), Error, /^Error in sum: Dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)$/);
    assertThrows(() => zeros([2]).amax([1]), Error, /^Error in amax: Dimension out of range/);
    assertThrows(() => softmax(zeros([2, 3]), 2), Error, /^Error in softmax: Dimension out of range/);
    assertThrows(() => zeros([2]).flatten(3), Error, /^Error in flatten: Dimension out of range/);
    assertThrows(() => zeros([2]).unsqueeze(5), RangeError, /^Error in unsqueeze: dim must be an integer in \[-2, 1\] for rank 1, got 5$/);
    assertThrows(() => zeros([2]).unsqueeze(-3), RangeError, /^Error in unsqueeze: dim must be an integer in \[-2, 1\]/);
    assertThrows(() => zeros([2, -1]), RangeError, /^Error in zeros: every dimension of the shape must be an integer >= 0, got -1$/);
    assertThrows(() => ones([2.5]), RangeError, /^Error in ones: every dimension of the shape must be an integer >= 0, got 2\.5$/);
  }));

  it('item of a multi-element tensor; backward of a non-scalar', t(() => {
    assertThrows(() => zeros([2]).item(), RangeError, /^Error in item: item\(\) needs a tensor with one element, got 2$/);
    const x = zeros([3]).requiresGrad_();
    assertThrows(() => x.mul(2).backward(), Error, /^Error in backward: backward\(\) without a gradient needs a scalar, got 3 elements$/);
    assertThrows(() => zeros([3]).sum().backward(), Error, /^Error in backward: element 0 of tensors does not require grad/);
  }));

  it('settings, tidy and optimisers', () => {
    assertThrows(() => setThreads(0), RangeError, /^Expected a positive integer for threads but received 0$/);
    assertThrows(() => tidy((async () => 1) as () => unknown), Error, /^tidy\(\) takes a synchronous function/);
    tidy(() => {
      const p = zeros([2, 3]).requiresGrad_();
      p.sum().backward();
      const opt = new Adam([{ params: [p], lr: zeros([4]) }]);
      assertThrows(() => opt.step(), Error, /^Error in Adam\.step: The size of tensor a \(4\) must match/);
      opt.dispose();
    });
  });

  it('the process survives many errors in a row (no crash, no leak)', t(() => {
    // LibTorch errors cost ~5-10 ms each (c10::Error records a symbolised backtrace), so fewer of those
    for (let i = 0; i < 100; i++) assert.throws(() => zeros([2, 2]).add(zeros([3])));
    for (let i = 0; i < 2000; i++) assert.throws(() => conv2d(zeros([1, 3, 4, 4]), zeros([2, 4, 3, 3])));
  }));
});

describe('where the addon is looked for', () => {
  it('built: found from src/engine and from dist/src/engine; not built: named under the folder with package.json', async () => {
    const { mkdirSync, writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { addonPath } = await import('../src/engine/native.js');
    const { tempDir } = await import('./helpers/temp-dir.js');
    const root = tempDir('pdq-addon-');
    writeFileSync(join(root, 'package.json'), '{}');
    const [src, dist] = [join(root, 'src', 'engine'), join(root, 'dist', 'src', 'engine')];
    for (const d of [src, dist]) mkdirSync(d, { recursive: true });
    const addon = join(root, 'native', 'build', 'Release', 'pdquant_engine.node');
    assert.equal(addonPath(src), addon);
    assert.equal(addonPath(dist), addon); // not dist/native/...: the package root holds the build
    mkdirSync(join(root, 'native', 'build', 'Release'), { recursive: true });
    writeFileSync(addon, '');
    assert.equal(addonPath(src), addon);
    assert.equal(addonPath(dist), addon);
  });
});
