// Reconstruction units of models whose node names carry no module paths: found from the graph's structure.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadModel } from '../src/graph/load.js';
import { attr, buildModel, randomFloats, tensor, type NodeSpec } from './helpers/onnx-builder.js';
import type { proto } from '../src/onnx/proto.js';

/** stem, an inverted residual without skip (dw → linear project), one with a skip, a last 1×1 conv, GAP, Gemm; nodes named n0, n1, ... */
function tinyMobile(withSkip: boolean): Uint8Array {
  const nodes: NodeSpec[] = [];
  const inits: proto.ITensorProto[] = [];
  let k = 0;
  const conv = (x: string, cin: number, cout: number, kernel: number, relu: boolean, group = 1): string => {
    const w = `w${k}`;
    inits.push(tensor(w, 'float', [cout, cin / group, kernel, kernel], [...randomFloats((cout * cin * kernel * kernel) / group, k + 1)]));
    const y = `c${k}`;
    nodes.push({ op: 'Conv', name: `n${k++}`, inputs: [x, w], outputs: [y], attrs: { pads: attr.ints(Array(4).fill((kernel - 1) / 2)), group: attr.int(group) } });
    if (!relu) return y;
    nodes.push({ op: 'Relu', name: `n${k++}`, inputs: [y], outputs: [`r${k}`] });
    return `r${k}`;
  };
  let x = conv('input', 3, 8, 3, true); // stem
  x = conv(conv(x, 8, 8, 3, true, 8), 8, 4, 1, false); // dw → project, no skip
  const skip = x;
  x = conv(conv(conv(x, 4, 8, 1, true), 8, 8, 3, true, 8), 8, 4, 1, false); // expand → dw → project
  if (withSkip) {
    nodes.push({ op: 'Add', name: `n${k++}`, inputs: [x, skip], outputs: ['sum'] });
    x = 'sum';
  }
  x = conv(x, 4, 8, 1, true); // last conv
  inits.push(tensor('fcw', 'float', [3, 8], [...randomFloats(24, 99)]), tensor('fcb', 'float', [3], [0, 0, 0]));
  nodes.push(
    { op: 'GlobalAveragePool', name: 'gap', inputs: [x], outputs: ['g'] },
    { op: 'Flatten', name: 'flat', inputs: ['g'], outputs: ['f'], attrs: { axis: attr.int(1) } },
    { op: 'Gemm', name: 'fc', inputs: ['f', 'fcw', 'fcb'], outputs: ['logits'], attrs: { transB: attr.int(1) } },
  );
  return buildModel({ inputs: [{ name: 'input', dims: ['N', 3, 8, 8] }], outputs: [{ name: 'logits', dims: ['N', 3] }], nodes, initializers: inits });
}

for (const withSkip of [true, false]) {
  test(`without module paths, a chain ending in a linear bottleneck is a block (${withSkip ? 'with' : 'no'} residual addition in the model)`, () => {
    const units = loadModel(tinyMobile(withSkip)).units;
    assert.deepEqual(
      units.map((u) => `${u.kind}:${u.nodes.map((n) => n.name).join(' ')}`),
      ['layer:n0 n1', 'block:n2 n3 n4', `block:n5 n6 n7 n8 n9${withSkip ? ' n10' : ''}`, `layer:${withSkip ? 'n11 n12' : 'n10 n11'}`, 'layer:fc'],
    );
    assert.deepEqual(units.map((u) => u.name).slice(1, 3), ['block0', 'block1']);
  });
}

test('module paths recorded as node metadata (torch.onnx.export with dynamo=True) group the units as names with paths do', async () => {
  const { tinyResNet } = await import('./helpers/tiny-resnet.js');
  const { withNodeMetadata } = await import('./helpers/onnx-builder.js');
  const { onnx } = await import('../src/onnx/proto.js');
  // The dynamo exporter's form: cumulative module paths between the root '' and the node's own name.
  const scopes = (name: string) => {
    const parts = name.split('/').filter(Boolean).slice(0, -1);
    const cumulative: string[] = [];
    for (const p of parts) cumulative.push(cumulative.length === 0 || p.startsWith(`${cumulative.at(-1)}.`) ? p : `${cumulative.at(-1)}.${p}`);
    return `[${['', ...cumulative, 'op'].map((s) => `'${s}'`).join(', ')}]`;
  };
  const withPaths = tinyResNet();
  const m = onnx.ModelProto.decode(withPaths);
  const names = m.graph!.node!.map((n) => n.name!);
  m.graph!.node!.forEach((n, i) => (n.name = `node_${n.opType}_${i}`));
  const dynamo = withNodeMetadata(onnx.ModelProto.encode(m).finish(), (_, i) => ({ 'pkg.torch.onnx.name_scopes': scopes(names[i]!), 'pkg.torch.onnx.class_hierarchy': "['x']" }));
  const units = loadModel(dynamo).units;
  assert.deepEqual(units.map((u) => `${u.name}:${u.kind}`), ['stem.conv:layer', 'layer1.0:block', 'layer2.0:block', 'fc:layer']);
  assert.deepEqual(units.map((u) => u.nodes.length), loadModel(withPaths).units.map((u) => u.nodes.length));
  assert.ok(units[1]!.nodes.every((n) => n.name.startsWith('node_')));
  // Without the metadata the same graph has no paths: the structure gives the blocks.
  assert.deepEqual(loadModel(onnx.ModelProto.encode(m).finish()).units.map((u) => u.kind), ['layer', 'block', 'block', 'layer']);
});

test('unnamed and repeated node names become unique (weights, units and checkpoints are keyed by them)', async () => {
  const { onnx } = await import('../src/onnx/proto.js');
  const { readOnnx } = await import('../src/onnx/index.js');
  const m = onnx.ModelProto.decode(tinyMobile(true));
  m.graph!.node!.forEach((n, i) => (n.name = i === 0 || i === 2 ? 'dup' : ''));
  const bytes = onnx.ModelProto.encode(m).finish();
  const names = readOnnx(bytes).nodes.map((n) => n.name);
  assert.deepEqual(names.slice(0, 4), ['dup', 'r2', 'dup_1', 'r4']);
  assert.equal(new Set(names).size, names.length);
  assert.deepEqual(loadModel(bytes).units.map((u) => u.kind), loadModel(tinyMobile(true)).units.map((u) => u.kind));
});
