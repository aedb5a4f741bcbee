import * as path from 'node:path';
import { limited, makeDataset } from '../dataset.js';
import { DataError } from '../errors.js';
import { byCodeUnit, isDirectory, listDir } from '../fsutil.js';
import { decodeImage } from '../image.js';
import type { Sample, Source } from '../types.js';

/** torchvision's IMG_EXTENSIONS; sharp cannot decode .bmp, so such files fail with an error naming them. */
export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp'];

/** True when the file name ends in an image extension (case-insensitive). */
export function isImageFile(name: string): boolean {
  return IMAGE_EXTENSIONS.includes(path.extname(name).toLowerCase());
}

/** Image files under a folder, in torchvision's order: folders by full path (sorted os.walk), then file names. */
function imagesUnder(dir: string): string[] {
  const folders: { dir: string; files: string[] }[] = [];
  const walk = (d: string): void => {
    const { dirs, files } = listDir(d);
    folders.push({ dir: d, files });
    for (const sub of dirs) walk(path.join(d, sub));
  };
  walk(dir);
  folders.sort((a, b) => byCodeUnit(a.dir, b.dir));
  return folders.flatMap((f) => f.files.filter(isImageFile).map((name) => path.join(f.dir, name)));
}

/**
 * `<root>/<class>/**\/<image>` as torchvision's ImageFolder: class folders sorted give labels 0..K-1. With `unlabeled`,
 * a folder without sub-folders that holds images directly is a dataset too (file-name order, label −1).
 */
export const imageFolderSource: Source = {
  kind: 'imagefolder',
  summary: 'a folder of class sub-folders holding images (torchvision ImageFolder); for calibration also a folder of images',
  detect: (_path, isDir) => isDir,
  async open(root, opts) {
    if (!isDirectory(root)) throw new DataError(`${root} is not a folder of class sub-folders`);
    const dir = opts.split && isDirectory(path.join(root, opts.split)) ? path.join(root, opts.split) : root;
    const { dirs: classes, files } = listDir(dir);
    const loose = files.filter(isImageFile);
    if (classes.length === 0) {
      if (opts.unlabeled) {
        if (!loose.length) throw new DataError(`No images in ${dir} (extensions: ${IMAGE_EXTENSIONS.join(' ')})`);
        const samples: Sample[] = loose.slice(0, limited(loose.length, opts.limit)).map((name) => ({ path: path.join(dir, name), label: -1 }));
        return makeDataset({ kind: 'imagefolder', root: dir, classes: [], channels: opts.channels ?? 3, samples, pixels: (i) => decodeImage(samples[i]!.path) });
      }
      const images = `${loose.length} image${loose.length > 1 ? 's' : ''}`;
      const hint = loose.length ? `; it holds ${images} directly: move them into class sub-folders or list them in a .txt file` : '';
      throw new DataError(`No class sub-folders in ${dir}: expected ${path.join(dir, '<class>', '<image>')}${hint}`);
    }
    const perClass = classes.map((c) => imagesUnder(path.join(dir, c)));
    const empty = classes.filter((_, k) => perClass[k]!.length === 0);
    const extensions = IMAGE_EXTENSIONS.join(' ');
    if (empty.length === classes.length) {
      throw new DataError(`No images in any of the ${classes.length} class folders of ${dir} (extensions: ${extensions})`);
    }
    if (empty.length) {
      throw new DataError(`Found no valid file for the classes ${empty.join(', ')} in ${dir} (extensions: ${extensions})`);
    }
    const all: Sample[] = perClass.flatMap((paths, label) => paths.map((p) => ({ path: p, label })));
    const samples = all.slice(0, limited(all.length, opts.limit));
    return makeDataset({
      kind: 'imagefolder',
      root: dir,
      classes,
      channels: opts.channels ?? 3,
      samples,
      pixels: (i) => decodeImage(samples[i]!.path),
    });
  },
};
