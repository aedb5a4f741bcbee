#!/usr/bin/env node
// Builds the LibTorch addon with node-gyp after checking that LibTorch can be found.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findLibTorch } from './find-libtorch.mjs';

const nativeDir = join(dirname(fileURLToPath(import.meta.url)), '..');
let torch;
try {
  torch = findLibTorch();
} catch (e) {
  console.error(e.message);
  process.exit(1);
}
console.log(`pdquant: building the engine against LibTorch from ${torch.source} (${torch.libdir}${torch.cuda ? ', CUDA' : ''})`);
const nodeGyp = join(dirname(createRequire(import.meta.url).resolve('node-gyp/package.json')), 'bin/node-gyp.js');
const args = [nodeGyp, 'rebuild', `--jobs=${process.env.JOBS ?? 'max'}`];
// Build against the headers installed with this Node (no download) when they are there.
const prefix = join(dirname(process.execPath), '..');
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include/node/node_api.h'))) args.push(`--nodedir=${prefix}`);
try {
  execFileSync(process.execPath, args, { cwd: nativeDir, stdio: 'inherit' });
} catch {
  console.error('pdquant: the native build failed (see the compiler output above).');
  process.exit(1);
}
