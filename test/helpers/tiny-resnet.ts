// A small ResNet-like ONNX model (as PyTorch's exporter names nodes) and a folder of images for it.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { attr, buildModel, randomFloats, tensor, type NodeSpec } from './onnx-builder.js';
import type { proto } from '../../src/onnx/proto.js';
import { tempDir } from './temp-dir.js';

/** stem conv-bn-relu (3→8), two BasicBlocks (8→8, 8→16 stride 2 with a 1×1 downsample), GAP, Flatten, Gemm(16→4). Input [N,3,8,8]. */
export function tinyResNet(seed = 1): Uint8Array {
  const nodes: NodeSpec[] = [];
  const inits: proto.ITensorProto[] = [];
  let s = seed;
  const rnd = (n: number, scale: number, offset = 0) => Array.from(randomFloats(n, s++), (v) => v * scale + offset);
  const convBn = (path: string, x: string, cin: number, cout: number, k: number, stride: number): string => {
    const w = `${path}.weight`.replace(/^\//, '').replace(/\//g, '.');
    inits.push(tensor(w, 'float', [cout, cin, k, k], rnd(cout * cin * k * k, Math.sqrt(2 / (cin * k * k)))));
    const conv = `${path}/conv/Conv`;
    nodes.push({ op: 'Conv', name: conv, inputs: [x, w], outputs: [`${conv}_output_0`], attrs: { kernel_shape: attr.ints([k, k]), pads: attr.ints(Array(4).fill((k - 1) / 2)), strides: attr.ints([stride, stride]) } });
    const bn = `${path}/bn/BatchNormalization`;
    const p = w.replace(/\.weight$/, '');
    inits.push(tensor(`${p}.bn.weight`, 'float', [cout], rnd(cout, 0.2, 1)), tensor(`${p}.bn.bias`, 'float', [cout], rnd(cout, 0.1)));
    inits.push(tensor(`${p}.bn.running_mean`, 'float', [cout], rnd(cout, 0.2)), tensor(`${p}.bn.running_var`, 'float', [cout], rnd(cout, 0.3, 1)));
    nodes.push({ op: 'BatchNormalization', name: bn, inputs: [`${conv}_output_0`, `${p}.bn.weight`, `${p}.bn.bias`, `${p}.bn.running_mean`, `${p}.bn.running_var`], outputs: [`${bn}_output_0`] });
    return `${bn}_output_0`;
  };
  const relu = (path: string, x: string) => {
    nodes.push({ op: 'Relu', name: `${path}/Relu`, inputs: [x], outputs: [`${path}/Relu_output_0`] });
    return `${path}/Relu_output_0`;
  };
  const block = (path: string, x: string, cin: number, cout: number, stride: number) => {
    const a = relu(`${path}/relu1`, convBn(`${path}/conv1`, x, cin, cout, 3, stride));
    const b = convBn(`${path}/conv2`, a, cout, cout, 3, 1);
    const skip = stride === 1 && cin === cout ? x : convBn(`${path}/downsample`, x, cin, cout, 1, stride);
    nodes.push({ op: 'Add', name: `${path}/Add`, inputs: [b, skip], outputs: [`${path}/Add_output_0`] });
    return relu(`${path}/relu2`, `${path}/Add_output_0`);
  };
  let x = relu('/relu', convBn('/stem', 'input', 3, 8, 3, 1));
  x = block('/layer1/layer1.0', x, 8, 8, 1);
  x = block('/layer2/layer2.0', x, 8, 16, 2);
  nodes.push({ op: 'GlobalAveragePool', name: '/avgpool/GlobalAveragePool', inputs: [x], outputs: ['/avgpool/GlobalAveragePool_output_0'] });
  nodes.push({ op: 'Flatten', name: '/Flatten', inputs: ['/avgpool/GlobalAveragePool_output_0'], outputs: ['/Flatten_output_0'], attrs: { axis: attr.int(1) } });
  inits.push(tensor('fc.weight', 'float', [4, 16], rnd(64, 0.5)), tensor('fc.bias', 'float', [4], rnd(4, 0.1)));
  nodes.push({ op: 'Gemm', name: '/fc/Gemm', inputs: ['/Flatten_output_0', 'fc.weight', 'fc.bias'], outputs: ['logits'], attrs: { transB: attr.int(1) } });
  return buildModel({ inputs: [{ name: 'input', dims: ['N', 3, 8, 8] }], outputs: [{ name: 'logits', dims: ['N', 4] }], nodes, initializers: inits });
}

/** Writes the model and an ImageFolder of `perClass` random 8×8 PNGs for each of 4 classes; returns their paths. */
export async function tinyWorkspace(perClass = 16): Promise<{ dir: string; model: string; images: string }> {
  const dir = tempDir('pdquant-tiny-');
  const model = join(dir, 'tiny.onnx');
  writeFileSync(model, tinyResNet());
  const images = join(dir, 'images');
  let seed = 7;
  for (const cls of ['a', 'b', 'c', 'd']) {
    mkdirSync(join(images, cls), { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const px = Buffer.from(Array.from(randomFloats(8 * 8 * 3, seed++), (v) => Math.round((v + 1) * 127.5)));
      await sharp(px, { raw: { width: 8, height: 8, channels: 3 } }).png().toFile(join(images, cls, `${i}.png`));
    }
  }
  return { dir, model, images };
}
