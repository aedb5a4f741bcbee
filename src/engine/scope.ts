/** Deterministic release of native tensors: scopes that free every temporary not returned (like tfjs's tidy). */

export interface Disposable {
  dispose(): void;
  readonly disposed: boolean;
}

const scopes: Set<Disposable>[] = [];

/** Records a new tensor in the innermost open scope (if any). */
export function track(t: Disposable): void {
  scopes[scopes.length - 1]?.add(t);
}

/**
 * Forgets a tensor disposed by hand. Only the innermost scope is looked at (where a temporary almost always
 * lives); elsewhere it stays until its scope ends, which is harmless since dispose() is idempotent. Without
 * this a long loop inside one tidy() that disposes its temporaries kept every dead wrapper in the scope's set.
 */
export function untrack(t: Disposable): void {
  scopes[scopes.length - 1]?.delete(t);
}

/** Removes a tensor from scope tracking so that it outlives every enclosing tidy(). */
export function keep<T extends Disposable>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

function collect(value: unknown, out: Set<Disposable>, depth = 0): void {
  if (value === null || typeof value !== 'object' || depth > 3) return;
  if (typeof (value as Disposable).dispose === 'function' && 'disposed' in (value as object)) {
    out.add(value as Disposable);
    return;
  }
  if (Array.isArray(value)) for (const v of value) collect(v, out, depth + 1);
  else if (value.constructor === Object) for (const v of Object.values(value)) collect(v, out, depth + 1);
}

/**
 * Runs fn and frees every tensor it created except those in its result (a tensor, or arrays /
 * plain objects of tensors), which move to the enclosing scope. Works for sync functions only.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Disposable>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    for (const t of scope) t.dispose();
    throw e;
  } finally {
    scopes.pop();
  }
  if (result instanceof Promise) throw new Error('tidy() takes a synchronous function; await inside it is not supported');
  const kept = new Set<Disposable>();
  collect(result, kept);
  const parent = scopes[scopes.length - 1];
  for (const t of scope) {
    if (kept.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}

/** Disposes every tensor found in value (a tensor, arrays or plain objects of tensors). */
export function dispose(value: unknown): void {
  const found = new Set<Disposable>();
  collect(value, found);
  for (const t of found) t.dispose();
}
