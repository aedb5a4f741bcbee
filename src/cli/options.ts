/** Parsing and checking of the options several commands share; messages say what was expected and what came. */
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { UnitOverride } from '../graph/index.js';
import { InvalidArgumentError } from 'commander';
import { openDataset, makeTransform, presets, type Dataset, type Transform } from '../data/index.js';

export function intIn(flag: string, min: number, max = Infinity) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || n < min || n > max)
      throw new InvalidArgumentError(`Expected integer ${max === Infinity ? `>= ${min}` : `${min}..${max}`} for ${flag} but received ${value}`);
    return n;
  };
}

export function positiveNumber(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`Expected a positive number for ${flag} but received ${value}`);
    return n;
  };
}

export const bits = (flag: string) => intIn(flag, 2, 8);

export function existingPath(what: string) {
  return (value: string): string => {
    if (!existsSync(value)) throw new InvalidArgumentError(`${what} ${value} does not exist`);
    return value;
  };
}

/** Throws unless the nearest existing folder above `value` is a writable folder (missing ones are created later). */
function checkParentWritable(flag: string, value: string): void {
  let parent = dirname(resolve(value));
  while (!existsSync(parent)) parent = dirname(parent);
  if (!statSync(parent).isDirectory()) throw new InvalidArgumentError(`${flag} ${value} cannot be written: ${parent} is a file, not a folder`);
  try {
    accessSync(parent, constants.W_OK);
  } catch {
    throw new InvalidArgumentError(`${flag} ${value} cannot be written: no permission to write in ${parent}`);
  }
}

/**
 * A file the command will write at its end: checked when the options are parsed, so that a run of hours does not
 * fail at the last step. It must not be a folder, and it must be possible to create it.
 */
export function outputFile(flag: string) {
  return (value: string): string => {
    if (value.trim() === '') throw new InvalidArgumentError(`Expected a file name for ${flag} but received an empty string`);
    if (existsSync(value) && statSync(value).isDirectory()) throw new InvalidArgumentError(`${flag} ${value} is a folder; give a file name`);
    checkParentWritable(flag, value);
    return value;
  };
}

/** A folder the command will create or write into, checked like outputFile. */
export function outputFolder(flag: string) {
  return (value: string): string => {
    if (value.trim() === '') throw new InvalidArgumentError(`Expected a folder for ${flag} but received an empty string`);
    if (existsSync(value) && !statSync(value).isDirectory()) throw new InvalidArgumentError(`${flag} ${value} is a file; give a folder`);
    checkParentWritable(flag, value);
    return value;
  };
}

/** Comma-separated numbers from model metadata, or undefined. */
function numbers(text: string | undefined): number[] | undefined {
  if (text === undefined) return undefined;
  const v = text.split(',').map(Number);
  return v.every(Number.isFinite) ? v : undefined;
}

/**
 * The transform for --preset; without one: the model's own `preprocess_mean` / `preprocess_std` metadata
 * when it has them, else cifar for a 32×32 input, imagenet for 224×224, and [0, 1] scaling otherwise.
 */
export function transformFor(preset: string | undefined, inputHw: (number | null)[], metadata: Record<string, string> = {}): Transform {
  if (preset !== undefined) {
    if (!(preset in presets)) throw new Error(`Unknown preset ${preset}; choose one of ${Object.keys(presets).join(', ')}`);
    return makeTransform(preset);
  }
  const mean = numbers(metadata.preprocess_mean);
  const std = numbers(metadata.preprocess_std);
  if (mean && std) return makeTransform('none', { mean, std });
  const [h, w] = inputHw;
  if (h === 224 && w === 224) return makeTransform('imagenet');
  if (h === 32 && w === 32) return makeTransform('cifar');
  return {};
}

/** `channels`: what the model takes; images of another channel count are converted to it. */
export async function openData(spec: string, split?: string, channels?: 1 | 3): Promise<Dataset> {
  if (split !== undefined && split !== 'train' && split !== 'test') throw new Error(`Expected train or test for --split but received ${split}`);
  return openDataset(spec, { split: split as 'train' | 'test' | undefined, channels });
}

/** Reads a --units file: [{ "name": "block1", "kind": "block", "match": ["/layer1/", "re:^/conv2/"] }, ...] (node-name prefixes or "re:" regular expressions). */
export function unitsFile(path: string | undefined): UnitOverride | undefined {
  if (path === undefined) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`Cannot read the units file ${path}: ${(e as Error).message}`);
  }
  const ok = Array.isArray(v) && v.every((u) => u && typeof u.name === 'string' && Array.isArray(u.match) && u.match.every((m: unknown) => typeof m === 'string') && (u.kind === undefined || u.kind === 'layer' || u.kind === 'block'));
  if (!ok) throw new Error(`The units file ${path} must be a JSON list of {"name": string, "kind"?: "layer" | "block", "match": [node-name prefixes or "re:<regex>"]}`);
  return v as UnitOverride;
}
