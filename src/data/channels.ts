import { DataError } from './errors.js';
import type { Pixels } from './types.js';

/** Converts pixels to 1 channel (PIL's convert("L") luma) or 3 channels (gray replicated, as PIL's convert("RGB")). */
export function convertChannels(p: Pixels, channels: number): Pixels {
  if (p.channels === channels) return p;
  const n = p.width * p.height;
  const out = new Uint8Array(n * channels);
  if (p.channels === 3 && channels === 1) {
    for (let i = 0, s = 0; i < n; i++, s += 3) {
      out[i] = (p.data[s]! * 19595 + p.data[s + 1]! * 38470 + p.data[s + 2]! * 7471 + 0x8000) >> 16;
    }
  } else if (p.channels === 1 && channels === 3) {
    for (let i = 0, d = 0; i < n; i++, d += 3) out[d] = out[d + 1] = out[d + 2] = p.data[i]!;
  } else {
    throw new DataError(`Cannot convert ${p.channels}-channel pixels to ${channels} channels`);
  }
  return { data: out, width: p.width, height: p.height, channels };
}
