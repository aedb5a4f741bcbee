/** A run's fingerprint (model, data, method and settings), saved with its checkpoint and its unit progress. */

/** The fields in which a saved fingerprint differs from this run's; none when it is the same run. */
export function differingFields(saved: Record<string, unknown> | undefined, current: Record<string, unknown>): string[] {
  const keys = [...new Set([...Object.keys(saved ?? {}), ...Object.keys(current)])];
  return keys.filter((k) => JSON.stringify(saved?.[k]) !== JSON.stringify(current[k]));
}

/** The refusal of something in a run folder (`what`: its checkpoint, its unit progress) saved by another run. */
export function anotherRunError(what: string, runDir: string, differing: readonly string[]): Error {
  return new Error(`The ${what} in ${runDir} belongs to another run (it differs in: ${differing.join(', ')}); start a new --run-dir`);
}
