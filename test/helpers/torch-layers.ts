// Conv / BatchNormalization / activation nodes named as PyTorch's TorchScript exporter names them ("/features/conv0/Conv",
// weights "features.conv0.weight"), with deterministic random weights: the building blocks of the synthetic test models.
import { attr, randomFloats, tensor, type NodeSpec } from './onnx-builder.js';
import type { proto } from '../../src/onnx/proto.js';

export class TorchLayers {
  readonly nodes: NodeSpec[] = [];
  readonly initializers: proto.ITensorProto[] = [];
  #seed: number;

  constructor(seed: number) {
    this.#seed = seed;
  }

  /** n values v·scale + offset, v uniform in [-1, 1), a new seed each call. */
  rnd(n: number, scale: number, offset = 0): number[] {
    return Array.from(randomFloats(n, this.#seed++), (v) => v * scale + offset);
  }

  /** Conv k×k, same padding, He-scaled weights (and a bias when asked); returns its output `${path}_out`. */
  conv(path: string, x: string, cin: number, cout: number, k: number, o: { group?: number; bias?: boolean } = {}): string {
    const g = o.group ?? 1;
    const p = param(path);
    this.initializers.push(tensor(`${p}.weight`, 'float', [cout, cin / g, k, k], this.rnd((cout * cin * k * k) / g, Math.sqrt(2 / ((cin / g) * k * k)))));
    const inputs = [x, `${p}.weight`];
    if (o.bias) {
      this.initializers.push(tensor(`${p}.bias`, 'float', [cout], this.rnd(cout, 0.1)));
      inputs.push(`${p}.bias`);
    }
    const attrs = { kernel_shape: attr.ints([k, k]), pads: attr.ints(Array(4).fill((k - 1) / 2)), ...(g > 1 ? { group: attr.int(g) } : {}) };
    this.nodes.push({ op: 'Conv', name: `${path}/Conv`, inputs, outputs: [`${path}_out`], attrs });
    return `${path}_out`;
  }

  /** BatchNormalization with non-trivial statistics; returns its output. */
  bn(path: string, x: string, c: number): string {
    const p = param(path);
    for (const [t, scale, offset] of [['weight', 0.2, 1], ['bias', 0.1, 0], ['running_mean', 0.2, 0], ['running_var', 0.3, 1]] as const)
      this.initializers.push(tensor(`${p}.${t}`, 'float', [c], this.rnd(c, scale, offset)));
    this.nodes.push({ op: 'BatchNormalization', name: `${path}/BatchNormalization`, inputs: [x, `${p}.weight`, `${p}.bias`, `${p}.running_mean`, `${p}.running_var`], outputs: [`${path}_out`] });
    return `${path}_out`;
  }

  /** A one-input op (Relu, Sigmoid, ...) named `${path}/${op}`; returns its output `${path}_out`. */
  act(op: string, path: string, x: string): string {
    this.nodes.push({ op, name: `${path}/${op}`, inputs: [x], outputs: [`${path}_out`] });
    return `${path}_out`;
  }
}

/** "/features/conv0" → "features.conv0". */
const param = (path: string) => path.slice(1).replace(/\//g, '.');
