/** Deterministic memory release: tidy/keep/dispose semantics, a 100k-iteration loop with flat RSS, GC fallback. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Tensor, tensor, zeros, tidy, keep, dispose, liveTensors, Adam } from '../src/engine/index.js';

describe('tidy', () => {
  it('frees every temporary', () => {
    const a = tensor([1, 2, 3]);
    const live = liveTensors();
    const r = tidy(() => {
      const b = a.add(1);
      b.mul(2).sub(a);
      a.exp();
      return 5;
    });
    assert.equal(r, 5);
    assert.equal(liveTensors(), live);
    assert.equal(a.disposed, false, 'a tensor from outside the scope is left alone');
    a.dispose();
  });

  it('keeps the returned tensor, and tensors in returned arrays and plain objects', () => {
    const live = liveTensors();
    const one = tidy(() => tensor([1, 2]).add(1));
    assert.deepEqual(one.toArray(), [2, 3]);
    assert.equal(liveTensors(), live + 1);
    const arr = tidy(() => {
      const x = tensor([1]);
      x.mul(5);
      return [x.add(1), x.add(2)];
    });
    assert.deepEqual(arr.map((t) => t.item()), [2, 3]);
    assert.equal(liveTensors(), live + 3);
    const obj = tidy(() => {
      const x = tensor([1]);
      return { a: x.mul(10), nested: { list: [x.mul(20)] }, n: 4, s: 'text' };
    });
    assert.equal(obj.a.item(), 10);
    assert.equal(obj.nested.list[0]!.item(), 20);
    assert.equal(obj.n, 4);
    assert.equal(liveTensors(), live + 5);
    dispose(one);
    dispose(arr);
    dispose(obj);
    assert.equal(liveTensors(), live);
    assert.ok(obj.a.disposed && obj.nested.list[0]!.disposed && arr[1]!.disposed);
  });

  it('nested: the inner result moves to the outer scope and is freed there unless returned', () => {
    const live = liveTensors();
    let inner: Tensor | undefined;
    tidy(() => {
      inner = tidy(() => zeros([3]).add(1));
      assert.equal(inner.disposed, false);
      assert.equal(liveTensors(), live + 1);
    });
    assert.equal(inner!.disposed, true, 'freed when the outer scope ended');
    assert.equal(liveTensors(), live);

    const kept = tidy(() => {
      const x = tidy(() => zeros([2]).add(3));
      const tmp = tidy(() => x.mul(2));
      assert.deepEqual(tmp.toArray(), [6, 6]);
      return x;
    });
    assert.deepEqual(kept.toArray(), [3, 3]);
    assert.equal(liveTensors(), live + 1);
    kept.dispose();
    assert.equal(liveTensors(), live);
  });

  it('keep() lets a tensor outlive every enclosing scope', () => {
    const live = liveTensors();
    let k: Tensor | undefined;
    tidy(() =>
      tidy(() => {
        k = keep(tensor([4]).mul(2));
      }),
    );
    assert.equal(k!.item(), 8);
    assert.equal(liveTensors(), live + 1);
    k!.dispose();
    assert.equal(liveTensors(), live);
  });

  it('frees the temporaries when fn throws, and the error propagates', () => {
    const live = liveTensors();
    let tmp: Tensor | undefined;
    assert.throws(
      () =>
        tidy(() => {
          tmp = tensor([1, 2]).add(1);
          throw new Error('boom');
        }),
      /^Error: boom$/,
    );
    assert.equal(tmp!.disposed, true);
    assert.equal(liveTensors(), live);
    // an engine error in a nested scope, caught in the outer one
    const r = tidy(() => {
      const x = tensor([1, 2]);
      try {
        tidy(() => x.add(1).add(tensor([1, 2, 3])));
      } catch (e) {
        assert.match((e as Error).message, /^Error in add:/);
      }
      return x.add(10);
    });
    assert.deepEqual(r.toArray(), [11, 12]);
    r.dispose();
    assert.equal(liveTensors(), live);
  });

  it('disposing by hand inside tidy is fine (no double free), gradients read inside tidy are freed', () => {
    const live = liveTensors();
    const p = keep(tensor([1, 2]).requiresGrad_());
    tidy(() => {
      const t = p.mul(3);
      t.dispose();
      t.dispose();
      p.mul(p).sum().backward();
      assert.deepEqual(p.grad!.toArray(), [2, 4]);
      assert.deepEqual(p.grad!.toArray(), [2, 4]);
    });
    assert.equal(liveTensors(), live + 1);
    p.dispose();
    assert.equal(liveTensors(), live);
  });

  it('optimiser state survives the tidy() it was created in', () => {
    const live = liveTensors();
    const p = keep(tensor([1, 2]).requiresGrad_());
    const opt = new Adam([{ params: [p], lr: 0.1 }]);
    for (let i = 0; i < 3; i++)
      tidy(() => {
        opt.zeroGrad();
        p.mul(p).sum().backward();
        opt.step();
      });
    assert.ok(p.toArray().every((v, i) => Math.abs(v - ([1, 2][i]! - 0.3)) < 5e-3), `three Adam steps of ≈ −0.1: ${p.toArray()}`);
    opt.dispose();
    p.dispose();
    assert.equal(liveTensors(), live);
  });
});

const MB = 1e6;

/**
 * 100k iterations of small ops (an inner tidy returning a tensor that is disposed by hand), all inside one outer
 * tidy. `leak` keeps one extra 256-float tensor per iteration: the negative control for the RSS bound.
 */
function loop(iterations: number, leak: Tensor[] | null): { rssGrowth: number; liveDrift: number; ms: number } {
  const a = tensor([1, 2, 3, 4]);
  const b = tensor([0.5, -1, 2, 0]);
  const live0 = liveTensors();
  let rssAt10k = 0;
  const t0 = performance.now();
  let liveDrift = 0;
  tidy(() => {
    for (let i = 0; i < iterations; i++) {
      const r = tidy(() => a.add(b).mul(2).sub(a).relu().clamp(0, 3).sum());
      r.dispose();
      if (leak) leak.push(keep(zeros([256])));
      if (i === 10_000) rssAt10k = process.memoryUsage().rss;
      if (i % 10_000 === 0 && !leak) liveDrift = Math.max(liveDrift, Math.abs(liveTensors() - live0));
    }
  });
  const rssGrowth = process.memoryUsage().rss - rssAt10k;
  liveDrift = Math.max(liveDrift, Math.abs(liveTensors() - live0 - (leak?.length ?? 0)));
  dispose([a, b]);
  return { rssGrowth, liveDrift, ms: performance.now() - t0 };
}

describe('memory stays flat', () => {
  // A growth bound that a real leak cannot pass: one leaked 1 KB tensor per iteration is ≈ 90–140 MB over
  // iterations 10k..100k (checked below as a control); the leak-free loop grows by well under 5 MB.
  const BOUND = 24 * MB;

  it('100,000 iterations of small ops: liveTensors returns to its start, RSS growth < 24 MB from 10k to 100k', (t) => {
    const live = liveTensors();
    const r = loop(100_000, null);
    t.diagnostic(`RSS growth 10k→100k: ${(r.rssGrowth / MB).toFixed(1)} MB; ${r.ms.toFixed(0)} ms`);
    assert.equal(liveTensors(), live);
    assert.equal(r.liveDrift, 0, 'no tensor accumulates during the loop');
    assert.ok(r.rssGrowth < BOUND, `RSS grew by ${(r.rssGrowth / MB).toFixed(1)} MB between iterations 10k and 100k`);
    assert.ok(r.ms < 20_000, `the loop took ${r.ms.toFixed(0)} ms`);
  });

  it('control: the same loop leaking one 1 KB tensor per iteration exceeds the bound', (t) => {
    const leaked: Tensor[] = [];
    const live = liveTensors();
    const r = loop(100_000, leaked);
    t.diagnostic(`RSS growth 10k→100k with the leak: ${(r.rssGrowth / MB).toFixed(1)} MB`);
    assert.equal(liveTensors(), live + 100_000);
    dispose(leaked);
    assert.equal(liveTensors(), live);
    assert.ok(r.rssGrowth > BOUND, `a real leak grew RSS by only ${(r.rssGrowth / MB).toFixed(1)} MB`);
  });

  it('tensors dropped without dispose are reclaimed by the garbage collector', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const settle = async (until: () => boolean): Promise<void> => {
      for (let k = 0; k < 20 && !until(); k++) {
        gc();
        await new Promise((r) => setImmediate(r)); // Node runs addon finalizers from the event loop
      }
    };
    await settle(() => false); // let garbage from earlier tests go first
    const live = liveTensors();
    (() => {
      for (let i = 0; i < 1000; i++) zeros([64]).add(1); // no tidy: both tensors are only GC-owned
    })();
    assert.ok(liveTensors() >= live + 1000);
    await settle(() => liveTensors() <= live);
    assert.equal(liveTensors(), live);
  });
});
