// Top-1/top-5 counting: ties go to the lower class index (as argmax), and a label the logits cannot score is an error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TopK } from '../src/eval/index.js';

test('top-1 and top-5 hits, ties resolved towards the lower class index', () => {
  const acc = new TopK();
  const logits = Float32Array.of(
    0, 5, 1, 1, 1, 1, // label 1: top-1
    3, 3, 0, 0, 0, 0, // label 1 ties with class 0, which wins: top-5 only
    6, 5, 4, 3, 2, 1, // label 5: sixth, neither
  );
  acc.add(logits, 6, Int32Array.of(1, 1, 5));
  const r = acc.result(1);
  assert.equal(r.n, 3);
  assert.equal(r.top1, 100 / 3);
  assert.equal(r.top5, 200 / 3);
});

test('a label past the model outputs or a missing label is an error, not a hit', () => {
  const acc = new TopK();
  assert.throws(() => acc.add(Float32Array.of(1, 2, 3), 3, Int32Array.of(3)), /label 3 is outside the model's 3 outputs/);
  assert.throws(() => acc.add(Float32Array.of(1, 2, 3), 3, Int32Array.of(-1)), /has no label/);
  assert.equal(acc.n, 0);
});

test('loadOrt: onnxruntime-node that cannot load is one line saying what to do, not a require stack', async () => {
  const { loadOrt } = await import('../src/eval/ort.js');
  const missing = new Error("Cannot find module '../bin/napi-v6/linux/x64/onnxruntime_binding.node'\nRequire stack:\n- /x/binding.js");
  await assert.rejects(loadOrt(() => Promise.reject(missing)), (e: unknown) => {
    assert.equal((e as Error).message, "onnxruntime-node cannot be loaded (Cannot find module '../bin/napi-v6/linux/x64/onnxruntime_binding.node'); " +
      'reinstall the npm packages (npm ci, or bash scripts/setup.sh)');
    return true;
  });
  assert.equal(typeof (await loadOrt()).InferenceSession.create, 'function');
});
