import { DataError } from './errors.js';
import { resizeBilinear } from './resample.js';
import type { ImageSize, Pixels, Transform } from './types.js';

/** torchvision's size for resizing the shorter side to `size`: the long side becomes int(size * long / short). */
export function resizedSize(width: number, height: number, size: number): [number, number] {
  return width <= height
    ? [size, Math.trunc((size * height) / width)]
    : [Math.trunc((size * width) / height), size];
}

/** torchvision's center-crop start along one axis: int(round((size - crop) / 2)), or minus the left/top padding when crop > size. */
export function cropOffset(size: number, crop: number): number {
  return size >= crop ? roundHalfEven((size - crop) / 2) : -Math.floor((crop - size) / 2);
}

/** [height, width] of a size (one number: a square). */
export function heightWidth(size: ImageSize): [number, number] {
  return typeof size === 'number' ? [size, size] : [size[0], size[1]];
}

/** Python's round(): halves go to the even neighbour. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const r = x - f;
  return r > 0.5 || (r === 0.5 && f % 2 !== 0) ? f + 1 : f;
}

/** Applies Resize, CenterCrop, ToTensor and Normalize to pixels, giving a CHW float32 image. */
export function applyTransform(p: Pixels, t: Transform): { data: Float32Array; shape: [number, number, number] } {
  if (t.resize !== undefined) {
    const [w, h] = typeof t.resize === 'number' ? resizedSize(p.width, p.height, t.resize) : [t.resize[1], t.resize[0]];
    p = resizeBilinear(p, w, h);
  }
  const c = p.channels;
  const [outH, outW] = t.crop === undefined ? [p.height, p.width] : heightWidth(t.crop);
  const top = cropOffset(p.height, outH);
  const left = cropOffset(p.width, outW);
  const lut = normalizeTable(c, t);
  const data = new Float32Array(c * outH * outW);
  for (let ch = 0; ch < c; ch++) {
    const table = lut.subarray(ch * 256, ch * 256 + 256);
    const pad = table[0]!;
    for (let y = 0; y < outH; y++) {
      const sy = y + top;
      const row = (ch * outH + y) * outW;
      if (sy < 0 || sy >= p.height) {
        data.fill(pad, row, row + outW);
        continue;
      }
      for (let x = 0; x < outW; x++) {
        const sx = x + left;
        data[row + x] = sx < 0 || sx >= p.width ? pad : table[p.data[(sy * p.width + sx) * c + ch]!]!;
      }
    }
  }
  return { data, shape: [c, outH, outW] };
}

/**
 * For each channel, the float32 value of every 8-bit level, computed with float32 steps as torch does
 * ((v / 255 - mean) / std), so results match torchvision bit for bit.
 */
function normalizeTable(channels: number, t: Transform): Float32Array {
  const mean = perChannel(t.mean ?? [0], channels, 'mean');
  const std = perChannel(t.std ?? [1], channels, 'std');
  const table = new Float32Array(channels * 256);
  for (let ch = 0; ch < channels; ch++) {
    const m = Math.fround(mean[ch]!);
    const s = Math.fround(std[ch]!);
    for (let v = 0; v < 256; v++) table[ch * 256 + v] = Math.fround(Math.fround(v / 255) - m) / s;
  }
  return table;
}

/** One value per channel, broadcasting a single value. */
function perChannel(values: readonly number[], channels: number, name: string): readonly number[] {
  if (values.length === channels) return values;
  if (values.length === 1) return new Array<number>(channels).fill(values[0]!);
  throw new DataError(`Transform ${name} has ${values.length} values but the images have ${channels} channel(s)`);
}
