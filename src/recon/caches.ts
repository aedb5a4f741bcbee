/** Calibration caches: a value of the network for every calibration image, computed in batches without gradients. */
import * as E from '../engine/index.js';
import { execute, nodesBetween, type Graph, type RunHooks } from '../graph/index.js';

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
  const nodes = nodesBetween(graph, [fromValue], toValue);
  const n = input.shape[0]!;
  const parts: E.Tensor[] = [];
  for (let s = 0; s < n; s += batch) {
    parts.push(
      E.keep(
        E.noGrad(() =>
          E.tidy(() => {
            const x = input.slice(0, s, Math.min(n, s + batch));
            return execute(graph, { feeds: new Map([[fromValue, x]]), outputs: [toValue], nodes, hooks }).get(toValue)!;
          }),
        ),
      ),
    );
  }
  const all = E.keep(E.cat(parts, 0));
  E.dispose(parts);
  return all;
}
