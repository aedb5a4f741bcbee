import { convertChannels } from './channels.js';
import { DataError } from './errors.js';
import { applyTransform } from './tensor.js';
import type { Dataset, Item, Pixels, Sample, Transform } from './types.js';

/** What a source knows about its data; makeDataset turns it into a Dataset. */
export interface DatasetParts {
  kind: string;
  root: string;
  classes: readonly string[];
  /** Channels to produce; pixels of another channel count are converted. */
  channels: number;
  samples: readonly Sample[];
  /** Decoded pixels of sample i, in whatever channel count the data has. */
  pixels(i: number): Promise<Pixels>;
}

/** Builds a Dataset that converts channels and applies transforms on top of a source's pixel reader. */
export function makeDataset(parts: DatasetParts): Dataset {
  const { kind, root, classes, channels, samples } = parts;
  const sample = (i: number): Sample => {
    const s = Number.isInteger(i) ? samples[i] : undefined;
    if (!s) throw new DataError(`Sample index ${i} is out of range for ${root} (${samples.length} samples)`);
    return s;
  };
  return {
    kind,
    root,
    classes,
    channels,
    size: samples.length,
    sample,
    async get(i: number, transform: Transform = {}): Promise<Item> {
      const { path, label } = sample(i);
      const pixels = convertChannels(await parts.pixels(i), channels);
      return { path, label, ...applyTransform(pixels, transform) };
    },
    describe(): string {
      const names = classes.length > 6 ? [...classes.slice(0, 5), '…', classes.at(-1)] : classes;
      const labels = classes.length ? `${classes.length} classes (${names.join(', ')})` : 'unlabelled';
      return `${kind} ${root}: ${samples.length} images, ${labels}, ${channels} channel${channels > 1 ? 's' : ''}`;
    },
  };
}

/** How many of n samples to keep under an optional limit. */
export function limited(n: number, limit: number | undefined): number {
  return limit === undefined ? n : Math.min(n, limit);
}

/** The [C, H, W] of the first sample after the transform: the size a model that leaves it free runs at. */
export async function firstSampleShape(ds: Dataset, transform: Transform): Promise<[number, number, number]> {
  if (ds.size === 0) throw new DataError(`${ds.root} (${ds.kind}) holds no images`);
  return (await ds.get(0, transform)).shape;
}
