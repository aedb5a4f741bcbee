/**
 * Engine benchmark: a 3×3 convolution layer (forward, forward+backward) in GFLOP/s, a 1×1 convolution of few
 * images on one thread (forward+backward), a classifier's linear layer (forward+backward), and the per-call cost
 * of a tiny op (the fixed overhead of the JS → N-API → LibTorch path).
 */
import { platform, arch, loadavg } from 'node:os';
import {
  tensor, randn, conv2d, linear, tidy, keep, dispose, noGrad, manualSeed, engineInfo, liveTensors, setThreads,
} from '../src/engine/index.js';
import { native } from '../src/engine/native.js';
import type { BenchResult } from './run.js';

const CONV = { N: 32, Cin: 128, Cout: 128, H: 28, W: 28, k: 3, padding: 1 };
const WARMUP = 2;
const RUNS = 7;
const TINY_CALLS = 10_000;
const TINY_BATCHES = 15;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const seconds = (fn: () => void): number => {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
};
const round = (v: number, digits = 3): number => Number(v.toPrecision(digits + 2));

/** Wall times of RUNS calls after WARMUP, and the share of `threads` cores the process got meanwhile. */
function timeRuns(fn: () => void, threads: number): { times: number[]; cpuShare: number; cpuSecondsPerRun: number } {
  for (let i = 0; i < WARMUP; i++) fn();
  const cpu0 = process.cpuUsage();
  const times = Array.from({ length: RUNS }, () => seconds(fn));
  const cpu = process.cpuUsage(cpu0);
  const wall = times.reduce((a, b) => a + b, 0);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  return { times, cpuShare: cpuSeconds / (wall * threads), cpuSecondsPerRun: cpuSeconds / RUNS };
}

function convBench(): BenchResult {
  const { N, Cin, Cout, H, W, k, padding } = CONV;
  manualSeed(0);
  const x = keep(randn([N, Cin, H, W]).requiresGrad_());
  const w = keep(tidy(() => randn([Cout, Cin, k, k]).mul(Math.sqrt(2 / (Cin * k * k)))).requiresGrad_());
  try {
    // One multiply-add = 2 FLOPs; output H×W equals input H×W (stride 1, padding 1).
    const fwdFlops = 2 * N * Cout * H * W * Cin * k * k;
    const fwdBwdFlops = 3 * fwdFlops;

    const threads = engineInfo().threads;
    const fwd = timeRuns(() => tidy(() => noGrad(() => void conv2d(x, w, null, { padding }))), threads);
    const fwdBwd = timeRuns(() =>
      tidy(() => {
        x.zeroGrad();
        w.zeroGrad();
        conv2d(x, w, null, { padding }).sum().backward();
      }),
      threads,
    );
    const fwdTimes = fwd.times, fwdBwdTimes = fwdBwd.times;
    const fwdS = median(fwdTimes);
    const fwdBwdS = median(fwdBwdTimes);
    return {
      conv3x3_fwd_bwd_gflops: round(fwdBwdFlops / fwdBwdS / 1e9),
      conv3x3_fwd_gflops: round(fwdFlops / fwdS / 1e9),
      conv: {
        shape: { input: [N, Cin, H, W], weight: [Cout, Cin, k, k], padding, stride: 1, dtype: 'float32' },
        flops_convention:
          'forward = 2·N·Cout·Hout·Wout·Cin·kh·kw (a multiply-add counts 2); forward+backward = 3 × forward ' +
          '(grad of input and grad of weight each cost one forward); input and weight both require grad; loss = sum(output)',
        forward_flops: fwdFlops,
        forward_backward_flops: fwdBwdFlops,
        warmup_runs: WARMUP,
        timed_runs: RUNS,
        forward_median_s: round(fwdS, 4),
        forward_backward_median_s: round(fwdBwdS, 4),
        forward_times_s: fwdTimes.map((t) => round(t, 4)),
        forward_backward_times_s: fwdBwdTimes.map((t) => round(t, 4)),
        // CPU time / (wall time × threads) over the timed runs: well under 1 means other processes took the cores
        // (OpenMP spin-waiting counts as CPU time, so this over-states the useful share a little).
        cpu_share_forward: round(fwd.cpuShare, 2),
        cpu_share_forward_backward: round(fwdBwd.cpuShare, 2),
        // FLOPs per CPU-second: the rate one fully available core sustains (about load-independent)
        forward_gflops_per_core: round(fwdFlops / fwd.cpuSecondsPerRun / 1e9),
        forward_backward_gflops_per_core: round(fwdBwdFlops / fwdBwd.cpuSecondsPerRun / 1e9),
      },
    };
  } finally {
    dispose([x, w]);
  }
}

/**
 * Forward+backward of `step` with one of the addon's kernel reroutes (ops.cc) on, and off so that LibTorch chooses the
 * kernel; `reroute` is the addon's switch, set back afterwards. The result's fields, and the rerouted GFLOP/s.
 */
function reroutedAndLibtorch(reroute: (on: boolean) => boolean, step: () => void, flops: number, threads: number) {
  const timed = (on: boolean) => {
    const before = reroute(on);
    try {
      return timeRuns(() => tidy(step), threads).times;
    } finally {
      reroute(before);
    }
  };
  const ours = timed(true), libtorch = timed(false);
  const [s, sLibtorch] = [median(ours), median(libtorch)];
  return {
    gflops: round(flops / s / 1e9),
    fields: {
      forward_backward_flops: flops,
      forward_backward_median_s: round(s, 4),
      forward_backward_times_s: ours.map((t) => round(t, 4)),
      libtorch_kernel_gflops: round(flops / sLibtorch / 1e9),
      libtorch_kernel_median_s: round(sLibtorch, 4),
      libtorch_kernel_times_s: libtorch.map((t) => round(t, 4)),
    },
  };
}

/**
 * A 1×1 convolution of 8 images on one intra-op thread (EfficientNet's [8, 960, 14, 14] → 160), forward and backward:
 * the case LibTorch 1.13 would send to its im2col + BLAS kernel, which the addon runs on oneDNN instead (ops.cc).
 */
function pointwiseBench(): BenchResult {
  const P = { N: 8, Cin: 960, Cout: 160, H: 14, W: 14 };
  const threads = engineInfo().threads;
  manualSeed(0);
  const x = keep(tidy(() => randn([P.N, P.Cin, P.H, P.W]).channelsLast()).requiresGrad_());
  const w = keep(tidy(() => randn([P.Cout, P.Cin, 1, 1]).mul(Math.sqrt(2 / P.Cin))).requiresGrad_());
  setThreads(1);
  try {
    const fwdBwdFlops = 3 * 2 * P.N * P.Cout * P.H * P.W * P.Cin;
    const step = () => {
      x.zeroGrad();
      w.zeroGrad();
      conv2d(x, w).sum().backward();
    };
    // libtorch_kernel_*: the same convolution where LibTorch chooses the kernel (im2col + BLAS).
    const r = reroutedAndLibtorch((on) => native.setPointwiseAsPixels(on), step, fwdBwdFlops, 1);
    return {
      pointwise_1thread_fwd_bwd_gflops: r.gflops,
      pointwise: {
        shape: { input: [P.N, P.Cin, P.H, P.W], weight: [P.Cout, P.Cin, 1, 1], layout: 'channels-last', dtype: 'float32' },
        threads: 1,
        ...r.fields,
      },
    };
  } finally {
    setThreads(threads);
    dispose([x, w]);
  }
}

/**
 * A classifier at the reconstruction's batch (ResNet-18's [32, 512] → 1000), forward and backward, on every thread:
 * the matrix product LibTorch runs on the BLAS it was built with, which the addon runs as a 1×1 convolution on oneDNN
 * where that BLAS is the generic one (ops.cc).
 */
function linearBench(): BenchResult {
  const P = { N: 32, In: 512, Out: 1000 };
  const threads = engineInfo().threads;
  manualSeed(0);
  const x = keep(randn([P.N, P.In]).requiresGrad_());
  const w = keep(tidy(() => randn([P.Out, P.In]).mul(Math.sqrt(1 / P.In))).requiresGrad_());
  const b = keep(randn([P.Out]).requiresGrad_());
  try {
    const reroutedByDefault = native.setLinearAsPointwise(true);
    native.setLinearAsPointwise(reroutedByDefault);
    const step = () => {
      for (const p of [x, w, b]) p.zeroGrad();
      linear(x, w, b).sum().backward();
    };
    // libtorch_kernel_*: the same layer on LibTorch's matrix product.
    const r = reroutedAndLibtorch((on) => native.setLinearAsPointwise(on), step, 3 * 2 * P.N * P.Out * P.In, threads);
    return {
      linear_fwd_bwd_gflops: r.gflops,
      linear: {
        shape: { input: [P.N, P.In], weight: [P.Out, P.In], bias: true, dtype: 'float32' },
        threads,
        // false where LibTorch was built with MKL or OpenBLAS: linear layers then keep its matrix product
        rerouted_by_default: reroutedByDefault,
        ...r.fields,
      },
    };
  } finally {
    dispose([x, w, b]);
  }
}

type Stats = { median: number; min: number; max: number };

/**
 * µs per call of each variant: one warm-up batch each, then TINY_BATCHES rounds in which every variant runs one
 * batch of TINY_CALLS calls (interleaved, so that a load change on the machine hits all variants alike).
 */
function perCall(variants: (() => void)[]): Stats[] {
  for (const v of variants) v();
  const us: number[][] = variants.map(() => []);
  for (let b = 0; b < TINY_BATCHES; b++) variants.forEach((v, k) => us[k]!.push((seconds(v) * 1e6) / TINY_CALLS));
  return us.map((xs) => ({ median: round(median(xs)), min: round(Math.min(...xs)), max: round(Math.max(...xs)) }));
}

function tinyOpBench(): BenchResult {
  const a = keep(tensor([1, 2, 3, 4]));
  const b = keep(tensor([0.5, 0.25, 2, -1]));
  try {
    if (native.binaryNames[0] !== 'add') throw new Error('binary op 0 is not add');
    const live = liveTensors();
    const ha = a.handle, hb = b.handle;
    const [full, nativeOnly, roundTrip] = perCall([
      // The measured path: Tensor.add inside tidy, each result disposed at once.
      () =>
        tidy(() => {
          for (let i = 0; i < TINY_CALLS; i++) a.add(b).dispose();
        }),
      // Breakdown: the same op straight through the addon (no Tensor object, no tidy, no call() wrapper) ...
      () => {
        for (let i = 0; i < TINY_CALLS; i++) native.free(native.binary(0, ha, hb));
      },
      // ... and an addon call that does no tensor work (the N-API round trip alone).
      () => {
        for (let i = 0; i < TINY_CALLS; i++) native.liveCount();
      },
    ]);
    if (liveTensors() !== live) throw new Error(`tiny-op benchmark leaked ${liveTensors() - live} tensors`);
    return {
      tiny_op_us: full!.median,
      tiny_op: {
        op: 'a.add(b) on two float32 [4] tensors inside tidy(), result disposed each call',
        calls_per_batch: TINY_CALLS,
        batches: TINY_BATCHES,
        statistic: 'median over batches of the mean µs per call',
        median_us: full!.median,
        min_us: full!.min,
        max_us: full!.max,
        // from the fastest batch of each variant (the least disturbed by other processes)
        breakdown_us: {
          total: full!.min,
          addon_add_and_free: nativeOnly!.min,
          js_wrapper: round(full!.min - nativeOnly!.min),
          napi_round_trip: roundTrip!.min,
        },
      },
    };
  } finally {
    dispose([a, b]);
  }
}

export async function run(): Promise<BenchResult> {
  const info = engineInfo();
  const loadBefore = loadavg()[0]!;
  const conv = convBench();
  const pointwise = pointwiseBench();
  const dense = linearBench();
  const tiny = tinyOpBench();
  return {
    date: new Date().toISOString(),
    ...conv,
    ...pointwise,
    ...dense,
    ...tiny,
    targets: { conv3x3_fwd_bwd_gflops: 130, tiny_op_us_max: 10 },
    env: {
      threads: info.threads,
      torch: info.torch,
      cuda: info.cuda,
      blas: info.blas,
      node: process.version,
      // The CPU, its cores and instruction sets are in the file's `machine`, which bench/run.ts writes for every bench.
      platform: `${platform()}-${arch()}`,
      // other processes competing for the cores depress the numbers; the 1-minute load average before and after
      loadavg_1m: [round(loadBefore, 2), round(loadavg()[0]!, 2)],
    },
  };
}
