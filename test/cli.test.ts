// The command line on bad input: one clear message, a non-zero exit, no stack trace, no output file left behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { tempDir } from './helpers/temp-dir.js';

const root = resolve(fileURLToPath(import.meta.url), '../../..');
const bin = join(root, 'bin', 'pdquant.js');
const model = join(root, 'examples', 'fashion-cnn.onnx');
const dir = tempDir('pdq-cli-');

function pdquant(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, PDQUANT_DEBUG: '' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Fails unless the run exited non-zero with exactly one error line matching `message` and no stack trace. */
function assertOneError(r: ReturnType<typeof pdquant>, message: RegExp): void {
  assert.notEqual(r.status, 0, `exit status: ${r.stderr}`);
  const errors = r.stderr.split('\n').filter((l) => /error/i.test(l));
  assert.equal(errors.length, 1, r.stderr);
  assert.match(errors[0]!, message);
  assert.doesNotMatch(r.stderr, /^\s+at /m, 'a stack trace');
  assert.ok(r.stderr.split('\n').filter(Boolean).length <= 4, `a short message, not the usage:\n${r.stderr}`);
  assert.equal(r.stdout, '');
}

const images = join(dir, 'images');
mkdirSync(images);
for (let k = 0; k < 4; k++)
  await sharp(Buffer.alloc(28 * 28 * 3, 40 * k), { raw: { width: 28, height: 28, channels: 3 } }).png().toFile(join(images, `${k}.png`));
/** An ImageFolder of `classes` class folders c00, c01, ... with one colour image each. */
function classFolder(name: string, classes: number): string {
  const data = join(dir, name);
  for (let k = 0; k < classes; k++) {
    const c = join(data, `c${String(k).padStart(2, '0')}`);
    mkdirSync(c, { recursive: true });
    copyFileSync(join(images, '0.png'), join(c, '0.png'));
  }
  return data;
}
/** The warnings a run printed, besides the one every run on the 4 test images prints (fewer than 1024). */
const warnings = (stderr: string) =>
  [...stderr.matchAll(/^pdquant: warning: (.*)$/gm)].map((m) => m[1]!).filter((w) => w !== `${images} holds 4 images; calibrating on all of them instead of 1024`);
const quantize = (...more: string[]) => pdquant('quantize', model, '--calib', images, '--w', '4', '--a', '4', ...more);

test('doctor names the engine and the CPU, and passes its self-check', () => {
  const r = pdquant('doctor');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^LibTorch \S+, CUDA (available|not available)/m);
  assert.match(r.stdout, /^CPU: .+, \d+ cores?, \w+/m);
  assert.match(r.stdout, /^engine self-check \(conv2d forward \+ backward\): ok$/m);
});

test('a path that does not exist', () => {
  assertOneError(pdquant('quantize', join(dir, 'nope.onnx'), '--calib', images, '--w', '4', '--a', '4'), /Model .*nope\.onnx does not exist/);
  assertOneError(pdquant('quantize', model, '--calib', join(dir, 'none'), '--w', '4', '--a', '4'), /Calibration path .*none does not exist/);
});

test('output paths that cannot be written are refused before the run, not after it', () => {
  const aFile = join(dir, 'a-file');
  writeFileSync(aFile, 'x');
  assertOneError(quantize('--method', 'mse', '-o', dir), /-o .* is a folder; give a file name/);
  assertOneError(quantize('--method', 'mse', '--json', join(aFile, 'run.json')), /--json .*run\.json cannot be written: .*a-file is a file, not a folder/);
  assertOneError(quantize('--method', 'mse', '--report', ''), /Expected a file name for --report/);
  assertOneError(quantize('--iters', '2', '--dc-steps', '1', '--run-dir', aFile), /--run-dir .*a-file is a file; give a folder/);
  assertOneError(pdquant('eval', model, '--data', images, '--json', dir), /--json .* is a folder/);
});

test('bit-widths outside 2..8 and probabilities outside (0, 1]', () => {
  assertOneError(quantize('--w', '9'), /Expected integer 2\.\.8, or 32 to leave weights in float, for --w but received 9/);
  assertOneError(quantize('--a', '1'), /Expected integer 2\.\.8, or 32 to leave activations in float, for --a but received 1/);
  assertOneError(quantize('--a', '16'), /Expected integer 2\.\.8, or 32 to leave activations in float, for --a but received 16/);
  assertOneError(quantize('--w', '16'), /Expected integer 2\.\.8, or 32 to leave weights in float, for --w but received 16/);
  assertOneError(quantize('--w', '32', '--a', '32'), /weights and activations both at 32 bits \(float\) quantize nothing; give --w or --a \(wBits or aBits\) 2\.\.8/);
  assertOneError(quantize('--bits', '/fc/=8/16'), /Expected <node-name prefix or re:regex>=<w>\/<a> with bit-widths 2\.\.8, or 32 for float, for --bits .* but received \/fc\/=8\/16/);
  assertOneError(quantize('--drop-p', '0'), /Expected a positive number for --drop-p but received 0/);
  assertOneError(quantize('--input-drop-p', '1.5'), /Expected a number in \(0, 1\] for --input-drop-p but received 1\.5/);
});

test('--int8-kernels with narrower activations or with --int4-storage', () => {
  assertOneError(quantize('--a', '4', '--int8-kernels'), /int8 kernels \(--int8-kernels, int8Kernels\) need 8-bit activations .* but an activation bit-width is 4; the weights may have 2\.\.8 bits/);
  assertOneError(quantize('--a', '8', '--bits', '/fc/=8/6', '--int8-kernels'), /an activation bit-width is 6/);
  assertOneError(quantize('--a', '32', '--int8-kernels'), /need 8-bit activations .* but activations are left in float \(32\); the weights may have 2\.\.8 bits/);
  assertOneError(quantize('--a', '8', '--bits', '/fc/=8/32', '--int8-kernels'), /but activations are left in float \(32\)/);
  assertOneError(quantize('--w', '32', '--a', '8', '--int8-kernels'), /need quantized weights \(onnxruntime's integer kernels read 8-bit weight codes\), but weights are left in float \(32\); the weights may have 2\.\.8 bits/);
  assertOneError(quantize('--a', '8', '--bits', '/fc/=32/8', '--int8-kernels'), /but weights are left in float \(32\)/);
  assertOneError(quantize('--a', '8', '--int8-kernels', '--int4-storage'), /int8 kernels \(--int8-kernels\) and int4 storage \(--int4-storage\) exclude each other/);
});

test('--a 32 quantizes the weights only: reconstruction and export without activation quantizers, verified in onnxruntime', async () => {
  const out = join(dir, 'w4a32.onnx');
  const r = quantize('--a', '32', '--method', 'pdquant', '--iters', '3', '--dc-steps', '2', '--run-dir', join(dir, 'w4a32-run'), '-o', out);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^pdquant W4A32: done/m);
  assert.match(r.stdout, /wrote .*w4a32\.onnx: verified in onnxruntime: .*the weights and biases of all \d+ layers equal \(activations float: no quantizers to compare\)/);
  const { readOnnx } = await import('../src/onnx/read.js');
  const ops = readOnnx(out).nodes.map((n) => n.opType);
  assert.ok(ops.includes('DequantizeLinear'), 'weights are stored as codes');
  assert.ok(!ops.includes('QuantizeLinear'), 'no activation is quantized');
  const shown = pdquant('inspect', out);
  assert.match(shown.stdout, /pdquant W4A32/);
  assert.match(shown.stdout, /activations: float \(no quantizers: weight-only\)/);
  assert.match(pdquant('inspect', model, '--quant', '4/32').stdout, /activation quantizers: none \(activations stay float\)/);
});

test('--w 32 quantizes the activations only: the weights stay float in the export, exactly, verified in onnxruntime', async () => {
  const out = join(dir, 'w32a4.onnx');
  const r = quantize('--w', '32', '--method', 'pdquant', '--iters', '3', '--dc-steps', '2', '--run-dir', join(dir, 'w32a4-run'), '-o', out);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^pdquant W32A4: done/m);
  // The classifier has no quantizer of its own left: its input's quantizer belongs to the unit before it.
  assert.match(r.stderr, /^pdquant: not reconstructed, nothing to learn \(float weights, no activation step to learn\): fc$/m);
  assert.match(r.stderr, /^pdquant: unit 4\/4 /m);
  assert.match(r.stdout, /wrote .*w32a4\.onnx: verified in onnxruntime: .*each of \d+ activation quantizers equal layer by layer \(0 of \d+ values one rounding step apart\) \(weights float: no quantizers to compare\)/);
  const { readOnnx } = await import('../src/onnx/read.js');
  const file = readOnnx(out);
  const dqCodes = new Map(file.nodes.filter((n) => n.opType === 'DequantizeLinear').map((n) => [n.outputs[0], file.initializers.get(n.inputs[0]!)?.dataType]));
  const layers = file.nodes.filter((n) => n.opType === 'Conv' || n.opType === 'Gemm');
  assert.equal(layers.length, 10);
  assert.deepEqual(new Set(layers.map((n) => dqCodes.get(n.inputs[1]!))), new Set(['int32']), 'float weights as exact INT32 codes');
  assert.ok(layers.every((n) => n.inputs[2] === undefined), 'their biases in Adds after them');
  const shown = pdquant('inspect', out).stdout;
  assert.match(shown, /pdquant W32A4/);
  assert.match(shown, /^  weights: float \(no quantizers: activation-only\)$/m);
  assert.match(shown, /^  float weights: 10 layers, stored exactly as INT32 codes times powers of two/m);
  assert.match(pdquant('inspect', model, '--quant', '32/4').stdout, /weight quantizers: none \(weights stay float\)/);
  for (const bad of ['9/4', '4/1', '4', '4/2/2', 'a/b'])
    assertOneError(pdquant('inspect', model, '--quant', bad), new RegExp(`Expected <w>/<a> with bit-widths 2\\.\\.8, or 32 for float, for --quant but received ${bad}$`, 'm'));
  // What quantize refuses, inspect does not preview as an empty list.
  assertOneError(pdquant('inspect', model, '--quant', '32/32'), /--quant 32\/32 leaves weights and activations in float \(32\) and places no quantizer, as quantize refuses it; give one of them 2\.\.8 bits/);
  assertOneError(pdquant('inspect', model, '--quant', '32/32', '--bits', '/fc/=32/32'), /--quant 32\/32 with these --bits rules leaves/);
  assert.match(pdquant('inspect', model, '--quant', '32/32', '--bits', '/fc/=8/8').stdout, /\/fc\//);
  // One layer kept float by a bit rule, the others quantized.
  const mixed = quantize('--method', 'mse', '--bits', '/stem/=32/4', '-o', join(dir, 'stem-float.onnx'));
  assert.equal(mixed.status, 0, mixed.stderr);
  assert.match(mixed.stdout, /verified in onnxruntime: .*the weights and biases of all 9 layers and each of \d+ activation quantizers equal layer by layer/);
  assert.match(pdquant('inspect', join(dir, 'stem-float.onnx')).stdout, /^  weights: 9 tensors stored as uint8 codes.*\n  float weights: 1 layer, stored exactly/m);
});

test('a W8A8 export without --int8-kernels ends with the tip to use it; with it, with how onnxruntime runs it', () => {
  const plain = quantize('--a', '8', '--w', '8', '--method', 'mse', '-o', join(dir, 'tip.onnx'));
  assert.equal(plain.status, 0, plain.stderr);
  assert.match(plain.stdout, /\ntip: with --int8-kernels onnxruntime runs such a model with integer kernels, faster than float \(README: Running the exported model\); without it, it runs in float/);
  const kernels = quantize('--a', '8', '--w', '8', '--method', 'mse', '--int8-kernels', '-o', join(dir, 'tip.onnx'));
  assert.equal(kernels.status, 0, kernels.stderr);
  assert.doesNotMatch(kernels.stdout, /tip:/);
  assert.match(kernels.stdout, /; onnxruntime runs (\d+) of \1 convolutions, \d+ of \d+ linear layers and (\d+) of \2 residual additions with integer kernels\n/);
  // Every layer is 8-bit here: the note on the U8U8 kernels. Without 8-bit layers, no note.
  assert.match(kernels.stdout, /\nnote: (\d+) of \1 layers have weight codes past ±64 \(8-bit weights\), written as UINT8: onnxruntime computes them exactly on every CPU, but on CPUs without VNNI with kernels slower/);
  const narrow = quantize('--a', '8', '--w', '4', '--no-8bit-head-stem', '--method', 'mse', '--int8-kernels', '-o', join(dir, 'narrow.onnx'));
  assert.equal(narrow.status, 0, narrow.stderr);
  assert.doesNotMatch(narrow.stdout, /note:/);
});

test('an unknown method, option or command', () => {
  assertOneError(quantize('--method', 'foo'), /Unknown method foo; choose one of .*pdquant/);
  assertOneError(quantize('--bogus'), /unknown option '--bogus'/);
  assertOneError(pdquant('frobnicate'), /unknown command 'frobnicate'/);
});

test('inspect names an unsupported op even where shapes cannot be followed past it', async () => {
  const { readOnnx, encodeOnnx } = await import('../src/onnx/index.js');
  const m = readOnnx(model);
  const conv = m.nodes.find((n) => n.opType === 'Conv')!;
  const out = conv.outputs[0]!;
  // A Softplus after the first convolution: an op without a shape rule, so FLOPs cannot be counted beyond it.
  const nodes = m.nodes.map((n) => ({ ...n, inputs: n.inputs.map((i) => (i === out ? 'softplus_out' : i)) }));
  nodes.splice(nodes.indexOf(nodes.find((n) => n.name === conv.name)!) + 1, 0, { name: '/act/Softplus', opType: 'Softplus', domain: '', inputs: [out], outputs: ['softplus_out'], attrs: {} });
  const file = join(dir, 'softplus.onnx');
  writeFileSync(file, encodeOnnx({ ...m, nodes }));
  const r = pdquant('inspect', file);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stdout, /^UNSUPPORTED: Unsupported ONNX ops: Softplus \(nodes: \/act\/Softplus\)/m);
  assert.doesNotMatch(r.stdout + r.stderr, /cannot count multiply-adds/);
});

test('a file that is not ONNX', () => {
  const bad = join(dir, 'bad.onnx');
  writeFileSync(bad, Buffer.from([0x0f, 0xff, 0xff, 0x13, 0x07, 0x00, 0x9a]));
  assertOneError(pdquant('inspect', bad), /bad\.onnx is not a valid ONNX model/);
  // quantize says only that: where a run would checkpoint comes when a reconstruction starts.
  const r = pdquant('quantize', bad, '--calib', images, '--w', '4', '--a', '4');
  assertOneError(r, /bad\.onnx is not a valid ONNX model/);
  assert.doesNotMatch(r.stderr, /checkpointed in/);
});

test('an empty or corrupt calibration folder, and no half-written output', () => {
  const empty = join(dir, 'empty');
  mkdirSync(empty);
  assertOneError(pdquant('quantize', model, '--calib', empty, '--w', '4', '--a', '4'), /No images in .*empty/);
  const corrupt = join(dir, 'corrupt');
  mkdirSync(corrupt);
  writeFileSync(join(corrupt, 'broken.png'), 'not a png');
  const out = join(dir, 'out.onnx'), record = join(dir, 'record.json');
  assertOneError(pdquant('quantize', model, '--calib', corrupt, '--w', '4', '--a', '4', '--method', 'mse', '-o', out, '--json', record), /Cannot decode image .*broken\.png/);
  assert.ok(!existsSync(out) && !existsSync(record), 'no output file');
});

test('onnxruntime-node that cannot load stops quantize -o at once, before any work; --no-verify writes the file without it', () => {
  // A module hook makes every import of onnxruntime-node fail, as a missing or foreign native binding does.
  const hook = 'export async function resolve(s, c, next) { if (s === "onnxruntime-node") throw new Error("simulated: binding missing"); return next(s, c); }';
  const register = `import { register } from 'node:module'; register('data:text/javascript,' + ${JSON.stringify(encodeURIComponent(hook))});`;
  const withoutOrt = (...args: string[]) => {
    const r = spawnSync(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(register)}`, bin, ...args],
      { encoding: 'utf8', env: { ...process.env, PDQUANT_DEBUG: '' } });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const out = join(dir, 'no-ort.onnx'), runDir = join(dir, 'no-ort-run'), record = join(dir, 'no-ort.json');
  const args = ['quantize', model, '--calib', images, '--w', '4', '--a', '4', '--iters', '2', '--dc-steps', '2', '--run-dir', runDir, '-o', out];
  const refused = withoutOrt(...args, '--json', record);
  assertOneError(refused, /onnxruntime-node cannot be loaded \(simulated: binding missing\); reinstall .*--no-verify writes the file unchecked/);
  assert.doesNotMatch(refused.stderr, /calibrat|unit/i, 'stopped before calibration');
  for (const f of [out, runDir, record, `${out.replace(/\.onnx$/, '')}.unverified.onnx`]) assert.ok(!existsSync(f), `${f} was written`);
  const unchecked = withoutOrt(...args, '--no-verify');
  assert.equal(unchecked.status, 0, unchecked.stderr);
  assert.ok(existsSync(out), 'the file is written unchecked');
  assert.doesNotMatch(unchecked.stderr, /onnxruntime/);
});

test('colour images for a grayscale model are converted; --report writes an HTML report that embeds the run record', () => {
  const record = join(dir, 'run.json'), report = join(dir, 'run.html'), runDir = join(dir, 'run');
  const r = quantize('--iters', '3', '--dc-steps', '2', '--run-dir', runDir, '--json', record, '--report', report);
  assert.equal(r.status, 0, r.stderr);
  const html = readFileSync(report, 'utf8');
  assert.ok((html.match(/<svg/g) ?? []).length >= 3, 'charts of stages, unit times and loss curves');
  const embedded = html.match(/<script type="application\/json" id="run-record">(.*)<\/script>/)![1]!;
  assert.deepEqual(JSON.parse(embedded), JSON.parse(readFileSync(record, 'utf8')));

  const again = join(dir, 'again.html');
  const rr = pdquant('report', record, '-o', again);
  assert.equal(rr.status, 0, rr.stderr);
  assert.match(readFileSync(again, 'utf8'), /<h1>fashion-cnn\.onnx — pdquant W4A4<\/h1>/);
  assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp-')), [], 'no temp files left');
});

test('eval: a class folder of colour images on the grayscale demo model', () => {
  const data = classFolder('labelled', 2);
  const r = pdquant('eval', model, '--data', data);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /top-1 \d+\.\d\d %.* on 2 images/);
  assert.match(r.stderr, /warning: .*labelled \(imagefolder\) has 2 classes but the model gives 10 outputs/);
});

test('eval: more classes than the model has outputs is refused, not scored (a label past the end used to count as a hit)', () => {
  const data = classFolder('twelve', 12);
  assertOneError(pdquant('eval', model, '--data', data), /twelve \(imagefolder\) has label 11 \('c11'\) but the model gives 10 outputs/);
});

test('quantize: unusable --eval data stops the run before calibration and reconstruction', async () => {
  const unlabelled = join(dir, 'x-images-idx3-ubyte');
  writeFileSync(unlabelled, Buffer.concat([Buffer.from([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28]), Buffer.alloc(2 * 28 * 28, 7)]));
  const runDir = join(dir, 'never');
  assertOneError(quantize('--iters', '3', '--dc-steps', '2', '--run-dir', runDir, '--eval', unlabelled), /x-images-idx3-ubyte \(idx\) has no label for 2 of 2 images.*labels file beside them/);
  const large = join(dir, 'large', 'c00');
  mkdirSync(large, { recursive: true });
  await sharp(Buffer.alloc(32 * 32, 90), { raw: { width: 32, height: 32, channels: 1 } }).png().toFile(join(large, '0.png'));
  assertOneError(quantize('--iters', '3', '--dc-steps', '2', '--run-dir', runDir, '--eval', join(dir, 'large')), /expects input \[N, 1, 28, 28\] but the data gives \[N, 1, 32, 32\]/);
  assert.ok(!existsSync(runDir), 'no unit was reconstructed');
});

test('--resize fits other image sizes; the exported model records its preprocessing, so eval --backend ort needs no flags', async () => {
  const big = join(dir, 'big');
  for (const c of ['a', 'b']) {
    mkdirSync(join(big, c), { recursive: true });
    for (let k = 0; k < 2; k++)
      await sharp(Buffer.alloc(32 * 32 * 3, 60 * k + (c === 'a' ? 0 : 100)), { raw: { width: 32, height: 32, channels: 3 } }).png().toFile(join(big, c, `${k}.png`));
  }
  const q = join(dir, 'resized.q.onnx'), record = join(dir, 'resized.json');
  const r = pdquant('quantize', model, '--calib', big, '--w', '4', '--a', '4', '--method', 'mse', '--resize', '28', '--eval', big, '-o', q, '--json', record);
  assert.equal(r.status, 0, r.stderr);
  const run = JSON.parse(readFileSync(record, 'utf8'));
  assert.equal(run.preprocess.resize, 28);
  const ort = pdquant('eval', q, '--data', big, '--backend', 'ort');
  assert.equal(ort.status, 0, ort.stderr);
  assert.match(ort.stdout, new RegExp(`top-1 ${run.export.ort_top1.toFixed(2)} %.* on 4 images \\(ort`));
  assertOneError(pdquant('eval', q, '--data', big), /resized\.q\.onnx is a quantized \(QDQ\) model: evaluate it with --backend ort/);
  const inspect = pdquant('inspect', q);
  assert.equal(inspect.status, 0, inspect.stderr);
  assert.match(inspect.stdout, /written by pdquant .*: mse W4A4, seed 1005, 4 calibration images/);
  assert.match(inspect.stdout, /preprocessing: resize 28, scale to \[0, 1\], mean 0\.286, std 0\.353/);
  assert.match(inspect.stdout, /activations: 7 quantizers \(6 × 4 bits, 1 × 8 bits\)/);
  assertOneError(pdquant('eval', model, '--data', big), /expects input \[N, 1, 28, 28\] but the data gives \[N, 1, 32, 32\]/);
});

test('a model whose input is not square: --resize and --crop as HxW, recorded so in the export, and named in the shape error', async () => {
  const { tinyResNet } = await import('./helpers/tiny-resnet.js');
  const { encodeOnnx, readOnnx } = await import('../src/onnx/index.js');
  const square = readOnnx(tinyResNet());
  const oblong = join(dir, 'oblong.onnx');
  writeFileSync(oblong, encodeOnnx({ ...square, inputs: [{ ...square.inputs[0]!, dims: ['N', 3, 8, 12] }] }));
  const q = join(dir, 'oblong.q.onnx'), record = join(dir, 'oblong.json');
  const r = pdquant('quantize', oblong, '--calib', images, '--w', '4', '--a', '4', '--method', 'mse', '--preset', 'none', '--resize', '10x14', '--crop', '8x12', '-o', q, '--json', record);
  assert.equal(r.status, 0, r.stderr);
  const run = JSON.parse(readFileSync(record, 'utf8'));
  assert.deepEqual([run.preprocess.resize, run.preprocess.crop], [[10, 14], [8, 12]]);
  assert.match(pdquant('inspect', q).stdout, /preprocessing: resize 10x14, crop 8x12, scale to \[0, 1\]/);
  const data = classFolder('oblong-data', 4);
  const ort = pdquant('eval', q, '--data', data, '--backend', 'ort');
  assert.equal(ort.status, 0, ort.stderr);
  assert.match(ort.stdout, /on 4 images \(ort/);
  assertOneError(pdquant('eval', oblong, '--data', data, '--preset', 'none', '--crop', '8'),
    /expects input \[N, 3, 8, 12\] but the data gives \[N, 3, 8, 8\]; choose the matching --preset, or set --resize and --crop \(--crop 8x12 gives 8×12 images\)$/);
  assertOneError(pdquant('eval', oblong, '--data', data, '--crop', '8x'), /Expected a positive integer or HxW \(height x width, e\.g\. 256x192\) for --crop but received 8x/);
});

test('report: a missing, non-JSON or foreign record, or an output over the record', () => {
  assertOneError(pdquant('report', join(dir, 'none.json')), /Run record .*none\.json does not exist/);
  const notJson = join(dir, 'not.json');
  writeFileSync(notJson, '{"tool": ');
  assertOneError(pdquant('report', notJson), /not\.json is not a JSON file/);
  const foreign = join(dir, 'foreign.json');
  writeFileSync(foreign, JSON.stringify({ top1: 70 }));
  assertOneError(pdquant('report', foreign), /foreign\.json is not a pdquant run record/);
  const partial = join(dir, 'partial.json');
  writeFileSync(partial, JSON.stringify({ tool: { name: 'pdquant' } }));
  assertOneError(pdquant('report', partial), /partial\.json is not a complete pdquant run record: tool\.version is missing/);
  assertOneError(pdquant('report', partial, '-o', partial), /would overwrite its run record/);
  assert.ok(!existsSync(join(dir, 'foreign.html')) && !existsSync(join(dir, 'partial.html')), 'no report written');
});

test('a model exported with a fixed batch size of 1 quantizes, exports with batch 1 kept, and verifies in onnxruntime', async () => {
  const { withFixedBatch } = await import('./helpers/onnx-builder.js');
  const fixed = join(dir, 'fixed-batch.onnx');
  writeFileSync(fixed, withFixedBatch(readFileSync(model), 1));
  const inspect = pdquant('inspect', fixed);
  assert.equal(inspect.status, 0, inspect.stderr);
  assert.match(inspect.stdout, /the file fixes the batch size to 1: pdquant runs the model at any batch size/);
  const data = classFolder('fixed-batch-data', 3);
  const q = join(dir, 'fixed-batch.q.onnx'), record = join(dir, 'fixed-batch.json');
  const r = pdquant('quantize', fixed, '--calib', images, '--w', '4', '--a', '4', '--method', 'mse', '--eval', data, '-o', q, '--json', record);
  assert.equal(r.status, 0, r.stderr);
  const run = JSON.parse(readFileSync(record, 'utf8'));
  assert.equal(run.export.ort_top1, run.top1);
  const exported = pdquant('inspect', q);
  assert.match(exported.stdout, /input  input float32 \[1, 1, 28, 28\]/);
  const ort = pdquant('eval', q, '--data', data, '--backend', 'ort', '--batch', '2');
  assert.equal(ort.status, 0, ort.stderr);
  assert.match(ort.stdout, new RegExp(`top-1 ${run.top1.toFixed(2)} %.* on 3 images \\(ort`));
  const fp = [pdquant('eval', fixed, '--data', data, '--backend', 'ort'), pdquant('eval', model, '--data', data)];
  for (const e of fp) assert.equal(e.status, 0, e.stderr);
  assert.equal(fp[0]!.stdout.replace(/\(ort.*/, ''), fp[1]!.stdout.replace(/\(torch.*/, ''));
});

test('output into a pipe that closes early (`pdquant inspect model | head`) ends quietly', () => {
  const r = spawnSync('bash', ['-c', `"${process.execPath}" "${bin}" inspect "${model}" | true; exit \${PIPESTATUS[0]}`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
});

test('a model whose weights are in an external data file (torch.onnx.export with dynamo=True) evaluates and quantizes', async () => {
  const { withExternalData } = await import('./helpers/onnx-builder.js');
  const folder = join(dir, 'external');
  mkdirSync(folder);
  const { model: graph, data: weights } = withExternalData(readFileSync(model), 'fashion.onnx.data');
  const external = join(folder, 'fashion.onnx');
  writeFileSync(external, graph);
  writeFileSync(join(folder, 'fashion.onnx.data'), weights);
  const data = classFolder('external-data', 3);
  const expected = pdquant('eval', model, '--data', data).stdout.replace(/\(torch.*/, '');
  for (const backend of ['torch', 'ort']) {
    const r = pdquant('eval', external, '--data', data, '--backend', backend);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.replace(/\((torch|ort).*/, ''), expected);
  }
  const q = join(folder, 'fashion.q.onnx');
  const r = pdquant('quantize', external, '--calib', images, '--w', '4', '--a', '4', '--method', 'mse', '-o', q);
  assert.equal(r.status, 0, r.stderr);
  rmSync(join(folder, 'fashion.onnx.data'));
  assertOneError(pdquant('eval', external, '--data', data), /external data file .*fashion\.onnx\.data not found \(it must sit beside the model\)/);
});

test('a float16 model is quantized as float32, with a warning, into a float32 model; onnxruntime evaluates the float16 file as it is', async () => {
  const { toFloat16 } = await import('./helpers/float16.js');
  const { onnx } = await import('../src/onnx/proto.js');
  const half = join(dir, 'fashion-fp16.onnx');
  writeFileSync(half, toFloat16(readFileSync(model)));
  assert.match(pdquant('inspect', half).stdout, /the file holds float16 values \(weights, input, output or casts\): pdquant reads them as float32/);
  const q = join(dir, 'fashion-fp16.q.onnx');
  const r = pdquant('quantize', half, '--calib', images, '--w', '8', '--a', '8', '--method', 'mse', '-o', q);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(warnings(r.stderr), [`${half} is a float16 model: pdquant reads it as float32 (which holds every float16 value exactly) and computes ` +
    "in float32, so its FP top-1 can differ a little from the float16 model's, and the quantized model it writes takes and gives float32"]);
  assert.match(r.stdout, /verified in onnxruntime/);
  const written = onnx.ModelProto.decode(readFileSync(q)).graph!;
  assert.deepEqual([...written.input!, ...written.output!].map((v) => v.type!.tensorType!.elemType), [1, 1]);
  assert.ok(written.initializer!.every((t) => t.dataType !== onnx.TensorProto.DataType.FLOAT16));
  // The float16 file in onnxruntime (float16 input and output) and read as float32 on the engine: the same classes.
  const data = classFolder('fp16-labelled', 10);
  const engine = pdquant('eval', half, '--data', data, '--json', join(dir, 'fp16-torch.json'));
  const ort = pdquant('eval', half, '--data', data, '--backend', 'ort', '--json', join(dir, 'fp16-ort.json'));
  assert.equal(engine.status, 0, engine.stderr);
  assert.equal(ort.status, 0, ort.stderr);
  assert.match(engine.stderr, /warning: .*fashion-fp16\.onnx is a float16 model: our engine evaluates it in float32/);
  assert.doesNotMatch(ort.stderr, /warning/);
  const top1 = (f: string) => (JSON.parse(readFileSync(join(dir, f), 'utf8')) as { top1: number }).top1;
  assert.equal(top1('fp16-ort.json'), top1('fp16-torch.json'));
  const written1 = JSON.parse(readFileSync(join(dir, 'fp16-ort.json'), 'utf8')) as { seconds: number; machine: { cpu: string; cores: number } };
  assert.ok(written1.seconds > 0 && written1.machine.cores >= 1, 'eval --json names the machine its seconds were measured on');
  // Logits for varied inputs: the float16 file in onnxruntime against the float32 one, within float16's precision.
  const { openOrt, runOrt } = await import('../src/eval/ort.js');
  const x = Float32Array.from({ length: 4 * 28 * 28 }, (_, i) => Math.sin(i * 0.37) * 2);
  const logits = async (file: string) => (await runOrt(await openOrt(file), x, [4, 1, 28, 28])).logits!.data;
  const [fromHalf, fromFloat] = [await logits(half), await logits(model)];
  const scale = Math.max(...fromFloat.map(Math.abs));
  assert.ok(fromFloat.every((v, i) => Math.abs(v - fromHalf[i]!) < 0.02 * scale), `${[...fromHalf]} vs ${[...fromFloat]}`);
});

test('a model without BatchNormalization (folded by the exporter): DC methods warn that they have nothing to correct', async () => {
  const { readOnnx, foldConstants, encodeOnnx } = await import('../src/onnx/index.js');
  const { foldBatchNorm } = await import('../src/graph/index.js');
  const noBn = join(dir, 'no-bn.onnx');
  writeFileSync(noBn, encodeOnnx(foldBatchNorm(foldConstants(readOnnx(model))).model));
  assert.match(pdquant('inspect', noBn).stdout, /no BatchNormalization nodes: the distribution correction of pdquant and qdrop-dc has no statistics/);
  const run = (method: string) => pdquant('quantize', noBn, '--calib', images, '--w', '4', '--a', '4', '--method', method, '--iters', '2', '--dc-steps', '2', '--run-dir', join(dir, `no-bn-${method}`));
  const pd = run('pdquant');
  assert.equal(pd.status, 0, pd.stderr);
  assert.match(pd.stderr, /warning: .*no-bn\.onnx has no BatchNormalization nodes .* pdquant's distribution correction has no statistics to match and is skipped/);
  const brecq = run('brecq');
  assert.equal(brecq.status, 0, brecq.stderr);
  assert.match(brecq.stderr, /warning: .* holds 4 images; calibrating on all of them instead of 1024/);
  assert.deepEqual(warnings(brecq.stderr), []);
});

test('model-ready tensors from .npy calibrate and evaluate as they are; the record claims no preprocessing', async () => {
  const { dump } = await import('npyjs');
  const { openDataset, loadAll, transformFromMetadata } = await import('../src/data/index.js');
  const { readOnnx } = await import('../src/onnx/index.js');
  const ds = await openDataset(classFolder('npy-source', 3), { channels: 1 });
  const batch = await loadAll(ds, transformFromMetadata(readOnnx(model).metadata));
  const folder = join(dir, 'npy');
  mkdirSync(folder);
  const x = join(folder, 'val_images.npy');
  writeFileSync(x, Buffer.from(dump(batch.data, batch.shape)));
  writeFileSync(join(folder, 'val_labels.npy'), Buffer.from(dump(BigInt64Array.from(batch.labels, BigInt), [3])));
  const record = join(dir, 'npy.json');
  const r = pdquant('quantize', model, '--calib', x, '--w', '4', '--a', '4', '--method', 'mse', '--eval', x, '--json', record);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /val_images\.npy holds model-ready tensors: used as they are, no preprocessing applied/);
  const run = JSON.parse(readFileSync(record, 'utf8'));
  assert.equal(run.preprocess, undefined);
  const fromImages = pdquant('eval', model, '--data', join(dir, 'npy-source')).stdout.replace(/\(torch.*/, '');
  assert.equal(pdquant('eval', model, '--data', x).stdout.replace(/\(torch.*/, ''), fromImages);
  const wrong = join(folder, 'wrong.npy');
  writeFileSync(wrong, Buffer.from(dump(new Float32Array(2 * 32 * 32), [2, 1, 32, 32])));
  assertOneError(pdquant('eval', model, '--data', wrong), /wrong\.npy \(npy\) has no label for 2 of 2 images .* or \.npy with X_labels\.npy \(or X\.labels\.npy\) beside it/);
  writeFileSync(join(folder, 'wrong.labels.npy'), Buffer.from(dump(Uint8Array.from([0, 1]), [2])));
  assertOneError(pdquant('eval', model, '--data', wrong), /expects input \[N, 1, 28, 28\] but the data gives \[N, 1, 32, 32\]; model-ready tensors \(\.npy\) must have the shape/);
});

test('--resume refuses a run dir made with other preprocessing (the calibration hash covers the tensors); a rerun without it is warned', () => {
  const runDir = join(dir, 'resume-preprocess');
  const run = (...more: string[]) => quantize('--method', 'brecq', '--iters', '2', '--run-dir', runDir, ...more);
  const first = run();
  assert.equal(first.status, 0);
  assert.match(first.stderr, new RegExp(`each finished unit, and a running one every 10 minutes, is checkpointed in ${runDir}; if the run stops, the same command with --resume ${runDir} continues it`));
  assert.deepEqual(warnings(first.stderr), []);
  const resumed = run('--resume', runDir);
  assert.equal(resumed.status, 0);
  assert.doesNotMatch(resumed.stderr, /checkpointed in/);
  assert.deepEqual(warnings(resumed.stderr), []);
  // The same command again without --resume redoes the finished units: it says so before it starts.
  const again = run();
  assert.match(again.stderr, new RegExp(`warning: ${runDir} holds \\d+ finished unit\\(s\\) of this same run, which this run does again and overwrites; to continue from them instead, run the same command with --resume ${runDir}`));
  const other = run('--resume', runDir, '--mean', '0.5');
  assert.notEqual(other.status, 0);
  assert.match(other.stderr, /error: The checkpoint in .* belongs to another run \(it differs in: calib\); start a new --run-dir/);
  assert.doesNotMatch(other.stderr, /^\s+at /m);
  // Another run in the same folder is not this run continued: no advice to resume it.
  assert.deepEqual(warnings(run('--mean', '0.5').stderr), []);
});

test('a run killed inside a unit continues there with --resume, and ends as an uninterrupted run does', async () => {
  const runDir = join(dir, 'resume-killed');
  const args = (...more: string[]) => [bin, 'quantize', model, '--calib', images, '--w', '4', '--a', '4', '--method', 'qdrop', '--iters', '200', ...more];
  const progress = join(runDir, 'unit-progress.bin');
  // Progress saved every 30 ms; the process is killed (no chance to clean up) once the second unit has saved some.
  const child = spawn(process.execPath, args('--run-dir', runDir, '--checkpoint-minutes', '0.0005'), { stdio: 'ignore' });
  let done = false;
  const exited = new Promise((resolve) => child.on('exit', () => resolve((done = true))));
  // Progress newer than the checkpoint: that of a running unit, not of one just finished (removed right after).
  const running = () => {
    try {
      return statSync(progress).mtimeMs > statSync(join(runDir, 'checkpoint.json')).mtimeMs;
    } catch {
      return false;
    }
  };
  while (!done && !running()) await new Promise((r) => setTimeout(r, 10));
  assert.ok(!done, 'killed before it finished');
  child.kill('SIGKILL');
  await exited;
  const resumed = pdquant(...args('--resume', runDir, '--save-qparams', join(dir, 'killed.qparams.json')).slice(1));
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, /continuing \S+ after iteration \d+, where the interrupted run saved it/);
  assert.ok(!existsSync(progress));
  const full = pdquant(...args('--run-dir', join(dir, 'resume-killed-full'), '--save-qparams', join(dir, 'full.qparams.json')).slice(1));
  assert.equal(full.status, 0, full.stderr);
  assert.deepEqual(JSON.parse(readFileSync(join(dir, 'killed.qparams.json'), 'utf8')), JSON.parse(readFileSync(join(dir, 'full.qparams.json'), 'utf8')));
  assertOneError(pdquant(...args('--checkpoint-minutes', '0').slice(1)), /--checkpoint-minutes/);
});

test('--resume without a checkpoint to continue from is refused before anything is loaded', () => {
  const missing = join(dir, 'resume-missing');
  const r = quantize('--method', 'brecq', '--iters', '2', '--resume', missing);
  assertOneError(r, new RegExp(`Cannot resume: the run folder ${missing} does not exist; run without --resume to start the run there`));
  assert.doesNotMatch(r.stderr, /calibration data|checkpointed in/);
  const empty = join(dir, 'resume-empty');
  mkdirSync(empty, { recursive: true });
  assertOneError(quantize('--method', 'brecq', '--iters', '2', '--resume', empty), /Cannot resume: the run folder .*resume-empty holds no checkpoint \(a run writes one when a unit is finished, and every --checkpoint-minutes while one runs\)/);
  assertOneError(quantize('--method', 'mse', '--resume', empty), /Cannot resume: mse is scale-only, it reconstructs no units and keeps no checkpoint; run it without --resume/);
});

test('a model as torch.onnx.export(dynamo=True) writes it (batch 1, names node_*, paths in metadata, weights in .data) quantizes end to end', async () => {
  const { tinyWorkspace, tinyResNet } = await import('./helpers/tiny-resnet.js');
  const { withFixedBatch, withNodeMetadata, withExternalData } = await import('./helpers/onnx-builder.js');
  const { onnx } = await import('../src/onnx/proto.js');
  const ws = await tinyWorkspace(4);
  const m = onnx.ModelProto.decode(withFixedBatch(tinyResNet(), 1));
  const paths = m.graph!.node!.map((n) => (n.name ?? '').split('/').filter(Boolean).slice(0, -1));
  m.graph!.node!.forEach((n, i) => (n.name = `node_${n.opType}_${i}`));
  const { model: external, data } = withExternalData(onnx.ModelProto.encode(m).finish(), 'dynamo.onnx.data');
  const graph = withNodeMetadata(external, (_, i) => {
    const cumulative: string[] = [];
    for (const p of paths[i]!) cumulative.push(cumulative.length === 0 || p.startsWith(`${cumulative.at(-1)}.`) ? p : `${cumulative.at(-1)}.${p}`);
    return { 'pkg.torch.onnx.name_scopes': `[${['', ...cumulative, 'op'].map((s) => `'${s}'`).join(', ')}]` };
  });
  const file = join(ws.dir, 'dynamo.onnx');
  writeFileSync(file, graph);
  writeFileSync(join(ws.dir, 'dynamo.onnx.data'), data);
  const inspect = pdquant('inspect', file);
  assert.equal(inspect.status, 0, inspect.stderr);
  assert.match(inspect.stdout, /reconstruction units \(4\):\n\s+1\. stem\.conv .*\n\s+2\. layer1\.0 +block/);
  const q = join(ws.dir, 'dynamo.q.onnx');
  const r = pdquant('quantize', file, '--calib', ws.images, '--eval', ws.images, '--preset', 'none', '--w', '4', '--a', '4', '--method', 'brecq', '--iters', '3', '-o', q, '--run-dir', join(ws.dir, 'run'));
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /verified in onnxruntime: top-1 ([\d.]+) % vs simulated \1 %/);
  assert.match(pdquant('inspect', q).stdout, /input  input float32 \[1, 3, 8, 8\]/);
});

test('--device and PDQUANT_DEVICE: a device the engine cannot use is one clear error', async () => {
  const { engineInfo } = await import('../src/engine/index.js');
  const data = classFolder('device-data', 2);
  assertOneError(pdquant('eval', model, '--data', data, '--device', 'gpu'), /Expected cpu, cuda or cuda:N for --device but received gpu/);
  assertOneError(pdquant('eval', model, '--data', data, '--device', 'cpu:1'), /Expected cpu, cuda or cuda:N for --device but received cpu:1/);
  const env = spawnSync(process.execPath, [bin, 'eval', model, '--data', data], { encoding: 'utf8', env: { ...process.env, PDQUANT_DEVICE: 'tpu' } });
  assertOneError({ status: env.status, stdout: env.stdout, stderr: env.stderr }, /Expected cpu, cuda or cuda:N for PDQUANT_DEVICE but received tpu/);
  if (!engineInfo().cuda) assertOneError(pdquant('eval', model, '--data', data, '--device', 'cuda'), /--device cuda: this LibTorch build has no CUDA/);
  assert.equal(pdquant('eval', model, '--data', data, '--device', 'cpu').status, 0);
});

test('a model that ends in Softmax quantizes on its logits; the exported file ends in the Softmax again', async () => {
  const { onnx } = await import('../src/onnx/proto.js');
  const m = onnx.ModelProto.decode(readFileSync(model));
  const g = m.graph!;
  const out = g.output![0]!.name!;
  g.node!.find((n) => n.output!.includes(out))!.output = ['raw_logits'];
  g.node!.push({ name: '/softmax/Softmax', opType: 'Softmax', input: ['raw_logits'], output: [out], attribute: [{ name: 'axis', type: 2, i: 1 }] });
  const softmax = join(dir, 'softmax.onnx');
  writeFileSync(softmax, onnx.ModelProto.encode(m).finish());
  const data = classFolder('softmax-data', 3);
  const q = join(dir, 'softmax.q.onnx'), record = join(dir, 'softmax.json');
  const r = pdquant('quantize', softmax, '--calib', images, '--w', '4', '--a', '4', '--method', 'pdquant', '--iters', '2', '--dc-steps', '2', '--eval', data, '-o', q, '--json', record, '--run-dir', join(dir, 'softmax-run'));
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(readFileSync(record, 'utf8')).export.ort_top1, JSON.parse(readFileSync(record, 'utf8')).top1);
  const { runOrt } = await import('./helpers/onnx-builder.js');
  const probs = (await runOrt(readFileSync(q), { input: { dims: [1, 1, 28, 28], data: new Float32Array(784).fill(0.3) } }))[out]!.data;
  assert.ok(Math.abs(probs.reduce((a, b) => a + b, 0) - 1) < 1e-5, `${[...probs]}`);
});

test('a classifier written as MatMul + Add (weight [in, out]) quantizes per output channel and exports', async () => {
  const { onnx } = await import('../src/onnx/proto.js');
  const { readOnnx } = await import('../src/onnx/index.js');
  const m = onnx.ModelProto.decode(readFileSync(model));
  const g = m.graph!;
  const gemm = g.node!.find((n) => n.opType === 'Gemm')!;
  const fcw = readOnnx(readFileSync(model)).initializers.get(gemm.input![1]!)!;
  const [out, inp] = fcw.dims as [number, number];
  const t = new Float32Array(out * inp);
  for (let o = 0; o < out; o++) for (let i = 0; i < inp; i++) t[i * out + o] = (fcw.data as Float32Array)[o * inp + i]!;
  g.initializer!.push({ name: 'fc_in_out', dataType: 1, dims: [inp, out], rawData: new Uint8Array(t.buffer) });
  g.node!.splice(g.node!.indexOf(gemm), 1,
    { name: '/fc/MatMul', opType: 'MatMul', input: [gemm.input![0]!, 'fc_in_out'], output: ['fc_mm'] },
    { name: '/fc/Add', opType: 'Add', input: ['fc_mm', gemm.input![2]!], output: gemm.output });
  const matmul = join(dir, 'matmul.onnx');
  writeFileSync(matmul, onnx.ModelProto.encode(m).finish());
  const data = classFolder('matmul-data', 3);
  const run = (file: string, json: string) => {
    const r = pdquant('quantize', file, '--calib', images, '--w', '4', '--a', '4', '--method', 'mse', '--eval', data, '--json', json, ...(file === matmul ? ['-o', join(dir, 'matmul.q.onnx')] : []));
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(readFileSync(json, 'utf8'));
  };
  const asMatMul = run(matmul, join(dir, 'matmul.json'));
  const asGemm = run(model, join(dir, 'gemm.json'));
  assert.equal(asMatMul.top1, asGemm.top1);
  assert.equal(asMatMul.export.ort_top1, asMatMul.top1);
});

test('a model that leaves channels, height and width free (Hugging Face exports) runs at the size of its images', async () => {
  const { onnx } = await import('../src/onnx/proto.js');
  const m = onnx.ModelProto.decode(readFileSync(model));
  m.graph!.input![0]!.type!.tensorType!.shape!.dim = ['batch_size', 'num_channels', 'height', 'width'].map((dimParam) => ({ dimParam }));
  const free = join(dir, 'free-dims.onnx');
  writeFileSync(free, onnx.ModelProto.encode(m).finish());
  const inspect = pdquant('inspect', free);
  assert.equal(inspect.status, 0, inspect.stderr);
  assert.match(inspect.stdout, /the input leaves num_channels, height, width free: shapes and FLOPs below are for \[N, 1, 224, 224\]/);
  assert.match(pdquant('inspect', free, '--image-size', '28').stdout, /are for \[N, 1, 28, 28\]/);
  const data = classFolder('free-dims-data', 3);
  const q = join(dir, 'free-dims.q.onnx');
  const run = (file: string, ...more: string[]) => {
    const json = join(dir, `${file === free ? 'free' : 'fixed'}-dims.json`);
    const r = pdquant('quantize', file, '--calib', images, '--w', '4', '--a', '4', '--method', 'mse', '--eval', data, '--json', json, ...more);
    assert.equal(r.status, 0, r.stderr);
    return { record: JSON.parse(readFileSync(json, 'utf8')), stderr: r.stderr };
  };
  const freeRun = run(free, '-o', q);
  assert.match(freeRun.stderr, /leaves num_channels, height, width of its input free: quantized at the size of the calibration images, \[1, 28, 28\]/);
  assert.equal(freeRun.record.top1, run(model).record.top1);
  assert.equal(freeRun.record.export.ort_top1, freeRun.record.top1);
  assert.match(pdquant('inspect', q).stdout, /input  input float32 \[batch_size, 1, 28, 28\]/);
  const evals = [pdquant('eval', free, '--data', data), pdquant('eval', free, '--data', data, '--backend', 'ort'), pdquant('eval', model, '--data', data)];
  for (const e of evals) assert.equal(e.status, 0, e.stderr);
  assert.equal(new Set(evals.map((e) => e.stdout.replace(/ \((torch|ort).*/s, ''))).size, 1, evals.map((e) => e.stdout).join(''));
});

test('a channels-last model (tf2onnx: [N, H, W, C] then Transpose) quantizes as its NCHW body; the export keeps its input', async () => {
  const { onnx } = await import('../src/onnx/proto.js');
  const m = onnx.ModelProto.decode(readFileSync(model));
  const g = m.graph!;
  const input = g.input![0]!;
  const [n, c, h, w] = input.type!.tensorType!.shape!.dim!;
  input.type!.tensorType!.shape!.dim = [n!, h!, w!, c!];
  const name = input.name!;
  input.name = 'input_1';
  g.node!.unshift({ name: 'Transpose__7', opType: 'Transpose', input: ['input_1'], output: [name], attribute: [{ name: 'perm', type: 7, ints: [0, 3, 1, 2] }] });
  const nhwc = join(dir, 'nhwc.onnx');
  writeFileSync(nhwc, onnx.ModelProto.encode(m).finish());
  assert.match(pdquant('inspect', nhwc).stdout, /the input is channels-last \[N, H, W, C\], transposed to NCHW first/);
  const data = classFolder('nhwc-data', 3);
  const q = join(dir, 'nhwc.q.onnx');
  const run = (file: string, ...more: string[]) => {
    const json = join(dir, `${file === nhwc ? 'nhwc' : 'nchw'}.json`);
    const r = pdquant('quantize', file, '--calib', images, '--w', '4', '--a', '4', '--method', 'mse', '--eval', data, '--json', json, ...more);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(readFileSync(json, 'utf8'));
  };
  const record = run(nhwc, '-o', q);
  assert.equal(record.top1, run(model).top1);
  assert.equal(record.export.ort_top1, record.top1);
  assert.match(pdquant('inspect', q).stdout, /input  input_1 float32 \[\w+, 28, 28, 1\]/);
  const evals = [pdquant('eval', nhwc, '--data', data, '--backend', 'ort'), pdquant('eval', nhwc, '--data', data), pdquant('eval', model, '--data', data)];
  for (const e of evals) assert.equal(e.status, 0, e.stderr);
  assert.equal(new Set(evals.map((e) => e.stdout.replace(/ \((torch|ort).*/s, ''))).size, 1, evals.map((e) => e.stdout).join(''));
  const ort = pdquant('eval', q, '--data', data, '--backend', 'ort');
  assert.match(ort.stdout, new RegExp(`top-1 ${record.top1.toFixed(2)} %`));
});

test('a model that is already quantized is refused with what to do instead, not a list of unsupported ops', () => {
  const q = join(dir, 'twice.q.onnx');
  assert.equal(quantize('--method', 'mse', '-o', q).status, 0);
  assertOneError(pdquant('quantize', q, '--calib', images, '--w', '4', '--a', '4', '--method', 'mse'),
    /twice\.q\.onnx is already quantized \(it holds DequantizeLinear, QuantizeLinear\): pdquant quantizes float models, so give it the float model/);
});
