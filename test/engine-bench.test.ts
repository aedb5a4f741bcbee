/** The benchmark runner's registry and result writing (the benchmarks themselves run with `npm run bench`). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchmarks, select, writeJsonAtomic } from '../bench/run.js';

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
});
