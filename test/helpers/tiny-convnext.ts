// A small ConvNeXt as torchvision's convnext_tiny exports at opset 17 (TorchScript-style node names, no BN): LayerNorm2d
// as Transpose → LayerNormalization → Transpose, linear layers as MatMul on [N, H, W, C] with the bias added after,
// GELU as x · (1 + erf(x/√2)) · 0.5, and the block's layer scale multiplied before its residual addition.
import { attr, buildModel, tensor } from './onnx-builder.js';
import { TorchLayers } from './torch-layers.js';

/**
 * stem conv 2×2/2 (3→8) + LayerNorm2d; CNBlock (8): depthwise 3×3, permute, LayerNorm, linear 8→32, GELU, linear
 * 32→8, permute, layer scale, + input; downsample LayerNorm2d + conv 2×2/2 (8→16); CNBlock (16); GAP, LayerNorm2d,
 * Flatten, Gemm (16→4). Input [N,3,8,8].
 */
export function tinyConvNeXt(): Uint8Array {
  const L = new TorchLayers(31);
  const { nodes, initializers: inits } = L;
  const param = (path: string) => path.slice(1).replace(/\//g, '.');
  const constant = (name: string, value: number) => {
    inits.push(tensor(name, 'float', [], [value]));
    return name;
  };
  const transpose = (path: string, x: string, perm: number[]) => {
    nodes.push({ op: 'Transpose', name: `${path}`, inputs: [x], outputs: [`${path}_out`], attrs: { perm: attr.ints(perm) } });
    return `${path}_out`;
  };
  const layerNorm = (path: string, x: string, c: number) => {
    const p = param(path);
    inits.push(tensor(`${p}.weight`, 'float', [c], L.rnd(c, 0.2, 1)), tensor(`${p}.bias`, 'float', [c], L.rnd(c, 0.1)));
    nodes.push({ op: 'LayerNormalization', name: `${path}/LayerNormalization`, inputs: [x, `${p}.weight`, `${p}.bias`], outputs: [`${path}_out`], attrs: { axis: attr.int(-1), epsilon: attr.float(1e-6) } });
    return `${path}_out`;
  };
  const layerNorm2d = (path: string, x: string, c: number) =>
    transpose(`${path}/Transpose_1`, layerNorm(path, transpose(`${path}/Transpose`, x, [0, 2, 3, 1]), c), [0, 3, 1, 2]);
  const strided = (path: string, x: string, cin: number, cout: number) => {
    const p = param(path);
    inits.push(tensor(`${p}.weight`, 'float', [cout, cin, 2, 2], L.rnd(cout * cin * 4, Math.sqrt(2 / (cin * 4)))), tensor(`${p}.bias`, 'float', [cout], L.rnd(cout, 0.1)));
    nodes.push({ op: 'Conv', name: `${path}/Conv`, inputs: [x, `${p}.weight`, `${p}.bias`], outputs: [`${path}_out`], attrs: { kernel_shape: attr.ints([2, 2]), strides: attr.ints([2, 2]) } });
    return `${path}_out`;
  };
  /** torch's Linear on a channels-last tensor: MatMul by the weight [in, out], then Add(bias, product). */
  const linear = (path: string, x: string, cin: number, cout: number) => {
    const p = param(path);
    inits.push(tensor(`onnx::MatMul_${p}`, 'float', [cin, cout], L.rnd(cin * cout, Math.sqrt(2 / cin))), tensor(`${p}.bias`, 'float', [cout], L.rnd(cout, 0.1)));
    nodes.push({ op: 'MatMul', name: `${path}/MatMul`, inputs: [x, `onnx::MatMul_${p}`], outputs: [`${path}/MatMul_out`] });
    nodes.push({ op: 'Add', name: `${path}/Add`, inputs: [`${p}.bias`, `${path}/MatMul_out`], outputs: [`${path}/Add_out`] });
    return `${path}/Add_out`;
  };
  const gelu = (path: string, x: string) => {
    nodes.push(
      { op: 'Div', name: `${path}/Div`, inputs: [x, constant(`${path}/sqrt2`, Math.SQRT2)], outputs: [`${path}/Div_out`] },
      { op: 'Erf', name: `${path}/Erf`, inputs: [`${path}/Div_out`], outputs: [`${path}/Erf_out`] },
      { op: 'Add', name: `${path}/Add`, inputs: [`${path}/Erf_out`, constant(`${path}/one`, 1)], outputs: [`${path}/Add_out`] },
      { op: 'Mul', name: `${path}/Mul`, inputs: [x, `${path}/Add_out`], outputs: [`${path}/Mul_out`] },
      { op: 'Mul', name: `${path}/Mul_1`, inputs: [`${path}/Mul_out`, constant(`${path}/half`, 0.5)], outputs: [`${path}/Mul_1_out`] },
    );
    return `${path}/Mul_1_out`;
  };
  const block = (path: string, x: string, c: number) => {
    const b = `${path}/block`;
    const dw = L.conv(`${b}/block.0`, x, c, c, 3, { group: c, bias: true });
    const normed = layerNorm(`${b}/block.2`, transpose(`${b}/block.1/Transpose`, dw, [0, 2, 3, 1]), c);
    const hidden = gelu(`${b}/block.4`, linear(`${b}/block.3`, normed, c, 4 * c));
    const back = transpose(`${b}/block.6/Transpose`, linear(`${b}/block.5`, hidden, 4 * c, c), [0, 3, 1, 2]);
    const scale = `${param(path)}.layer_scale`;
    inits.push(tensor(scale, 'float', [c, 1, 1], L.rnd(c, 0.1, 0.3)));
    nodes.push({ op: 'Mul', name: `${path}/Mul`, inputs: [scale, back], outputs: [`${path}/Mul_out`] });
    nodes.push({ op: 'Add', name: `${path}/Add`, inputs: [`${path}/Mul_out`, x], outputs: [`${path}/Add_out`] });
    return `${path}/Add_out`;
  };
  const stem = layerNorm2d('/features/features.0/features.0.1', strided('/features/features.0/features.0.0', 'input', 3, 8), 8);
  const stage1 = block('/features/features.1/features.1.0', stem, 8);
  const down = strided('/features/features.2/features.2.1', layerNorm2d('/features/features.2/features.2.0', stage1, 8), 8, 16);
  const stage2 = block('/features/features.3/features.3.0', down, 16);
  nodes.push({ op: 'GlobalAveragePool', name: '/avgpool/GlobalAveragePool', inputs: [stage2], outputs: ['pool'] });
  const normed = layerNorm2d('/classifier/classifier.0', 'pool', 16);
  nodes.push({ op: 'Flatten', name: '/classifier/classifier.1/Flatten', inputs: [normed], outputs: ['flat'] });
  inits.push(tensor('classifier.2.weight', 'float', [4, 16], L.rnd(64, 0.4)), tensor('classifier.2.bias', 'float', [4], L.rnd(4, 0.1)));
  nodes.push({ op: 'Gemm', name: '/classifier/classifier.2/Gemm', inputs: ['flat', 'classifier.2.weight', 'classifier.2.bias'], outputs: ['logits'], attrs: { transB: attr.int(1) } });
  return buildModel({ opset: 17, inputs: [{ name: 'input', dims: ['N', 3, 8, 8] }], outputs: [{ name: 'logits', dims: ['N', 4] }], nodes, initializers: inits });
}
