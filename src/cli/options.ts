/** Parsing and checking of the options several commands share; messages say what was expected and what came. */
import { existsSync } from 'node:fs';
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

/** The transform for --preset (default: cifar when the model input is 32×32, imagenet when 224×224, else none). */
export function transformFor(preset: string | undefined, inputHw: (number | null)[]): Transform {
  if (preset !== undefined) {
    if (!(preset in presets)) throw new Error(`Unknown preset ${preset}; choose one of ${Object.keys(presets).join(', ')}`);
    return makeTransform(preset);
  }
  const [h, w] = inputHw;
  if (h === 224 && w === 224) return makeTransform('imagenet');
  if (h === 32 && w === 32) return makeTransform('cifar');
  return {};
}

export async function openData(spec: string, split?: string): Promise<Dataset> {
  if (split !== undefined && split !== 'train' && split !== 'test') throw new Error(`Expected train or test for --split but received ${split}`);
  return openDataset(spec, { split: split as 'train' | 'test' | undefined });
}
