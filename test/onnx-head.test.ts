// A classifier that ends in Softmax/LogSoftmax: quantized up to its logits, exported with the head put back.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeOnnx, readOnnx } from '../src/onnx/index.js';
import { splitHead, withHead } from '../src/onnx/head.js';
import { loadModel } from '../src/graph/load.js';
import { attr, randomFloats, runOrt } from './helpers/onnx-builder.js';
import { onnx } from '../src/onnx/proto.js';
import { tinyResNet } from './helpers/tiny-resnet.js';

/** tinyResNet with `op` after its Gemm (the output keeps the name 'logits'). */
function withFinal(op: string, attrs: Record<string, ReturnType<typeof attr.int>> = {}): Uint8Array {
  const m = onnx.ModelProto.decode(tinyResNet());
  const g = m.graph!;
  g.node!.find((n) => n.output!.includes('logits'))!.output = ['raw'];
  g.node!.push({ name: '/head', opType: op, input: ['raw'], output: ['logits'], attribute: Object.entries(attrs).map(([name, a]) => ({ ...a, name })) });
  return onnx.ModelProto.encode(m).finish();
}

const x = { input: { dims: [2, 3, 8, 8], data: randomFloats(2 * 3 * 64, 5) } };

for (const op of ['Softmax', 'LogSoftmax']) {
  test(`a final ${op} is set aside for quantization and put back for export, same outputs`, async () => {
    const bytes = withFinal(op);
    const { body, head } = splitHead(readOnnx(bytes));
    assert.deepEqual(head && { opType: head.opType, name: head.name, output: head.output.name }, { opType: op, name: '/head', output: 'logits' });
    assert.deepEqual(body.outputs.map((v) => v.name), ['raw']);
    assert.ok(!body.nodes.some((n) => n.opType === op));
    const logits = (await runOrt(encodeOnnx(body), x)).raw!;
    assert.deepEqual([...logits.data], [...(await runOrt(tinyResNet(), x)).logits!.data]);
    const back = withHead(body, head);
    assert.deepEqual([...(await runOrt(encodeOnnx(back), x)).logits!.data], [...(await runOrt(bytes, x)).logits!.data]);
    const loaded = loadModel(bytes);
    assert.equal(loaded.head?.opType, op);
    assert.equal(loaded.fp.output.name, 'raw');
  });
}

test('a Softmax over another axis, or not at the end, stays in the model (and is refused as unsupported)', () => {
  const model = readOnnx(withFinal('Softmax', { axis: attr.int(0) }));
  assert.equal(splitHead(model).head, null);
  assert.equal(splitHead(readOnnx(tinyResNet())).head, null);
  assert.throws(() => loadModel(withFinal('Softmax', { axis: attr.int(0) })), /Unsupported ONNX ops: Softmax \(nodes: \/head\)/);
});
