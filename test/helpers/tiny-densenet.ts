// A small DenseNet-like ONNX model (TorchScript-style node names): later layers read the outputs of every earlier
// layer of the dense block through concatenations, so the network after a layer also reads values from before it.
import { attr, buildModel, randomFloats, tensor, type NodeSpec } from './onnx-builder.js';
import type { proto } from '../../src/onnx/proto.js';

/** stem conv-bn-relu (3→8), a dense block of two BN-ReLU-conv1×1-BN-ReLU-conv3×3 layers (growth 4), BN-ReLU, GAP, Gemm(16→4). Input [N,3,8,8]. */
export function tinyDenseNet(seed = 3): Uint8Array {
  const nodes: NodeSpec[] = [];
  const inits: proto.ITensorProto[] = [];
  let s = seed;
  const rnd = (n: number, scale: number, offset = 0) => Array.from(randomFloats(n, s++), (v) => v * scale + offset);
  const param = (path: string) => path.slice(1).replace(/\//g, '.');
  const bn = (path: string, x: string, c: number) => {
    const p = param(path);
    for (const [t, scale, offset] of [['weight', 0.2, 1], ['bias', 0.1, 0], ['running_mean', 0.2, 0], ['running_var', 0.3, 1]] as const)
      inits.push(tensor(`${p}.${t}`, 'float', [c], rnd(c, scale, offset)));
    nodes.push({ op: 'BatchNormalization', name: `${path}/BatchNormalization`, inputs: [x, `${p}.weight`, `${p}.bias`, `${p}.running_mean`, `${p}.running_var`], outputs: [`${path}_out`] });
    return `${path}_out`;
  };
  const conv = (path: string, x: string, cin: number, cout: number, k: number) => {
    inits.push(tensor(`${param(path)}.weight`, 'float', [cout, cin, k, k], rnd(cout * cin * k * k, Math.sqrt(2 / (cin * k * k)))));
    nodes.push({ op: 'Conv', name: `${path}/Conv`, inputs: [x, `${param(path)}.weight`], outputs: [`${path}_out`], attrs: { kernel_shape: attr.ints([k, k]), pads: attr.ints(Array(4).fill((k - 1) / 2)) } });
    return `${path}_out`;
  };
  const relu = (path: string, x: string) => {
    nodes.push({ op: 'Relu', name: `${path}/Relu`, inputs: [x], outputs: [`${path}_out`] });
    return `${path}_out`;
  };
  const features = [relu('/features/relu0', bn('/features/norm0', conv('/features/conv0', 'input', 3, 8, 3), 8))];
  let channels = 8;
  for (const l of [1, 2]) {
    const p = `/features/denseblock1/denselayer${l}`;
    let x = features[0]!;
    if (features.length > 1) {
      nodes.push({ op: 'Concat', name: `${p}/Concat`, inputs: [...features], outputs: [`${p}/Concat_out`], attrs: { axis: attr.int(1) } });
      x = `${p}/Concat_out`;
    }
    const y = conv(`${p}/conv1`, relu(`${p}/relu1`, bn(`${p}/norm1`, x, channels)), channels, 16, 1);
    features.push(conv(`${p}/conv2`, relu(`${p}/relu2`, bn(`${p}/norm2`, y, 16)), 16, 4, 3));
    channels += 4;
  }
  nodes.push({ op: 'Concat', name: '/features/denseblock1/Concat', inputs: [...features], outputs: ['/features/denseblock1/Concat_out'], attrs: { axis: attr.int(1) } });
  const x = relu('/features/relu5', bn('/features/norm5', '/features/denseblock1/Concat_out', channels));
  nodes.push({ op: 'GlobalAveragePool', name: '/GlobalAveragePool', inputs: [x], outputs: ['/GlobalAveragePool_out'] });
  nodes.push({ op: 'Flatten', name: '/Flatten', inputs: ['/GlobalAveragePool_out'], outputs: ['/Flatten_out'] });
  inits.push(tensor('classifier.weight', 'float', [4, channels], rnd(4 * channels, 0.3)), tensor('classifier.bias', 'float', [4], rnd(4, 0.1)));
  nodes.push({ op: 'Gemm', name: '/classifier/Gemm', inputs: ['/Flatten_out', 'classifier.weight', 'classifier.bias'], outputs: ['logits'], attrs: { transB: attr.int(1) } });
  return buildModel({ inputs: [{ name: 'input', dims: ['N', 3, 8, 8] }], outputs: [{ name: 'logits', dims: ['N', 4] }], nodes, initializers: inits });
}
