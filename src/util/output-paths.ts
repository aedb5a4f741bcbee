/** Checks, before a long run, that the files and folders it will write at its end can be written. */
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** Why nothing can be created at `path`: the nearest existing folder above it is a file or not writable. */
function parentProblem(path: string): string | undefined {
  let parent = dirname(resolve(path));
  while (!existsSync(parent)) parent = dirname(parent);
  if (!statSync(parent).isDirectory()) return `cannot be written: ${parent} is a file, not a folder`;
  try {
    accessSync(parent, constants.W_OK);
  } catch {
    return `cannot be written: no permission to write in ${parent}`;
  }
  return undefined;
}

/** Why `path` cannot become a file (it is a folder, or cannot be created), or undefined when it can. */
export function outputFileProblem(path: string): string | undefined {
  if (existsSync(path) && statSync(path).isDirectory()) return 'is a folder; give a file name';
  return parentProblem(path);
}

/** Why `path` cannot become or be written into as a folder, or undefined when it can. */
export function outputFolderProblem(path: string): string | undefined {
  if (existsSync(path) && !statSync(path).isDirectory()) return 'is a file; give a folder';
  return parentProblem(path);
}
