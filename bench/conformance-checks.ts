/** The conformance table: each entry one accuracy on the shared resnet20 / CIFAR-10 with its tolerance. */
import { shared } from './shared.js';
import { loadModel } from '../src/graph/load.js';
import { evaluateGraph, evaluateOrt } from '../src/eval/index.js';
import { openDataset, makeTransform } from '../src/data/index.js';
import { quantize } from '../src/methods/pipeline.js';
import { QuantizedModel } from '../src/quant/qmodel.js';
import { execute } from '../src/graph/index.js';
import * as E from '../src/engine/index.js';
import { tempDir } from '../test/helpers/temp-dir.js';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { encodeOnnx, readOnnx } from '../src/onnx/index.js';

export interface Check {
  name: string;
  expected: number;
  tolerance: number;
  run(): Promise<{ value: number; note?: string }>;
}

// The exported files go to a folder of this run, removed when it exits.
const outDir = tempDir('pdquant-conformance-');
const transform = makeTransform('cifar');
const opts = { transform, batchSize: 200 };

/**
 * top-1 of resnet20 quantized by a method on calib-1024 and evaluated on the 10,000 test images. With `exportTo`, the QDQ
 * file is written and checked: the pipeline fails when a quantizer differs layer by layer, and this check when
 * onnxruntime's top-1 differs from the simulation's by more than `ortGap` points (the pipeline only warns where every
 * quantizer matched).
 */
async function quantizedTop1(method: string, w: number, a: number, recon?: Record<string, number>, exportTo?: string, int8Kernels = false, ortGap = 0.05): Promise<{ value: number; note: string }> {
  const { record, qmodel, loaded } = await quantize(
    {
      model: shared.resnet20, calib: shared.calib1024, method, wBits: w, aBits: a, numSamples: 1024, seed: 1005, transform, eightBitHeadStem: true,
      eval: shared.cifarTest, evalBatch: 200, recon, output: exportTo, int8Kernels,
    },
    'conformance',
  );
  // The saved parameters must reproduce the accuracy in a fresh simulation (what `eval --qparams` does).
  const copy = QuantizedModel.fromQParams(loaded.folded, loaded.units, JSON.parse(JSON.stringify(qmodel.state())));
  const again = await evaluateGraph(loaded.folded, await openDataset(shared.cifarTest), { ...opts, hooks: copy.hooks({ weights: true, acts: true }) });
  if (again.top1 !== record.top1) throw new Error(`saved quantization parameters give ${again.top1} instead of ${record.top1}`);
  const ort = record.export?.ort_top1 !== undefined ? `, exported QDQ file in onnxruntime ${record.export.ort_top1.toFixed(2)}` : '';
  if (exportTo && record.export?.ort_top1 === undefined) throw new Error('the export was not evaluated in onnxruntime');
  if (exportTo && Math.abs(record.export!.ort_top1! - record.top1!) > ortGap + 1e-9)
    throw new Error(`onnxruntime gives ${record.export!.ort_top1!.toFixed(2)} against the simulation's ${record.top1!.toFixed(2)}, more than ${ortGap} points apart`);
  return { value: record.top1!, note: `(FP ${record.fp_top1!.toFixed(2)}, qparams reload identical${ort})` };
}

// Reference implementation on exactly this setup (PDQUANT.md, issue 4).
const mseReference: [number, number, number][] = [
  [8, 8, 81.16],
  [4, 4, 77.47],
  [4, 2, 43.8],
  [2, 4, 16.31],
  [2, 2, 13.97],
];

/** Units per shared model in the reference's partition (../shared/README.md). */
const UNITS: Record<string, number> = { resnet18: 10, mobilenet_v2_w050: 20, mnasnet0_5: 21, regnet_x_400mf: 24, resnet20_cifar10: 11 };

/**
 * Each shared model: our executor (BN kept and BN folded) against onnxruntime on 8 random inputs — the check's value is
 * max|Δlogit| / max|logit| (must be ≤ 1e-3) — and the unit count of the partition against the reference's table.
 */
function modelChecks(): Check[] {
  return Object.entries(UNITS).map(([name, units]) => ({
    name: `${name}: executor vs onnxruntime (relative max |Δlogit|), ${units} units`,
    expected: 0,
    tolerance: 1e-3,
    async run() {
      const path = name === 'resnet20_cifar10' ? shared.resnet20 : shared.torchvision(name);
      const m = loadModel(path);
      if (m.units.length !== units) throw new Error(`${m.units.length} units (${m.units.map((u) => u.name).join(', ')}), expected ${units}`);
      const dims = (m.fp.input.dims ?? []).map((d) => (typeof d === 'number' ? d : 8));
      E.manualSeed(0);
      const x = E.keep(E.randn(dims));
      const ort = await import('onnxruntime-node');
      const session = await ort.InferenceSession.create(readFileSync(path));
      const ref = Object.values(await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', x.data() as Float32Array, dims) }))[0]!.data as Float32Array;
      await session.release();
      let worst = 0;
      const maxLogit = ref.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
      for (const g of [m.fp, m.folded]) {
        const y = E.noGrad(() => E.tidy(() => execute(g, { feeds: new Map([[g.input.name, x]]), outputs: [g.output.name] }).get(g.output.name)!));
        const v = y.data() as Float32Array;
        y.dispose();
        for (let i = 0; i < v.length; i++) worst = Math.max(worst, Math.abs(v[i]! - ref[i]!) / maxLogit);
      }
      x.dispose();
      return { value: worst, note: `(BN kept and folded; units ${m.units.map((u) => u.name).join(' ')})` };
    },
  }));
}

/**
 * Units found from the graph alone, for exporters that write no module paths into node names: every node renamed
 * node_<Op>_<k>. The reference's counts, but MNasNet's stem dw conv and linear projection (layers.3, layers.6: two
 * layer units there) make one bottleneck block here.
 */
const STRUCTURAL_UNITS: Record<string, number> = { resnet18: 10, mobilenet_v2_w050: 20, mnasnet0_5: 20, regnet_x_400mf: 24 };

/**
 * --int8-kernels on the torchvision models (random weights; structure only): the convolutions and residual additions
 * onnxruntime still runs in float after fusing the export. MNASNet's nearly tied random logits change class between
 * the simulation and onnxruntime on many probe images; the export passes because each quantizer matches (see the README).
 */
const int8KernelsCheck: Check = {
  name: '--int8-kernels W8A8 on resnet18, mobilenet_v2_w050, regnet_x_400mf, mnasnet0_5: convolutions and residual additions onnxruntime runs in float',
  expected: 0,
  tolerance: 0,
  async run() {
    const notes: string[] = [];
    let float = 0;
    for (const name of ['resnet18', 'mobilenet_v2_w050', 'regnet_x_400mf', 'mnasnet0_5']) {
      const { record } = await quantize(
        {
          model: shared.torchvision(name), calib: shared.calib1024, method: 'mse', wBits: 8, aBits: 8, numSamples: 16, seed: 1005,
          transform: makeTransform('imagenet'), eightBitHeadStem: true, evalBatch: 16, int8Kernels: true,
          output: join(outDir, `${name}-int8-kernels.onnx`),
        },
        'conformance',
      );
      const k = record.export!.integer_kernels!;
      float += k.convs - k.integerConvs + k.adds - k.integerAdds;
      notes.push(`${name} ${k.integerConvs}/${k.convs} convolutions, ${k.integerAdds}/${k.adds} additions`);
    }
    return { value: float, note: `(${notes.join('; ')})` };
  },
};

const structuralCheck: Check = {
  name: 'units without module paths in node names: models whose count differs from the table',
  expected: 0,
  tolerance: 0,
  async run() {
    const found = Object.entries(STRUCTURAL_UNITS).map(([name, want]) => {
      const model = readOnnx(shared.torchvision(name));
      const renamed = { ...model, nodes: model.nodes.map((n, k) => ({ ...n, name: `node_${n.opType}_${k}` })) };
      const got = loadModel(encodeOnnx(renamed)).units.length;
      return { name, want, got };
    });
    return { value: found.filter((f) => f.got !== f.want).length, note: `(${found.map((f) => `${f.name} ${f.got}`).join(', ')})` };
  },
};

export const checks: Check[] = [
  {
    name: 'resnet20 FP top-1 (engine)',
    expected: 81.03,
    tolerance: 0.001,
    async run() {
      const m = loadModel(shared.resnet20);
      return { value: (await evaluateGraph(m.fp, await openDataset(shared.cifarTest), opts)).top1 };
    },
  },
  {
    name: 'resnet20 FP top-1 (onnxruntime)',
    expected: 81.03,
    tolerance: 0.001,
    async run() {
      return { value: (await evaluateOrt(shared.resnet20, await openDataset(shared.cifarTest), opts)).top1 };
    },
  },
  {
    // A short PD-Quant run (100 iterations, 20 DC steps per unit): far below the 2000-iteration accuracy, but a broken
    // method stays at the scale-only level (mse W4A2: 43.80) or below.
    name: 'resnet20 pdquant W4A2 smoke (100 iterations) top-1',
    expected: 68,
    tolerance: 10,
    run: () => quantizedTop1('pdquant', 4, 2, { iters: 100, dcSteps: 20 }),
  },
  ...mseReference.map(([w, a, ref]): Check => ({
    name: `resnet20 mse W${w}A${a} top-1`,
    expected: ref,
    tolerance: 0.3,
    // W4A4 and W2A2 also export the QDQ file and check it in onnxruntime (issue: equal within 0.05 points).
    run: () => quantizedTop1('mse', w, a, undefined, (w === 4 && a === 4) || (w === 2 && a === 2) ? join(outDir, `w${w}a${a}.onnx`) : undefined),
  })),
  {
    // Weight-only (--a 32): no activation quantizer anywhere, the export verified in onnxruntime. The reference has no
    // weight-only number for this setup; 80.67 is ours (the 4-bit weights alone cost 0.36 points of 81.03).
    name: 'resnet20 mse W4A32 (weight-only) top-1',
    expected: 80.67,
    tolerance: 0.3,
    run: () => quantizedTop1('mse', 4, 32, undefined, join(outDir, 'w4a32.onnx')),
  },
  {
    // Activation-only (--w 32): float weights, exported as exact INT32 codes that onnxruntime does not round to 8 bits.
    // No reference number either; 77.68 is ours. onnxruntime gives 77.75: every quantizer matches layer by layer, and
    // float sums in another order (more of them differ with float weights) move 7 of the 10,000 classes.
    name: 'resnet20 mse W32A4 (activation-only) top-1',
    expected: 77.68,
    tolerance: 0.3,
    run: () => quantizedTop1('mse', 32, 4, undefined, join(outDir, 'w32a4.onnx'), false, 0.1),
  },
  {
    // The placement and grids for onnxruntime's integer kernels: its extra 8-bit quantizers (image, residual branches)
    // cost nothing measurable at W8A8, and onnxruntime, running QLinearConv/QLinearAdd, must give the simulated top-1
    // within 0.15. The integer kernels sum exactly and the simulation in float32: on the machine of the earlier runs
    // both gave 81.13; on an AVX-only EPYC the simulation gives 81.05 (7798d5a too) and onnxruntime 81.13.
    name: 'resnet20 mse W8A8 --int8-kernels top-1 (export run with integer kernels)',
    expected: 81.16,
    tolerance: 0.3,
    run: () => quantizedTop1('mse', 8, 8, undefined, join(outDir, 'resnet20-int8-kernels.onnx'), true, 0.15),
  },
  ...modelChecks(),
  int8KernelsCheck,
  structuralCheck,
];

