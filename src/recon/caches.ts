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

/** capture for several values in one pass over the images. */
export function captureValues(graph: Graph, input: E.Tensor, fromValue: string, toValues: readonly string[], batch: number, hooks?: RunHooks): Map<string, E.Tensor> {
  const needed = new Set(toValues.flatMap((v) => nodesBetween(graph, [fromValue], v)));
  const nodes = graph.nodes.filter((n) => needed.has(n));
  const n = input.shape[0]!;
  const parts = new Map<string, E.Tensor[]>(toValues.map((v) => [v, []]));
  for (let s = 0; s < n; s += batch) {
    const out = E.noGrad(() =>
      E.tidy(() => {
        const x = input.slice(0, s, Math.min(n, s + batch));
        const got = execute(graph, { feeds: new Map([[fromValue, x]]), outputs: toValues.filter((v) => v !== fromValue), nodes, hooks });
        return toValues.map((v) => (v === fromValue ? x.clone() : got.get(v)!));
      }),
    );
    toValues.forEach((v, i) => parts.get(v)!.push(E.keep(out[i]!)));
  }
  return new Map(toValues.map((v) => {
    const all = E.keep(E.cat(parts.get(v)!, 0));
    E.dispose(parts.get(v)!);
    return [v, all];
  }));
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
