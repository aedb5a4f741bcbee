// Where quantizers go (PDQUANT.md §3) on structures beyond the reference's models.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadModel } from '../src/graph/load.js';
import { placeQuantizers } from '../src/quant/placement.js';
import { attr, buildModel, randomFloats, tensor, type NodeSpec } from './helpers/onnx-builder.js';
import { tinyResNet } from './helpers/tiny-resnet.js';
import type { proto } from '../src/onnx/proto.js';

/** A pre-activation ResNet (ResNet-v2): stem conv, one block BN-ReLU-conv-BN-ReLU-conv + skip, then BN-ReLU, GAP, Gemm. */
function preActResNet(): Uint8Array {
  const nodes: NodeSpec[] = [];
  const inits: proto.ITensorProto[] = [];
  let s = 5;
  const rnd = (n: number, scale: number, offset = 0) => Array.from(randomFloats(n, s++), (v) => v * scale + offset);
  const bn = (path: string, x: string) => {
    for (const [t, scale, offset] of [['g', 0.2, 1], ['b', 0.1, 0], ['m', 0.2, 0], ['v', 0.3, 1]] as const) inits.push(tensor(`${path}.${t}`, 'float', [8], rnd(8, scale, offset)));
    nodes.push({ op: 'BatchNormalization', name: `${path}/BatchNormalization`, inputs: [x, `${path}.g`, `${path}.b`, `${path}.m`, `${path}.v`], outputs: [`${path}_out`] });
    return `${path}_out`;
  };
  const conv = (path: string, x: string, cin: number) => {
    inits.push(tensor(`${path}.w`, 'float', [8, cin, 3, 3], rnd(8 * cin * 9, 0.3)));
    nodes.push({ op: 'Conv', name: `${path}/Conv`, inputs: [x, `${path}.w`], outputs: [`${path}_out`], attrs: { kernel_shape: attr.ints([3, 3]), pads: attr.ints([1, 1, 1, 1]) } });
    return `${path}_out`;
  };
  const relu = (path: string, x: string) => {
    nodes.push({ op: 'Relu', name: `${path}/Relu`, inputs: [x], outputs: [`${path}_out`] });
    return `${path}_out`;
  };
  const stem = conv('/conv0', 'input', 3);
  const branch = conv('/layer1/unit1/conv2', relu('/layer1/unit1/relu2', bn('/layer1/unit1/bn2', conv('/layer1/unit1/conv1', relu('/layer1/unit1/relu1', bn('/layer1/unit1/bn1', stem)), 8))), 8);
  nodes.push({ op: 'Add', name: '/layer1/unit1/Add', inputs: [branch, stem], outputs: ['block_out'] });
  nodes.push({ op: 'GlobalAveragePool', name: '/pool/GlobalAveragePool', inputs: [relu('/relu_final', bn('/bn_final', 'block_out'))], outputs: ['pool'] });
  nodes.push({ op: 'Flatten', name: '/Flatten', inputs: ['pool'], outputs: ['flat'] });
  inits.push(tensor('fc.w', 'float', [4, 8], rnd(32, 0.5)), tensor('fc.b', 'float', [4], rnd(4, 0.1)));
  nodes.push({ op: 'Gemm', name: '/fc/Gemm', inputs: ['flat', 'fc.w', 'fc.b'], outputs: ['logits'], attrs: { transB: attr.int(1) } });
  return buildModel({ inputs: [{ name: 'input', dims: ['N', 3, 8, 8] }], outputs: [{ name: 'logits', dims: ['N', 4] }], nodes, initializers: inits });
}

const actBits = (bytes: Uint8Array, eightBitHeadStem = true) => {
  const m = loadModel(bytes);
  return placeQuantizers(m.folded, m.units, { wBits: 4, aBits: 2, eightBitHeadStem }).acts.map((a) => `${a.value}:${a.bits}`);
};

test('the last activation quantizer before the classifier is 8-bit, also behind a pre-activation network\'s final BN and ReLU', () => {
  assert.deepEqual(actBits(preActResNet()), ['/conv0_out:2', '/layer1/unit1/relu2_out:2', 'block_out:8']);
  assert.deepEqual(actBits(preActResNet(), false), ['/conv0_out:2', '/layer1/unit1/relu2_out:2', 'block_out:2']);
  // Behind pooling and flatten only (the reference's models), as before.
  assert.equal(actBits(tinyResNet()).at(-1), '/layer2/layer2.0/relu2/Relu_output_0:8');
});
