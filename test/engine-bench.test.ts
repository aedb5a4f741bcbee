/** The benchmark runner's registry and result writing (the benchmarks themselves run with `npm run bench`). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchmarks, select, writeJsonAtomic } from '../bench/run.js';
import { markdownTable, parseRun, runDirName, type Entry } from '../bench/recon.js';

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

  it("the recon table shows the default seed at 2000 iterations, other seeds and iteration counts in parentheses (by iterations, then seed)", () => {
    const e = (method: string, w: number, iters: number, top1: number, seed?: number): Entry =>
      ({ method, w_bits: w, a_bits: 2, iters, top1, ...(seed === undefined ? {} : { seed }) }) as Entry;
    // The 20000-iteration and seed-7 entries come first, so a table that took the first match would show them.
    const table = markdownTable([e('qdrop', 2, 20000, 69.7, 1005), e('qdrop', 2, 2000, 68.1, 7), e('qdrop', 2, 2000, 67.97, 1005), e('qdrop', 4, 2000, 70.32)]);
    assert.equal(table.split('\n')[2], '| qdrop | 70.32 | 67.97 (68.10 seed 7, 69.70 at 20000 iterations) |');
  });

  it('recon ablation runs: settings parsed from the run list, kept out of the method table, listed in their own', () => {
    assert.deepEqual(parseRun('qdrop:2:2:1005:inputDropP=1:dropP=0.5'), { method: 'qdrop', w: 2, a: 2, seed: 1005, recon: { inputDropP: 1, dropP: 0.5 } });
    assert.deepEqual(parseRun('brecq:4:2'), { method: 'brecq', w: 4, a: 2, seed: 1005, recon: {} });
    assert.throws(() => parseRun('qdrop:2:2:1005:inputDrop=1'), /cannot read the setting "inputDrop=1"/);
    assert.throws(() => parseRun('qdrop:2:2:1005:dropP=x'), /cannot read the setting "dropP=x"/);
    const e = (top1: number, recon?: Entry['recon'], seed = 1005): Entry =>
      ({ method: 'qdrop', w_bits: 2, a_bits: 2, iters: 2000, top1, seed, ...(recon ? { recon } : {}) }) as Entry;
    const all = [e(69.1, { inputDropP: 1 }), e(67.97), e(68.4, { inputDropP: 1 }, 7)];
    assert.equal(markdownTable(all).split('\n')[2], '| qdrop | – | 67.97 |');
    assert.equal(markdownTable(all, { settings: true }).split('\n').slice(2).join('\n'), '| qdrop inputDropP=1 | – | 69.10 (68.40 seed 7) |');
    // The checkpoint folders the fit benchmark reads back.
    assert.equal(runDirName(all[1]!), 'qdrop-w2a2-2000');
    assert.equal(runDirName(all[2]!), 'qdrop-w2a2-2000-seed7-inputDropP=1');
    assert.equal(runDirName({ ...all[1]!, seed: undefined, iters: 20000 }), 'qdrop-w2a2-20000');
  });
});
