/** Argument checks with the error classes and wording users can act on (STYLE.md §3). */

/** Runs a native call and rethrows its failure as `Error in <op>: <reason>`. */
export function call<T>(op: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    if (msg.startsWith('Error in ')) throw e;
    const first = msg.split('\n').find((l) => l.trim().length > 0) ?? msg;
    const Cls = e instanceof TypeError ? TypeError : e instanceof RangeError ? RangeError : Error;
    throw new Cls(`Error in ${op}: ${first}`);
  }
}

export function checkRank(op: string, what: string, shape: readonly number[], ranks: number[]): void {
  if (!ranks.includes(shape.length))
    throw new RangeError(`Error in ${op}: ${what} must be rank ${ranks.join(' or ')}, got rank ${shape.length} [${shape.join(', ')}]`);
}

export function checkInt(op: string, what: string, v: number, min = -Infinity): void {
  if (!Number.isInteger(v) || v < min) throw new RangeError(`Error in ${op}: ${what} must be an integer${min > -Infinity ? ` >= ${min}` : ''}, got ${v}`);
}

export function checkProbability(p: number): void {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`Expected a probability 0..1 for p but received ${p}`);
}
