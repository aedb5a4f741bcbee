/** Parsing and checking of the options several commands share; messages say what was expected and what came. */
import { existsSync, readFileSync } from 'node:fs';
import { outputFileProblem, outputFolderProblem } from '../util/output-paths.js';
import type { UnitOverride } from '../graph/index.js';
import { FLOAT_BITS, isBitWidth, type BitRule } from '../quant/placement.js';
import type { ImageSize } from '../data/types.js';
import { parseSize } from '../data/transform.js';
import { InvalidArgumentError, type Command } from 'commander';

export function intIn(flag: string, min: number, max = Infinity) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || n < min || n > max)
      throw new InvalidArgumentError(`Expected integer ${max === Infinity ? `>= ${min}` : `${min}..${max}`} for ${flag} but received ${value}`);
    return n;
  };
}

/** A size for --resize and --crop: a positive integer, or height × width as "256x192". */
export function imageSize(flag: string) {
  return (value: string): ImageSize => {
    const size = parseSize(value);
    if (size === undefined) throw new InvalidArgumentError(`Expected a positive integer or HxW (height x width, e.g. 256x192) for ${flag} but received ${value}`);
    return size;
  };
}

export function positiveNumber(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`Expected a positive number for ${flag} but received ${value}`);
    return n;
  };
}

/** A weight or activation bit-width: 2..8, or 32 to leave those values in float (no quantizer). */
export function bitWidth(flag: string, values: 'weights' | 'activations') {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !isBitWidth(n))
      throw new InvalidArgumentError(`Expected integer 2..8, or ${FLOAT_BITS} to leave ${values} in float, for ${flag} but received ${value}`);
    return n;
  };
}

export function existingPath(what: string) {
  return (value: string): string => {
    if (!existsSync(value)) throw new InvalidArgumentError(`${what} ${value} does not exist`);
    return value;
  };
}

/**
 * A file the command will write at its end: checked when the options are parsed, so that a run of hours does not
 * fail at the last step. It must not be a folder, and it must be possible to create it.
 */
export function outputFile(flag: string) {
  return (value: string): string => {
    if (value.trim() === '') throw new InvalidArgumentError(`Expected a file name for ${flag} but received an empty string`);
    const problem = outputFileProblem(value);
    if (problem) throw new InvalidArgumentError(`${flag} ${value} ${problem}`);
    return value;
  };
}

/** A folder the command will create or write into, checked like outputFile. */
export function outputFolder(flag: string) {
  return (value: string): string => {
    if (value.trim() === '') throw new InvalidArgumentError(`Expected a folder for ${flag} but received an empty string`);
    const problem = outputFolderProblem(value);
    if (problem) throw new InvalidArgumentError(`${flag} ${value} ${problem}`);
    return value;
  };
}

/** One --bits rule, `<pattern>=<w>/<a>` (a node-name prefix or re:<regex>), collected into the list given so far. */
export function bitRule(value: string, previous: BitRule[] = []): BitRule[] {
  const m = value.match(/^(.+)=(\d+)\/(\d+)$/);
  if (!m || !isBitWidth(Number(m[2])) || !isBitWidth(Number(m[3])))
    throw new InvalidArgumentError(`Expected <node-name prefix or re:regex>=<w>/<a> with bit-widths 2..8, or ${FLOAT_BITS} for float, for --bits (e.g. '/layer4/=8/8') but received ${value}`);
  return [...previous, { match: m[1]!, wBits: Number(m[2]), aBits: Number(m[3]) }];
}

/** Comma-separated numbers, for --mean and --std. */
export function numberList(flag: string) {
  return (value: string): number[] => {
    const v = value.split(',').map((x) => (x.trim() === '' ? NaN : Number(x)));
    if (!v.every(Number.isFinite)) throw new InvalidArgumentError(`Expected comma-separated numbers for ${flag} (one, or one per channel) but received ${value}`);
    return v;
  };
}

/** The model, calibration images, bit-widths and calibration draw, as quantize and sensitivity take them. */
export function addCalibrationOptions(command: Command, numSamples: number): Command {
  return command
    .argument('<model>', 'ONNX model (BatchNormalization kept)', existingPath('Model'))
    .requiredOption('--calib <path>', 'calibration images: folder, list file, CIFAR-10 .bin, IDX, or .npy (float [N,C,H,W] used as is)', existingPath('Calibration path'))
    .requiredOption('--w <bits>', 'weight bit-width 2..8, or 32 for float weights (activation-only)', bitWidth('--w', 'weights'))
    .requiredOption('--a <bits>', 'activation bit-width 2..8, or 32 for float activations (weight-only)', bitWidth('--a', 'activations'))
    .option('--num-samples <n>', 'calibration images', intIn('--num-samples', 1), numSamples)
    .option('--seed <n>', 'random seed', intIn('--seed', 0), 1005);
}

export function addPreprocessOptions(command: Command): Command {
  return command
    .option('--preset <name>', 'preprocessing: cifar, imagenet, mnist, none (default: the model\'s preprocess_* metadata, else from the input size)')
    .option('--resize <n|HxW>', 'resize the shorter image side to n pixels, or the image to height H × width W (bilinear), replacing the preset\'s', imageSize('--resize'))
    .option('--crop <n|HxW>', 'center-crop to n×n pixels, or to height H × width W, replacing the preset\'s', imageSize('--crop'))
    .option('--mean <list>', 'per-channel mean after scaling to [0, 1], e.g. 0.5,0.5,0.5, replacing the preset\'s', numberList('--mean'))
    .option('--std <list>', 'per-channel standard deviation, e.g. 0.25,0.25,0.25, replacing the preset\'s', numberList('--std'));
}

/** --device, else $PDQUANT_DEVICE, else the CPU; validated before the engine's first tensor. */
export async function useDevice(flag: string | undefined): Promise<void> {
  (await import('../engine/index.js')).selectDeviceOrEnv(flag, '--device');
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
