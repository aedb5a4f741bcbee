import type { Pixels } from './types.js';

/** Fixed-point precision of Pillow's 8-bit resampling (32 - 8 - 2 bits). */
const PRECISION_BITS = 22;
const HALF = 1 << (PRECISION_BITS - 1);

/** Per output index: first input index, tap count, and fixed-point weights (ksize per index). */
interface Coefficients {
  bounds: Int32Array;
  weights: Int32Array;
  ksize: number;
}

/** Pillow's precompute_coeffs for the bilinear filter: a triangle widened by the reduction factor, renormalized at borders. */
function coefficients(inSize: number, outSize: number): Coefficients {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = filterscale;
  const ss = 1 / filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const min = Math.max(Math.trunc(center - support + 0.5), 0);
    const n = Math.min(Math.trunc(center + support + 0.5), inSize) - min;
    let sum = 0;
    for (let x = 0; x < n; x++) {
      const t = Math.abs((x + min - center + 0.5) * ss);
      w[x] = t < 1 ? 1 - t : 0;
      sum += w[x]!;
    }
    for (let x = 0; x < n; x++) weights[xx * ksize + x] = Math.trunc((sum !== 0 ? w[x]! / sum : w[x]!) * (1 << PRECISION_BITS) + 0.5);
    bounds[2 * xx] = min;
    bounds[2 * xx + 1] = n;
  }
  return { bounds, weights, ksize };
}

/** Rounds a fixed-point sum to an 8-bit level as Pillow's clip8. */
function clip8(sum: number): number {
  const v = sum >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** Resamples every row to outWidth (Pillow's horizontal pass). */
function horizontal(p: Pixels, outWidth: number): Pixels {
  const { data, width, height, channels: c } = p;
  const { bounds, weights, ksize } = coefficients(width, outWidth);
  const out = new Uint8Array(outWidth * height * c);
  for (let y = 0; y < height; y++) {
    const rowIn = y * width * c;
    const rowOut = y * outWidth * c;
    for (let x = 0; x < outWidth; x++) {
      const start = rowIn + bounds[2 * x]! * c;
      const n = bounds[2 * x + 1]!;
      const kb = x * ksize;
      for (let ch = 0; ch < c; ch++) {
        let sum = HALF;
        for (let i = 0, s = start + ch; i < n; i++, s += c) sum += data[s]! * weights[kb + i]!;
        out[rowOut + x * c + ch] = clip8(sum);
      }
    }
  }
  return { data: out, width: outWidth, height, channels: c };
}

/** Resamples every column to outHeight (Pillow's vertical pass). */
function vertical(p: Pixels, outHeight: number): Pixels {
  const { data, width, height, channels: c } = p;
  const { bounds, weights, ksize } = coefficients(height, outHeight);
  const row = width * c;
  const out = new Uint8Array(row * outHeight);
  for (let y = 0; y < outHeight; y++) {
    const start = bounds[2 * y]! * row;
    const n = bounds[2 * y + 1]!;
    const kb = y * ksize;
    for (let j = 0; j < row; j++) {
      let sum = HALF;
      for (let i = 0, s = start + j; i < n; i++, s += row) sum += data[s]! * weights[kb + i]!;
      out[y * row + j] = clip8(sum);
    }
  }
  return { data: out, width, height: outHeight, channels: c };
}

/**
 * Resizes like Pillow's Image.resize(size, BILINEAR), which torchvision's Resize uses on PIL images: antialiased when
 * shrinking, pixel centers aligned, horizontal pass then vertical, 8-bit fixed point, so results match bit for bit.
 */
export function resizeBilinear(p: Pixels, width: number, height: number): Pixels {
  const h = width !== p.width ? horizontal(p, width) : p;
  return height !== p.height ? vertical(h, height) : h;
}
