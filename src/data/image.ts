import sharp from 'sharp';
import { DataError, reason } from './errors.js';
import type { Pixels } from './types.js';

/**
 * Decodes an image file to 8-bit RGB like torchvision's pil_loader: alpha dropped, grayscale replicated,
 * embedded ICC profiles and EXIF orientation ignored (PIL applies neither).
 */
export async function decodeImage(file: string): Promise<Pixels> {
  try {
    const { data, info } = await sharp(file, { ignoreIcc: true })
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    return { data, width: info.width, height: info.height, channels: info.channels };
  } catch (e) {
    throw new DataError(`Cannot decode image ${file}: ${oneLine(reason(e))}`, { cause: e });
  }
}

/** libvips repeats its decoder's warnings over several lines (VipsJpeg: ... twice): each one once, on one line. */
function oneLine(message: string): string {
  const lines = message.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  return lines.reduce<string[]>((kept, l) => (kept.some((k) => k.includes(l)) ? kept : [...kept, l]), []).join('; ');
}
