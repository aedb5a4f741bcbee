// A small EfficientNet-like ONNX model (TorchScript-style node names, BN kept): SiLU written as PyTorch exports it,
// x * Sigmoid(x), and an MBConv block with squeeze-and-excitation and a skip connection.
import { attr, buildModel, tensor } from './onnx-builder.js';
import { TorchLayers } from './torch-layers.js';

/**
 * stem conv3×3-BN-SiLU (3→8); MBConv: expand 1×1-BN-SiLU (8→16), depthwise 3×3-BN-SiLU, SE (GAP, fc1 1×1 + SiLU,
 * fc2 1×1 + Sigmoid, Mul), project 1×1-BN (16→8), Add; head 1×1-BN-SiLU (8→16); GAP, Flatten, Gemm(16→4).
 * Input [N,3,8,8]. With `hardSwish`, the activations are x * HardSigmoid(x) instead (MobileNetV3 below opset 14).
 */
export function tinyEfficientNet(o: { hardSwish?: boolean } = {}): Uint8Array {
  const L = new TorchLayers(21);
  const { nodes, initializers: inits } = L;
  const conv = L.conv.bind(L);
  const bn = L.bn.bind(L);
  const silu = (path: string, x: string) => {
    const gate = o.hardSwish ? 'HardSigmoid' : 'Sigmoid';
    nodes.push({ op: gate, name: `${path}/${gate}`, inputs: [x], outputs: [`${path}/${gate}_out`] });
    nodes.push({ op: 'Mul', name: `${path}/Mul`, inputs: [x, `${path}/${gate}_out`], outputs: [`${path}/Mul_out`] });
    return `${path}/Mul_out`;
  };
  const stem = silu('/features/features.0/features.0.2', bn('/features/features.0/features.0.1', conv('/features/features.0/features.0.0', 'input', 3, 8, 3), 8));
  const b = '/features/features.1/features.1.0/block';
  const expanded = silu(`${b}/block.0/block.0.2`, bn(`${b}/block.0/block.0.1`, conv(`${b}/block.0/block.0.0`, stem, 8, 16, 1), 16));
  const dw = silu(`${b}/block.1/block.1.2`, bn(`${b}/block.1/block.1.1`, conv(`${b}/block.1/block.1.0`, expanded, 16, 16, 3, { group: 16 }), 16));
  nodes.push({ op: 'GlobalAveragePool', name: `${b}/block.2/avgpool/GlobalAveragePool`, inputs: [dw], outputs: ['se_pool'] });
  const fc1 = silu(`${b}/block.2/activation`, conv(`${b}/block.2/fc1`, 'se_pool', 16, 4, 1, { bias: true }));
  nodes.push({ op: 'Sigmoid', name: `${b}/block.2/scale_activation/Sigmoid`, inputs: [conv(`${b}/block.2/fc2`, fc1, 4, 16, 1, { bias: true })], outputs: ['se_scale'] });
  nodes.push({ op: 'Mul', name: `${b}/block.2/Mul`, inputs: ['se_scale', dw], outputs: ['se_out'] });
  const projected = bn(`${b}/block.3/block.3.1`, conv(`${b}/block.3/block.3.0`, 'se_out', 16, 8, 1), 8);
  nodes.push({ op: 'Add', name: '/features/features.1/features.1.0/Add', inputs: [projected, stem], outputs: ['block_out'] });
  const head = silu('/features/features.2/features.2.2', bn('/features/features.2/features.2.1', conv('/features/features.2/features.2.0', 'block_out', 8, 16, 1), 16));
  nodes.push({ op: 'GlobalAveragePool', name: '/avgpool/GlobalAveragePool', inputs: [head], outputs: ['pool'] });
  nodes.push({ op: 'Flatten', name: '/Flatten', inputs: ['pool'], outputs: ['flat'] });
  inits.push(tensor('classifier.1.weight', 'float', [4, 16], L.rnd(64, 0.4)), tensor('classifier.1.bias', 'float', [4], L.rnd(4, 0.1)));
  nodes.push({ op: 'Gemm', name: '/classifier/classifier.1/Gemm', inputs: ['flat', 'classifier.1.weight', 'classifier.1.bias'], outputs: ['logits'], attrs: { transB: attr.int(1) } });
  return buildModel({ inputs: [{ name: 'input', dims: ['N', 3, 8, 8] }], outputs: [{ name: 'logits', dims: ['N', 4] }], nodes, initializers: inits });
}
