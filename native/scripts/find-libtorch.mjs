#!/usr/bin/env node
// Locates LibTorch for the native build, in this order: $LIBTORCH (a folder with include/ and lib/),
// a Python PyTorch install (`python3 -c "import torch"`), Debian/Ubuntu's libtorch-dev.
// Usage: node find-libtorch.mjs [includes|libdir|libs|abi|json]
import { existsSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

const HOW_TO_FIX = `pdquant needs LibTorch (PyTorch's C++ library) to build its engine. Provide it in one of three ways:
  1. set LIBTORCH to a LibTorch folder that has include/ and lib/ (e.g. an unzipped libtorch download);
  2. install PyTorch for python3 (pip install torch) — its bundled LibTorch is used, CUDA included;
  3. on Debian/Ubuntu: apt-get install libtorch-dev.`;

function fromFolder(root, source) {
  const include = join(root, 'include');
  const lib = join(root, 'lib');
  if (!existsSync(join(include, 'torch')) || !existsSync(lib)) return null;
  return { source, includes: [include, join(include, 'torch/csrc/api/include')], libdir: lib, abi: null };
}

function fromEnv() {
  const root = process.env.LIBTORCH;
  if (!root) return null;
  const found = fromFolder(root, `LIBTORCH=${root}`);
  if (!found) throw new Error(`LIBTORCH=${root} has no include/torch and lib/ folders.\n${HOW_TO_FIX}`);
  return found;
}

function fromPython() {
  try {
    const out = execFileSync('python3', ['-c',
      'import torch, os, json; print(json.dumps({"dir": os.path.dirname(torch.__file__), "abi": int(torch._C._GLIBCXX_USE_CXX11_ABI)}))'],
      { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
    const { dir, abi } = JSON.parse(out.trim().split('\n').pop());
    const found = fromFolder(dir, `python torch at ${dir}`);
    return found ? { ...found, abi } : null;
  } catch {
    return null;
  }
}

function fromDebian() {
  const libdirs = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib'];
  const libdir = libdirs.find((d) => existsSync(d) && readdirSync(d).some((f) => f.startsWith('libtorch_cpu.so')));
  if (!libdir || !existsSync('/usr/include/torch/csrc/api/include/torch/torch.h')) return null;
  return { source: 'system libtorch-dev', includes: ['/usr/include/torch/csrc/api/include'], libdir, abi: 1 };
}

export function findLibTorch() {
  const found = fromEnv() ?? fromPython() ?? fromDebian();
  if (!found) throw new Error(`LibTorch not found.\n${HOW_TO_FIX}`);
  const has = (name) => readdirSync(found.libdir).some((f) => f.startsWith(`lib${name}.so`));
  const libs = ['torch', 'torch_cpu', 'c10'];
  const cuda = has('torch_cuda');
  if (cuda) libs.push('torch_cuda', 'c10_cuda');
  // Our own kernels use at::parallel_for, whose OpenMP loop is compiled into the addon (ATen/ParallelOpenMP.h):
  // it must link the OpenMP runtime LibTorch uses, the copy bundled with a pip or downloaded LibTorch if there is one.
  const bundledGomp = readdirSync(found.libdir).find((f) => /^libgomp.*\.so/.test(f));
  const openmp = bundledGomp ? `-l:${bundledGomp}` : '-lgomp';
  return { ...found, libs, openmp, cuda, abi: found.abi ?? 1 };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    const t = findLibTorch();
    const what = process.argv[2] ?? 'json';
    const out = {
      includes: t.includes.join(' '),
      libdir: t.libdir,
      libs: [...t.libs.map((l) => `-l${l}`), t.openmp].join(' '),
      abi: String(t.abi),
      json: JSON.stringify(t, null, 2),
    }[what];
    if (out === undefined) throw new Error(`unknown query ${what}`);
    process.stdout.write(out + '\n');
  } catch (e) {
    process.stderr.write(`${e.message}\n`);
    process.exit(1);
  }
}
