/** Calibration caches: a value of the network for every calibration image, computed in batches without gradients. */
import * as E from '../engine/index.js';
import { execute, nodesBetween, type Graph, type RunHooks, type Unit } from '../graph/index.js';

/** Bytes held by a cache tensor (float32). */
export function cacheBytes(t: E.Tensor): number {
  return t.size * 4;
}

/**
 * Runs `graph` from `fromValue` (rows of `input`) to `toValue` and stacks the results: [N, ...].
 * The hooks decide what is quantized on the way.
 */
export function capture(graph: Graph, input: E.Tensor, fromValue: string, toValue: string, batch: number, hooks?: RunHooks): E.Tensor {
  if (fromValue === toValue) return E.keep(E.noGrad(() => input.clone()));
  return captureValues(graph, input, fromValue, [toValue], batch, hooks).get(toValue)!;
}

/**
 * capture for several values in one pass over the images. Each batch's result is copied into its rows of a tensor
 * allocated once, in the batch's own memory layout: stacking the batches at the end held every value twice
 * (ResNet-18's stem output at 1024 images is 3.3 GB).
 */
export function captureValues(graph: Graph, input: E.Tensor, fromValue: string, toValues: readonly string[], batch: number, hooks?: RunHooks): Map<string, E.Tensor> {
  const needed = new Set(toValues.flatMap((v) => nodesBetween(graph, [fromValue], v)));
  const nodes = graph.nodes.filter((n) => needed.has(n));
  const n = input.shape[0]!;
  const all = new Map<string, E.Tensor>();
  try {
    for (let s = 0; s < n; s += batch) {
      const e = Math.min(n, s + batch);
      E.noGrad(() =>
        E.tidy(() => {
          const x = input.slice(0, s, e);
          const got = execute(graph, { feeds: new Map([[fromValue, x]]), outputs: toValues.filter((v) => v !== fromValue), nodes, hooks });
          for (const v of toValues) {
            const part = v === fromValue ? x : got.get(v)!;
            if (!all.has(v)) all.set(v, E.keep(rowsLike(part, n)));
            all.get(v)!.slice(0, s, e).assign(part);
          }
        }),
      );
    }
  } catch (err) {
    E.dispose([...all.values()]);
    throw err;
  }
  return all;
}

/** A zero tensor of `rows` rows, otherwise shaped, typed and laid out in memory as `part` (contiguous or channels-last). */
function rowsLike(part: E.Tensor, rows: number): E.Tensor {
  const shape = [rows, ...part.shape.slice(1)];
  if (part.rank !== 4 || part.layout !== 'channels-last') return E.zeros(shape, { dtype: part.dtype, device: part.device });
  const [, c, h, w] = shape as [number, number, number, number];
  return E.zeros([rows, h, w, c], { dtype: part.dtype, device: part.device }).permute([0, 3, 1, 2]);
}

/**
 * Bytes a unit's calibration caches take per calibration image: its input on the quantized network and on the FP
 * network, and its FP output (float32), from value shapes at batch 1. DC's corrected input, where DC runs on this
 * thread, adds one more input's worth.
 */
export function unitCacheBytesPerImage(unit: Unit, shapes: ReadonlyMap<string, readonly number[]>): number | undefined {
  const size = (v: string) => shapes.get(v)?.reduce((a, b) => a * b, 1);
  const input = size(unit.input), output = size(unit.output);
  return input === undefined || output === undefined ? undefined : 4 * (2 * input + output);
}
