/** Paths to the shared real model and data (../shared beside the project); benchmarks and conformance fail loudly without them. */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const projectRoot = existsSync(join(root, 'package.json')) ? root : resolve(root, '..');
export const sharedDir = process.env.PDQUANT_SHARED ?? resolve(projectRoot, '../shared');

export const shared = {
  resnet20: join(sharedDir, 'models/resnet20_cifar10.onnx'),
  torchvision: (name: string) => join(sharedDir, 'models/torchvision', `${name}.onnx`),
  cifarTest: join(sharedDir, 'data/cifar10-jpeg/test'),
  calib1024: join(sharedDir, 'data/cifar10-jpeg/calib-1024.txt'),
};

/** Throws one message naming every missing path. */
export function requireShared(...paths: string[]): void {
  const missing = paths.filter((p) => !existsSync(p));
  if (missing.length)
    throw new Error(`The shared model/data are missing: ${missing.join(', ')}. They live in ../shared beside the project (or set PDQUANT_SHARED).`);
}
