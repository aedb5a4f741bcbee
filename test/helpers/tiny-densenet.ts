// A small DenseNet-like ONNX model (TorchScript-style node names): later layers read the outputs of every earlier
// layer of the dense block through concatenations, so the network after a layer also reads values from before it.
import { attr, buildModel, tensor } from './onnx-builder.js';
import { TorchLayers } from './torch-layers.js';

/** stem conv-bn-relu (3→8), a dense block of two BN-ReLU-conv1×1-BN-ReLU-conv3×3 layers (growth 4), BN-ReLU, GAP, Gemm(16→4). Input [N,3,8,8]. */
export function tinyDenseNet(seed = 3): Uint8Array {
  const L = new TorchLayers(seed);
  const { nodes, initializers: inits } = L;
  const conv = L.conv.bind(L);
  const bn = L.bn.bind(L);
  const relu = (path: string, x: string) => L.act('Relu', path, x);
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
  inits.push(tensor('classifier.weight', 'float', [4, channels], L.rnd(4 * channels, 0.3)), tensor('classifier.bias', 'float', [4], L.rnd(4, 0.1)));
  nodes.push({ op: 'Gemm', name: '/classifier/Gemm', inputs: ['/Flatten_out', 'classifier.weight', 'classifier.bias'], outputs: ['logits'], attrs: { transB: attr.int(1) } });
  return buildModel({ inputs: [{ name: 'input', dims: ['N', 3, 8, 8] }], outputs: [{ name: 'logits', dims: ['N', 4] }], nodes, initializers: inits });
}
