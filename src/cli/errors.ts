/** One clear line for the user, a stack only with PDQUANT_DEBUG=1, and a non-zero exit. */
export function reportError(e: unknown): never {
  const msg = e instanceof Error ? e.message : String(e);
  console.error(`pdquant: error: ${msg}`);
  if (process.env.PDQUANT_DEBUG && e instanceof Error) console.error(e.stack);
  process.exit(1);
}
