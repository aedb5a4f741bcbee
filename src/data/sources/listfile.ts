import * as fs from 'node:fs';
import * as path from 'node:path';
import { limited, makeDataset } from '../dataset.js';
import { DataError } from '../errors.js';
import { byCodeUnit, isDirectory, listDir, readFile } from '../fsutil.js';
import { decodeImage } from '../image.js';
import type { Source } from '../types.js';

interface Entry {
  line: number;
  file: string;
  /** The integer written after the path ("val/0001.JPEG 65", the Caffe/MXNet val.txt form), if any. */
  label?: number;
  /** The class folder name, or undefined for a file directly in its split folder. */
  className?: string;
  /** The folder holding the class folders. */
  splitDir: string;
}

/** Non-blank lines of a list file as absolute paths, keeping their order and line numbers. */
function readEntries(listFile: string): Entry[] {
  const base = path.dirname(listFile);
  const entries: Entry[] = [];
  readFile(listFile).toString('utf8').split(/\r?\n/).forEach((raw, k) => {
    const line = raw.trim();
    if (!line) return;
    // "<path> <label>" unless the whole line names a file (a file name may hold spaces and end in digits).
    const labelled = /^(.*?\S)\s+(\d+)$/.exec(line);
    const [rel, label] = labelled && !fs.existsSync(path.resolve(base, line)) ? [labelled[1]!, Number(labelled[2])] : [line, undefined];
    const file = path.resolve(base, rel);
    const classDir = path.dirname(file);
    const inClass = path.dirname(rel) !== '.';
    entries.push({
      line: k + 1,
      file,
      label,
      className: inClass ? path.basename(classDir) : undefined,
      splitDir: inClass ? path.dirname(classDir) : classDir,
    });
  });
  return entries;
}

/** Class names: the sorted sub-folders of every split folder the entries live in (as ImageFolder would label them). */
function classesOf(entries: readonly Entry[]): string[] {
  const splitDirs = new Set(entries.filter((e) => e.className !== undefined).map((e) => e.splitDir));
  const names = new Set([...splitDirs].flatMap((d) => (isDirectory(d) ? listDir(d).dirs : [])));
  return [...names].sort(byCodeUnit);
}

/**
 * A .txt list of image paths relative to the list's folder, one per line, in that order; labels come from an integer
 * after the path ("val/0001.JPEG 65"), else from the class folders.
 */
export const listFileSource: Source = {
  kind: 'list',
  summary: 'a .txt file listing image paths (relative to its folder) one per line, labelled by an integer after the path or by their class folder',
  detect: (p, isDir) => !isDir && path.extname(p).toLowerCase() === '.txt',
  async open(listFile, opts) {
    const all = readEntries(listFile);
    if (all.length === 0) throw new DataError(`List file ${listFile} has no entries`);
    const entries = all.slice(0, limited(all.length, opts.limit));
    for (const e of entries) {
      if (!fs.existsSync(e.file)) throw new DataError(`${listFile}:${e.line}: file not found: ${e.file}`);
    }
    const classes = classesOf(all);
    const samples = entries.map((e) => ({ path: e.file, label: e.label ?? (e.className === undefined ? -1 : classes.indexOf(e.className)) }));
    return makeDataset({
      kind: 'list',
      root: listFile,
      classes,
      channels: opts.channels ?? 3,
      samples,
      pixels: (i) => decodeImage(samples[i]!.path),
    });
  },
};
