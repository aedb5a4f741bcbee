/** An error in the user's data or options; its message names the file or folder at fault. */
export class DataError extends Error {
  override name = 'DataError';
}

/** The message of any thrown value. */
export function reason(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
