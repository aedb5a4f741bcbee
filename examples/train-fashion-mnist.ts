/**
 * Trains pdquant's bundled demo model — a small ResNet for Fashion-MNIST — on the engine and exports it as
 * ONNX the way PyTorch's exporter would (opset 13, BatchNormalization kept, module paths in node names).
 *
 * Run from the repository root (needs Debian's dataset-fashion-mnist package and the built engine):
 *
 *   npx tsc -p examples && node dist/examples/train-fashion-mnist.js
 *
 * Options: --epochs N (default 4), --seed S (default 0), --lr (peak SGD rate, default 0.1), --batch (default 128),
 * --data DIR (default /usr/share/datasets/fashion-mnist), --train-limit N (train on the first N images only, for a
 * quick smoke run), --out FILE.onnx (default examples/fashion-cnn.onnx; the JSON report goes beside it).
 * Writes examples/fashion-cnn.onnx and examples/fashion-cnn.json, and checks that onnxruntime, pdquant's executor
 * and the training forward agree on the test accuracy (exit code 1 if not). Same seed and thread count → the same
 * bytes (checked: two runs gave identical files); ~5 min on 2 cores.
 *
 * Network (input 1×28×28, normalised with mean 0.2860 / std 0.3530 after scaling to [0,1]):
 *   stem            Conv3×3(1→16) BN ReLU                                 28×28
 *   stage1/block0   BasicBlock(16→32, stride 2, 1×1 conv + BN shortcut)   14×14
 *   stage1/block1   BasicBlock(32→32, stride 1, identity shortcut)        14×14
 *   stage2/block0   BasicBlock(32→64, stride 2, 1×1 conv + BN shortcut)    7×7
 *   pool            GlobalAveragePool, Flatten
 *   fc              Gemm(64→10)
 * 91,642 parameters. Trained with SGD (momentum 0.9, weight decay 5e-4, batch 128, linear warm-up then cosine from
 * 0.1 to 0), no augmentation; the 28×28 identity block of the textbook layout was moved to 14×14: ~25 % faster on two
 * cores and no less accurate.
 */
import { renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as E from '../src/engine/index.js';
import { loadAll, makeTransform, openDataset, type Dataset, type Transform } from '../src/data/index.js';
import type { AttrValue, OnnxModel, OnnxNode, OnnxTensor } from '../src/onnx/ir.js';
import { writeOnnx } from '../src/onnx/write.js';
import { loadModel } from '../src/graph/load.js';
import { evaluateGraph, evaluateOrt } from '../src/eval/index.js';

const MEAN = 0.286;
const STD = 0.353;
const CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
const BN_EPS = 1e-5;
const BN_MOMENTUM = 0.1; // torch convention (weight of the new batch); ONNX writes 1 − this
const WEIGHT_DECAY = 5e-4;

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const { values: args } = parseArgs({
  options: {
    epochs: { type: 'string', default: '4' },
    'train-limit': { type: 'string' },
    seed: { type: 'string', default: '0' },
    lr: { type: 'string', default: '0.1' },
    batch: { type: 'string', default: '128' },
    data: { type: 'string', default: '/usr/share/datasets/fashion-mnist' },
    out: { type: 'string', default: join(root, 'examples/fashion-cnn.onnx') },
  },
});
const EPOCHS = positiveInt('epochs', args.epochs!);
const SEED = positiveInt('seed', args.seed!, 0);
const BATCH = positiveInt('batch', args.batch!);
const PEAK_LR = Number(args.lr);
const TRAIN_LIMIT = args['train-limit'] === undefined ? undefined : positiveInt('train-limit', args['train-limit']);
const OUT = resolve(args.out!);
const OUT_JSON = OUT.replace(/\.onnx$/, '') + '.json';

function positiveInt(name: string, v: string, min = 1): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new RangeError(`--${name} must be an integer ≥ ${min}, got ${v}`);
  return n;
}

// ---------------------------------------------------------------- the model

/** A conv layer without bias (as torchvision's ResNets). `qname` is the PyTorch module name, `scope` its path in node names. */
interface Conv { qname: string; scope: string; w: E.Tensor; stride: number; pad: number }
interface Bn { qname: string; scope: string; gamma: E.Tensor; beta: E.Tensor; mean: E.Tensor; var: E.Tensor }
interface Block { scope: string; conv1: Conv; bn1: Bn; conv2: Conv; bn2: Bn; down?: { conv: Conv; bn: Bn } }
interface Net { stem: { conv: Conv; bn: Bn }; blocks: Block[]; fc: { w: E.Tensor; b: E.Tensor } }

/** Kaiming-normal (fan_out, ReLU) weights as torchvision initialises ResNet convs. */
function conv(qname: string, scope: string, cin: number, cout: number, k: number, stride: number): Conv {
  const w = E.keep(E.randn([cout, cin, k, k]).mul(Math.sqrt(2 / (cout * k * k))).requiresGrad_());
  return { qname, scope, w, stride, pad: (k - 1) / 2 };
}
function bn(qname: string, scope: string, c: number): Bn {
  return {
    qname, scope,
    gamma: E.keep(E.ones([c]).requiresGrad_()),
    beta: E.keep(E.zeros([c]).requiresGrad_()),
    mean: E.keep(E.zeros([c])),
    var: E.keep(E.ones([c])),
  };
}
function block(stage: number, index: number, cin: number, cout: number, stride: number): Block {
  const q = `stage${stage}.block${index}`;
  const s = `stage${stage}/block${index}`;
  const b: Block = {
    scope: s,
    conv1: conv(`${q}.conv1`, `${s}/conv1`, cin, cout, 3, stride),
    bn1: bn(`${q}.bn1`, `${s}/bn1`, cout),
    conv2: conv(`${q}.conv2`, `${s}/conv2`, cout, cout, 3, 1),
    bn2: bn(`${q}.bn2`, `${s}/bn2`, cout),
  };
  // torchvision's downsample = nn.Sequential(conv1x1, BN): the exporter scopes its children "downsample.0/1".
  if (stride !== 1 || cin !== cout) {
    b.down = {
      conv: conv(`${q}.downsample.0`, `${s}/downsample/downsample.0`, cin, cout, 1, stride),
      bn: bn(`${q}.downsample.1`, `${s}/downsample/downsample.1`, cout),
    };
  }
  return b;
}
function makeNet(): Net {
  const bound = 1 / Math.sqrt(64); // nn.Linear's default init
  return {
    stem: { conv: conv('stem.conv', 'stem/conv', 1, 16, 3, 1), bn: bn('stem.bn', 'stem/bn', 16) },
    blocks: [block(1, 0, 16, 32, 2), block(1, 1, 32, 32, 1), block(2, 0, 32, 64, 2)],
    fc: {
      w: E.keep(E.rand([10, 64]).mul(2 * bound).sub(bound).requiresGrad_()),
      b: E.keep(E.rand([10]).mul(2 * bound).sub(bound).requiresGrad_()),
    },
  };
}

/** Trainable tensors in PyTorch's named_parameters() order, with their names. */
function parameters(net: Net): [string, E.Tensor][] {
  const out: [string, E.Tensor][] = [];
  const c = (x: Conv) => out.push([`${x.qname}.weight`, x.w]);
  const b = (x: Bn) => out.push([`${x.qname}.weight`, x.gamma], [`${x.qname}.bias`, x.beta]);
  c(net.stem.conv); b(net.stem.bn);
  for (const k of net.blocks) {
    c(k.conv1); b(k.bn1); c(k.conv2); b(k.bn2);
    if (k.down) { c(k.down.conv); b(k.down.bn); }
  }
  out.push(['fc.weight', net.fc.w], ['fc.bias', net.fc.b]);
  return out;
}

/**
 * The ops the forward pass is written in. Two implementations: the engine (computes, trains) and a tracer that
 * records the same calls as ONNX nodes, so the exported graph is by construction the network that was trained.
 * `scope` is the module path ("stage1/block0/conv1"), as PyTorch's exporter puts it into node names.
 */
interface Ops<V> {
  conv(x: V, c: Conv): V;
  bn(x: V, b: Bn): V;
  relu(scope: string, x: V): V;
  add(scope: string, a: V, b: V): V;
  globalAvgPool(scope: string, x: V): V;
  flatten(scope: string, x: V): V;
  gemm(scope: string, x: V, w: E.Tensor, b: E.Tensor): V;
}

function forward<V>(net: Net, ops: Ops<V>, x: V): V {
  let h = ops.relu('stem/relu', ops.bn(ops.conv(x, net.stem.conv), net.stem.bn));
  for (const k of net.blocks) {
    let y = ops.relu(`${k.scope}/relu1`, ops.bn(ops.conv(h, k.conv1), k.bn1));
    y = ops.bn(ops.conv(y, k.conv2), k.bn2);
    const shortcut = k.down ? ops.bn(ops.conv(h, k.down.conv), k.down.bn) : h;
    h = ops.relu(`${k.scope}/relu2`, ops.add(k.scope, y, shortcut));
  }
  return ops.gemm('fc', ops.flatten('', ops.globalAvgPool('pool', h)), net.fc.w, net.fc.b);
}

/** The engine implementation; `training` normalises BN by batch statistics and updates the running ones. */
function engineOps(training: boolean): Ops<E.Tensor> {
  return {
    conv: (x, c) => E.conv2d(x, c.w, null, { stride: c.stride, padding: c.pad }),
    bn: (x, b) => E.batchNorm(x, { weight: b.gamma, bias: b.beta, runningMean: b.mean, runningVar: b.var, eps: BN_EPS, momentum: BN_MOMENTUM }, training),
    relu: (_, x) => x.relu(),
    add: (_, a, b) => a.add(b),
    globalAvgPool: (_, x) => E.adaptiveAvgPool2d(x, 1),
    flatten: (_, x) => x.flatten(1),
    gemm: (_, x, w, b) => E.linear(x, w, b),
  };
}

/** Records the forward as ONNX nodes named like torch.onnx.export does ("/stage1/block0/conv1/Conv", value "<node>_output_0"). */
class Tracer implements Ops<string> {
  readonly nodes: OnnxNode[] = [];
  readonly initializers = new Map<string, OnnxTensor>();

  #param(name: string, t: E.Tensor): string {
    if (!this.initializers.has(name)) {
      const data = Float32Array.from(t.detach().data() as Float32Array);
      this.initializers.set(name, { name, dataType: 'float32', dims: [...t.shape], data });
    }
    return name;
  }
  #node(scope: string, opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}): string {
    const name = scope ? `/${scope}/${opType}` : `/${opType}`;
    if (this.nodes.some((n) => n.name === name)) throw new Error(`duplicate node name ${name}`);
    const output = `${name}_output_0`;
    this.nodes.push({ name, opType, domain: '', inputs, outputs: [output], attrs });
    return output;
  }

  conv(x: string, c: Conv): string {
    const [, , kh, kw] = c.w.shape as [number, number, number, number];
    return this.#node(c.scope, 'Conv', [x, this.#param(`${c.qname}.weight`, c.w)], {
      dilations: { type: 'ints', value: [1, 1] },
      group: { type: 'int', value: 1 },
      kernel_shape: { type: 'ints', value: [kh, kw] },
      pads: { type: 'ints', value: [c.pad, c.pad, c.pad, c.pad] },
      strides: { type: 'ints', value: [c.stride, c.stride] },
    });
  }
  bn(x: string, b: Bn): string {
    const p = (suffix: string, t: E.Tensor) => this.#param(`${b.qname}.${suffix}`, t);
    return this.#node(b.scope, 'BatchNormalization', [x, p('weight', b.gamma), p('bias', b.beta), p('running_mean', b.mean), p('running_var', b.var)], {
      epsilon: { type: 'float', value: BN_EPS },
      momentum: { type: 'float', value: 1 - BN_MOMENTUM },
    });
  }
  relu(scope: string, x: string): string { return this.#node(scope, 'Relu', [x]); }
  add(scope: string, a: string, b: string): string { return this.#node(scope, 'Add', [a, b]); }
  globalAvgPool(scope: string, x: string): string { return this.#node(scope, 'GlobalAveragePool', [x]); }
  flatten(scope: string, x: string): string { return this.#node(scope, 'Flatten', [x], { axis: { type: 'int', value: 1 } }); }
  gemm(scope: string, x: string, w: E.Tensor, b: E.Tensor): string {
    return this.#node(scope, 'Gemm', [x, this.#param(`${scope}.weight`, w), this.#param(`${scope}.bias`, b)], {
      alpha: { type: 'float', value: 1 },
      beta: { type: 'float', value: 1 },
      transB: { type: 'int', value: 1 },
    });
  }
}

function exportOnnx(net: Net, metadata: Record<string, string>): OnnxModel {
  const t = new Tracer();
  const out = forward(net, t, 'input');
  const last = t.nodes.at(-1)!;
  if (last.outputs[0] !== out) throw new Error('the traced output is not the last node');
  last.outputs[0] = 'logits';
  return {
    irVersion: 7, // the IR version that goes with opset 13
    opsetVersion: 13,
    producer: 'pdquant-examples',
    producerVersion: '0.1.0',
    graphName: 'main_graph',
    inputs: [{ name: 'input', elemType: 'float32', dims: ['N', 1, 28, 28] }],
    outputs: [{ name: 'logits', elemType: 'float32', dims: ['N', 10] }],
    initializers: t.initializers,
    nodes: t.nodes,
    metadata,
  };
}

// ---------------------------------------------------------------- data and training

/** mulberry32: a tiny seeded generator for the epoch shuffles (the engine's generator does the rest). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function shuffled(n: number, next: () => number): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

/** The whole split as two kept tensors: images [N,1,28,28] (normalised) and int64 labels [N]. */
async function loadSplit(ds: Dataset, transform: Transform): Promise<{ x: E.Tensor; y: E.Tensor; labels: Int32Array }> {
  const b = await loadAll(ds, transform);
  return { x: E.keep(E.tensor(b.data, b.shape)), y: E.keep(E.int64(b.labels)), labels: b.labels };
}

/** Top-1 hits of the training code's own forward (eval mode) over a split. */
function countHits(net: Net, x: E.Tensor, labels: Int32Array, batch = 500): number {
  const ops = engineOps(false);
  let hits = 0;
  for (let s = 0; s < labels.length; s += batch) {
    const pred = E.tidy(() => E.noGrad(() => forward(net, ops, x.slice(0, s, s + batch)).argmax(1)));
    const p = pred.toArray();
    pred.dispose();
    p.forEach((c, i) => (hits += c === labels[s + i] ? 1 : 0));
  }
  return hits;
}

function writeJson(path: string, value: unknown): void {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n');
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

async function main(): Promise<void> {
  const info = E.engineInfo();
  console.log(`engine: LibTorch ${info.torch}, ${info.threads} threads; epochs ${EPOCHS}, batch ${BATCH}, SGD momentum 0.9, peak lr ${PEAK_LR}, seed ${SEED}`);
  const transform = makeTransform('mnist', { mean: [MEAN], std: [STD] });
  let t0 = performance.now();
  const trainDs = await openDataset(args.data!, { split: 'train', limit: TRAIN_LIMIT });
  const testDs = await openDataset(args.data!, { split: 'test' });
  const train = await loadSplit(trainDs, transform);
  const test = await loadSplit(testDs, transform);
  console.log(`data: ${trainDs.size} train / ${testDs.size} test images loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  E.manualSeed(SEED);
  const net = makeNet();
  const params = parameters(net);
  const paramCount = params.reduce((a, [, t]) => a + t.size, 0);
  console.log(`model: ${paramCount} parameters`);

  const group = { params: params.map(([, t]) => t), lr: PEAK_LR };
  const opt = new E.SGD([group], { momentum: 0.9, weightDecay: WEIGHT_DECAY });
  const stepsPerEpoch = Math.ceil(trainDs.size / BATCH);
  const totalSteps = EPOCHS * stepsPerEpoch;
  const warmup = Math.min(200, Math.floor(totalSteps / 10));
  // Linear warm-up, then cosine decay to 0.
  const lrAt = (step: number) =>
    step < warmup ? (PEAK_LR * (step + 1)) / warmup : (PEAK_LR * (1 + Math.cos((Math.PI * (step - warmup)) / (totalSteps - warmup)))) / 2;
  const ops = engineOps(true);
  const shuffle = rng(SEED);
  const epochLoss: number[] = [];
  let step = 0;
  t0 = performance.now();
  for (let epoch = 1; epoch <= EPOCHS; epoch++) {
    const te = performance.now();
    const order = shuffled(trainDs.size, shuffle);
    let lossSum = 0;
    let hits = 0;
    for (let s = 0; s < order.length; s += BATCH) {
      group.lr = lrAt(step++);
      const [loss, correct] = E.tidy(() => {
        // No augmentation: with a few epochs, random flips cost ~1 point of test accuracy (measured).
        const idx = E.int64(order.slice(s, s + BATCH));
        const xb = train.x.indexSelect(0, idx);
        const yb = train.y.indexSelect(0, idx);
        const logits = forward(net, ops, xb);
        const l = E.crossEntropy(logits, yb);
        opt.zeroGrad();
        l.backward();
        opt.step();
        return [l.item() * yb.shape[0]!, logits.argmax(1).eq(yb).sum().item()];
      });
      lossSum += loss;
      hits += correct;
    }
    epochLoss.push(lossSum / order.length);
    console.log(
      `epoch ${epoch}/${EPOCHS}: loss ${(lossSum / order.length).toFixed(4)}, train top-1 ${((100 * hits) / order.length).toFixed(2)} %, ` +
        `${((performance.now() - te) / 1000).toFixed(1)} s`,
    );
  }
  const trainedSeconds = (performance.now() - t0) / 1000;
  opt.dispose();
  console.log(`trained in ${trainedSeconds.toFixed(1)} s`);

  const ownHits = countHits(net, test.x, test.labels);
  const ownTop1 = (100 * ownHits) / test.labels.length;
  console.log(`training forward (eval mode): top-1 ${ownTop1.toFixed(2)} % (${ownHits}/${test.labels.length})`);

  const metadata = {
    preprocess_mean: String(MEAN),
    preprocess_std: String(STD),
    preprocess: 'scale to [0,1], then (x - mean) / std',
    dataset: 'fashion-mnist',
    classes: JSON.stringify(CLASSES),
  };
  writeOnnx(exportOnnx(net, metadata), OUT);
  console.log(`wrote ${OUT} (${statSync(OUT).size} bytes)`);

  const evalOpts = { transform, batchSize: 500 };
  const ort = await evaluateOrt(OUT, testDs, evalOpts);
  const loaded = loadModel(OUT);
  const eng = await evaluateGraph(loaded.fp, testDs, evalOpts);
  const engFolded = await evaluateGraph(loaded.folded, testDs, evalOpts);
  console.log(`onnxruntime:               top-1 ${ort.top1.toFixed(2)} %, top-5 ${ort.top5.toFixed(2)} % (n ${ort.n})`);
  console.log(`pdquant executor (BN kept): top-1 ${eng.top1.toFixed(2)} %, top-5 ${eng.top5.toFixed(2)} %`);
  console.log(`pdquant executor (BN folded): top-1 ${engFolded.top1.toFixed(2)} %`);
  console.log('units:');
  for (const u of loaded.units) console.log(`  ${u.kind.padEnd(5)} ${u.name.padEnd(10)} ${u.input} → ${u.output}  [${u.nodes.map((n) => n.name).join(', ')}]`);

  const problems: string[] = [];
  if (ort.top1 !== eng.top1) problems.push(`onnxruntime top-1 ${ort.top1} ≠ executor top-1 ${eng.top1}`);
  if (ort.top1 !== ownTop1) problems.push(`onnxruntime top-1 ${ort.top1} ≠ training forward top-1 ${ownTop1}`);
  const kinds = loaded.units.map((u) => u.kind).join(',');
  const expectedKinds = ['layer', ...net.blocks.map(() => 'block'), 'layer'].join(',');
  if (kinds !== expectedKinds) problems.push(`units are [${kinds}], expected [${expectedKinds}] (stem, one per block, fc)`);
  if (loaded.units[0]?.nodes[0]?.name !== '/stem/conv/Conv') problems.push('the first unit does not start at /stem/conv/Conv');
  if (loaded.units.at(-1)?.nodes.at(-1)?.name !== '/fc/Gemm') problems.push('the last unit does not end at /fc/Gemm');
  net.blocks.forEach((k, i) => {
    const u = loaded.units[i + 1];
    if (!u?.nodes.some((n) => n.name === `/${k.scope}/Add`) || u.nodes.at(-1)?.name !== `/${k.scope}/relu2/Relu`)
      problems.push(`unit ${i + 1} is not block ${k.scope} ending in its Add + ReLU`);
  });

  writeJson(OUT_JSON, {
    model: OUT.split('/').pop(),
    fp_top1: ort.top1,
    fp_top1_engine: eng.top1,
    fp_top1_training_forward: ownTop1,
    top5: ort.top5,
    n: ort.n,
    epochs: EPOCHS,
    epoch_loss: epochLoss.map((l) => Number(l.toFixed(5))),
    seed: SEED,
    params: paramCount,
    trained_seconds: Number(trainedSeconds.toFixed(1)),
    threads: info.threads,
    optimizer: { name: 'SGD', momentum: 0.9, weight_decay: WEIGHT_DECAY, peak_lr: PEAK_LR, schedule: `linear warm-up ${warmup} steps, cosine to 0`, batch: BATCH, augmentation: 'none' },
    preprocessing: { mean: MEAN, std: STD },
    architecture:
      'stem Conv3x3(1→16)+BN+ReLU; stage1.block0 BasicBlock 16→32 s2 (1x1 conv+BN downsample); stage1.block1 BasicBlock 32→32 s1 (identity); ' +
      'stage2.block0 BasicBlock 32→64 s2 (1x1 conv+BN downsample); GlobalAveragePool; Flatten; Gemm(64→10)',
    units: loaded.units.map((u) => ({ name: u.name, kind: u.kind, first: u.nodes[0]!.name, last: u.nodes.at(-1)!.name })),
    torch: info.torch,
  });
  console.log(`wrote ${OUT_JSON}`);
  loaded.fp.dispose();
  loaded.folded.dispose();
  if (problems.length) {
    console.error(`CHECKS FAILED:\n  ${problems.join('\n  ')}`);
    process.exitCode = 1;
  } else {
    console.log('checks passed: onnxruntime, executor and training forward agree; units are stem + blocks + fc');
  }
}

await main();
