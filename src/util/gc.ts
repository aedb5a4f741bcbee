/**
 * A full garbage collection on request. Large typed arrays (a scale search's copy and summary of an activation take
 * GBs at 256 images of 224×224) are released only when V8 collects them, which it may put off while the engine
 * allocates the next GBs outside its heap. Uses V8's gc function, exposed at run time as jest's leak detector does.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gc: (() => void) | null | undefined;

export function collectGarbage(): void {
  if (gc === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      gc = runInNewContext('gc') as () => void;
    } catch {
      gc = null;
    }
  }
  gc?.();
}
