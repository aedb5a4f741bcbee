/** One sample of a dataset before decoding: where it comes from and its class index (-1 when unknown). */
export interface Sample {
  path: string;
  label: number;
}

/** Decoded 8-bit pixels, interleaved (HWC). */
export interface Pixels {
  data: Uint8Array;
  width: number;
  height: number;
  channels: number;
}

/** An image size: one number, or [height, width]. */
export type ImageSize = number | readonly [number, number];

/** Preprocessing with torchvision semantics: Resize(resize), CenterCrop(crop), ToTensor(), Normalize(mean, std). */
export interface Transform {
  /** Resize the shorter side to this many pixels, keeping the aspect ratio; [height, width]: to exactly that size (bilinear). */
  resize?: ImageSize;
  /** Center-crop to a square of this size, or to [height, width] (zero-padding where the image is smaller). */
  crop?: ImageSize;
  /** Per-channel mean subtracted after scaling to [0,1] (one value broadcasts). */
  mean?: readonly number[];
  /** Per-channel standard deviation divided by after subtracting the mean (one value broadcasts). */
  std?: readonly number[];
}

/** One decoded and transformed sample: a CHW float32 image. */
export interface Item extends Sample {
  data: Float32Array;
  shape: [number, number, number];
}

/** A batch of samples as one NCHW float32 array. */
export interface Batch {
  data: Float32Array;
  shape: [number, number, number, number];
  /** Class index per sample, -1 where unknown. */
  labels: Int32Array;
  paths: string[];
}

/** A random-access collection of labelled images. */
export interface Dataset {
  /** The source kind that opened it, e.g. "imagefolder". */
  readonly kind: string;
  /** The folder or file it was opened from. */
  readonly root: string;
  readonly size: number;
  /** Class names; a label is an index into this list. */
  readonly classes: readonly string[];
  /** Channels of every decoded image (1 = grayscale, 3 = RGB). */
  readonly channels: number;
  /** Items are model-ready tensors (e.g. float .npy): transforms do not apply to them. */
  readonly preprocessed?: boolean;
  /** Path and label of sample i without decoding it. */
  sample(i: number): Sample;
  /** Decodes sample i and applies the transform. */
  get(i: number, transform?: Transform): Promise<Item>;
  /** A one-line summary for logs. */
  describe(): string;
}

export type Split = 'train' | 'test';

/** Options of openDataset. */
export interface OpenOptions {
  /** Force a source kind instead of detecting it from the path. */
  kind?: string;
  /** Which part of a dataset holding both (CIFAR folder, IDX folder, ImageFolder with train/test sub-folders). */
  split?: Split;
  /** Keep only the first N samples. */
  limit?: number;
  /** Channels to produce: 1 (grayscale, PIL luma) or 3 (RGB); defaults to the data's own. */
  channels?: 1 | 3;
  /** Labels are not needed (calibration): a folder holding images directly opens too, every label −1. */
  unlabeled?: boolean;
}

/** A kind of dataset on disk: how to recognise it and how to open it. */
export interface Source {
  readonly kind: string;
  /** One line for help texts. */
  readonly summary: string;
  /** True when the existing path looks like this kind. */
  detect(path: string, isDirectory: boolean): boolean;
  open(path: string, opts: OpenOptions): Promise<Dataset>;
}
