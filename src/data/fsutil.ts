import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataError, reason } from './errors.js';

/** Sub-folders and files of a folder, each sorted by code unit like Python's sorted(); symlinks are followed. */
export function listDir(dir: string): { dirs: string[]; files: string[] } {
  const dirs: string[] = [];
  const files: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const isDir = entry.isSymbolicLink()
      ? fs.statSync(path.join(dir, entry.name), { throwIfNoEntry: false })?.isDirectory()
      : entry.isDirectory();
    (isDir ? dirs : files).push(entry.name);
  }
  return { dirs: dirs.sort(byCodeUnit), files: files.sort(byCodeUnit) };
}

/** Plain string order (no locale), as Python sorts str. */
export function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** True when the path is an existing folder. */
export function isDirectory(p: string): boolean {
  return fs.statSync(p, { throwIfNoEntry: false })?.isDirectory() ?? false;
}

/** Reads a whole file, turning I/O failures into a DataError naming it. */
export function readFile(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new DataError(`Cannot read ${file}: ${reason(e)}`, { cause: e });
  }
}
