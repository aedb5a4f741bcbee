/** The benchmark runner's registry and result writing (the benchmarks themselves run with `npm run bench`). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchmarks, select, writeJsonAtomic } from '../bench/run.js';
import { markdownTable, type Entry } from '../bench/recon.js';

describe('bench runner', () => {
  it('no name selects every benchmark; names select themselves once', () => {
    assert.deepEqual(select([]), Object.keys(benchmarks));
    assert.ok(select([]).includes('engine'));
    assert.deepEqual(select(['engine', 'engine']), ['engine']);
  });

  it('an unknown name is a clear error listing the available ones', () => {
    assert.throws(() => select(['engine', 'nope']), (e: unknown) => {
      assert.ok(e instanceof RangeError);
      assert.equal(e.message, `Unknown benchmark "nope"; available: ${Object.keys(benchmarks).join(', ')}`);
      return true;
    });
  });

  it('each registered entry loads a module with run()', async () => {
    for (const load of Object.values(benchmarks)) assert.equal(typeof (await load()).run, 'function');
  });

  it('writes JSON atomically (no temp file left, folder created)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pdq-bench-'));
    try {
      const path = join(dir, 'results', 'x.json');
      writeJsonAtomic(path, { a: 1 });
      writeJsonAtomic(path, { a: 2 });
      assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')), { a: 2 });
      assert.deepEqual(readdirSync(join(dir, 'results')), ['x.json']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the recon table shows the default seed at 2000 iterations, other seeds and iteration counts in parentheses", () => {
    const e = (method: string, w: number, iters: number, top1: number, seed?: number): Entry =>
      ({ method, w_bits: w, a_bits: 2, iters, top1, ...(seed === undefined ? {} : { seed }) }) as Entry;
    // The 20000-iteration and seed-7 entries come first, so a table that took the first match would show them.
    const table = markdownTable([e('qdrop', 2, 20000, 69.7, 1005), e('qdrop', 2, 2000, 68.1, 7), e('qdrop', 2, 2000, 67.97, 1005), e('qdrop', 4, 2000, 70.32)]);
    assert.equal(table.split('\n')[2], '| qdrop | 70.32 | 67.97 (69.70 at 20000 iterations, 68.10 seed 7) |');
  });
});
