/** `pdquant inspect`: what the model is, what pdquant makes of it, and anything it cannot run. */
import { InvalidArgumentError, type Command } from 'commander';
import { bitRule, existingPath, unitsFile } from './options.js';
import { FLOAT_BITS, isBitWidth, quantizesNothing, type BitRule } from '../quant/placement.js';
import type { QdqSummary } from '../onnx/qdq-summary.js';
import { describeTransform, transformFromMetadata } from '../data/index.js';

const opsLine = (nodes: number, counts: Record<string, number>) =>
  `ops after constant folding (${nodes} nodes): ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ')}`;

/** The message of the error `check` throws, or null when it returns. */
function unsupportedMessage(check: () => void): string | null {
  try {
    check();
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

export function inspectCommand(program: Command): void {
  program
    .command('inspect')
    .description('inputs/outputs, op counts, parameters, FLOPs, reconstruction units and unsupported ops of an ONNX model')
    .argument('<model>', 'ONNX model', existingPath('Model'))
    .option('--quant <w/a>', 'also list every quantizer and its bit-width for these weight/activation bits, e.g. 4/2')
    .option('--no-8bit-head-stem', 'with --quant: no 8-bit first/last layers and classifier input')
    .option('--bits <pattern=w/a>', 'with --quant: other bit-widths for matching layers, as quantize takes them (repeatable)', bitRule)
    .option('--int8-kernels', 'with --quant: the placement quantize --int8-kernels uses')
    .option('--units <file>', 'JSON list overriding the grouping into reconstruction units', existingPath('Units file'))
    .option('--image-size <h,w>', 'for a model that leaves its input height and width free: the size to show shapes and FLOPs at (default 224)', imageSize)
    .action(async (model: string, o: { quant?: string; '8bitHeadStem': boolean; bits?: BitRule[]; int8Kernels?: boolean; units?: string; imageSize?: [number, number] }) => {
      const wa = o.quant?.match(/^(\d+)\/(\d+)$/);
      if (o.quant !== undefined && !(wa && isBitWidth(Number(wa[1])) && isBitWidth(Number(wa[2])))) throw new Error(`Expected <w>/<a> with bit-widths 2..8, or 32 for float, for --quant but received ${o.quant}`);
      if (!wa && (o.bits || o.int8Kernels)) throw new Error(`${o.bits ? '--bits' : '--int8-kernels'} shapes the quantizers that --quant <w/a> lists: add --quant`);
      if (wa && quantizesNothing(Number(wa[1]), Number(wa[2]), o.bits))
        throw new Error(`--quant ${o.quant}${o.bits ? ' with these --bits rules' : ''} leaves weights and activations in float (${FLOAT_BITS}) and places no quantizer, as quantize refuses it; give one of them 2..8 bits`);
      if (wa && o.int8Kernels) {
        // What quantize refuses is not previewed either.
        const { int8KernelsRefusal } = await import('../index.js');
        const refusal = int8KernelsRefusal(Number(wa[1]), Number(wa[2]), { bitRules: o.bits });
        if (refusal) throw new Error(refusal);
      }
      const { readOnnx } = await import('../onnx/read.js');
      const { foldConstants } = await import('../onnx/fold.js');
      const { checkSupported } = await import('../onnx/supported.js');
      const { opCounts, summarize } = await import('../onnx/summarize.js');
      const { summarizeQdq } = await import('../onnx/qdq-summary.js');
      const { freeImageDims, imageChannels, withImageShape } = await import('../onnx/image-input.js');
      const read = readOnnx(model);
      const dims = (d: (number | string | null)[] | null) => `[${(d ?? []).map((x) => x ?? '?').join(', ')}]`;
      console.log(`${model}: opset ${read.opsetVersion}, producer ${read.producer || '?'} ${read.producerVersion}`);
      for (const i of read.inputs) console.log(`  input  ${i.name} ${i.elemType} ${dims(i.dims)}`);
      for (const o of read.outputs) console.log(`  output ${o.name} ${o.elemType} ${dims(o.dims)}`);
      if (read.readFromFloat16)
        console.log('  the file holds float16 values (weights, input, output or casts): pdquant reads them as float32, which holds every float16 exactly, and computes and exports in float32');
      const qdq = summarizeQdq(read);
      if (qdq) return printQdq(model, read.metadata, qdq);
      const { isChannelsLast, withoutChannelsLast } = await import('../onnx/channels-last.js');
      if (isChannelsLast(read))
        console.log('  the input is channels-last [N, H, W, C], transposed to NCHW first: pdquant quantizes the model after that Transpose and the quantized export keeps the input as it is');
      const nchw = withoutChannelsLast(read);
      const free = freeImageDims(nchw);
      let imageShape;
      if (free.length > 0) {
        const [h, w] = o.imageSize ?? [224, 224];
        const chw = [imageChannels(nchw) ?? 3, h, w];
        imageShape = { chw, source: '--image-size' };
        console.log(`  the input leaves ${free.map((d) => d.name).join(', ')} free: shapes and FLOPs below are for [N, ${chw.join(', ')}]` +
          `${o.imageSize ? '' : ' (--image-size sets another size)'}; quantize and eval run it at the size of their images, which the quantized export keeps`);
      }
      const onnx = foldConstants(imageShape ? withImageShape(nchw, imageShape) : nchw);
      const { declaredBatch } = await import('../onnx/batch.js');
      const batch = declaredBatch(onnx);
      if (batch !== null) console.log(`  the file fixes the batch size to ${batch}: pdquant runs the model at any batch size, and its quantized export keeps ${batch}`);
      const { splitHead } = await import('../onnx/head.js');
      const { body, head } = splitHead(onnx);
      let s;
      try {
        s = summarize(onnx);
      } catch (e) {
        // Shapes stop at an op pdquant cannot run: name that op rather than the shape it left unknown.
        const unsupported = unsupportedMessage(() => checkSupported(body));
        if (!unsupported) throw e;
        console.log(opsLine(onnx.nodes.length, opCounts(onnx.nodes)));
        console.log(`UNSUPPORTED: ${unsupported}`);
        process.exitCode = 1;
        return;
      }
      console.log(opsLine(s.nodeCount, s.opCounts));
      if (!s.opCounts.BatchNormalization) {
        const { KEEP_BN_EXPORT } = await import('../graph/fold-bn.js');
        console.log(`  no BatchNormalization nodes: the distribution correction of pdquant and qdrop-dc has no statistics to match (to keep them: ${KEEP_BN_EXPORT})`);
      }
      console.log(`parameters: ${s.parameters.toLocaleString('en-US')}   FLOPs per image: ${(s.flops / 1e6).toFixed(1)} M (2 × ${(s.macs / 1e6).toFixed(1)} M multiply-adds)`);
      if (head) console.log(`  ends in ${head.opType} (node ${head.name}): quantized up to the logits before it; the quantized export keeps it`);
      const unsupported = unsupportedMessage(() => checkSupported(body));
      if (unsupported) {
        console.log(`UNSUPPORTED: ${unsupported}`);
        process.exitCode = 1;
        return;
      }
      const { loadModel } = await import('../graph/load.js');
      const loaded = loadModel(read, { units: unitsFile(o.units), imageShape });
      console.log(`reconstruction units (${loaded.units.length}):`);
      loaded.units.forEach((u, k) => {
        const layers = u.nodes.filter((n) => ['Conv', 'Gemm', 'MatMul'].includes(n.opType)).length;
        console.log(`  ${String(k + 1).padStart(2)}. ${u.name.padEnd(14)} ${u.kind.padEnd(5)} ${layers} weight layer${layers === 1 ? '' : 's'}, ${u.nodes.length} node${u.nodes.length === 1 ? '' : 's'}: ${u.nodes.map((n) => n.name).join(' ')}`);
      });
      const { largestUnitCache } = await import('../methods/memory.js');
      const largest = largestUnitCache(loaded.units, loaded.folded.model);
      if (largest)
        console.log(`calibration caches (a unit's quantized and FP inputs and its FP output for each calibration image): largest ${(largest.bytesPerImage * 1024 / 2 ** 30).toFixed(2)} GiB ` +
          `with 1024 images (unit ${largest.unit.name}), held while that unit is reconstructed; they scale with --num-samples`);
      if (wa) {
        const { placeQuantizers } = await import('../quant/placement.js');
        const p = placeQuantizers(loaded.folded, loaded.units, { wBits: Number(wa[1]), aBits: Number(wa[2]), eightBitHeadStem: o['8bitHeadStem'], bitRules: o.bits, int8Kernels: o.int8Kernels });
        console.log(p.weights.length ? `weight quantizers (${p.weights.length}, per output channel):` : 'weight quantizers: none (weights stay float)');
        for (const w of p.weights) console.log(`  W${w.bits}  ${w.node}  [unit ${w.unit}]`);
        console.log(p.acts.length ? `activation quantizers (${p.acts.length}, per tensor):` : 'activation quantizers: none (activations stay float)');
        for (const a of p.acts) console.log(`  A${a.bits}  after ${a.value}  (${a.role}, unit ${a.unit})`);
      }
    });
}

/** --image-size: "224" or "224,192" (height, width). */
function imageSize(value: string): [number, number] {
  const v = value.split(',').map((x) => (/^\s*\d+\s*$/.test(x) ? Number(x) : NaN));
  if (v.length > 2 || !v.every((n) => Number.isInteger(n) && n >= 1)) throw new InvalidArgumentError(`Expected a size like 224 or 224,192 (height, width) for --image-size but received ${value}`);
  return [v[0]!, v[1] ?? v[0]!];
}

const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;

/** Counts of equal labels, as "7 × 4 bits, 2 × 8 bits". */
function tally(labels: string[]): string {
  const counts = new Map<string, number>();
  for (const l of labels) counts.set(l, (counts.get(l) ?? 0) + 1);
  return [...counts].map(([l, n]) => `${n} × ${l}`).join(', ');
}

/** A QDQ model (what `quantize -o` writes): who made it, how its images are prepared, what it stores. */
function printQdq(model: string, metadata: Record<string, string>, q: QdqSummary): void {
  console.log(`quantized (QDQ) model: runs in onnxruntime, e.g. pdquant eval ${model} --data <images> --backend ort`);
  const m = metadata;
  if (m['pdquant.version'] !== undefined) {
    const calib = m['pdquant.calibration_sha256'] ? ` (sha256 ${m['pdquant.calibration_sha256'].slice(0, 16)}…)` : '';
    console.log(`  written by pdquant ${m['pdquant.version']}: ${m['pdquant.method']} W${m['pdquant.w_bits']}A${m['pdquant.a_bits']}, seed ${m['pdquant.seed']}, ${m['pdquant.calibration_count']} calibration images${calib}`);
    if (m['pdquant.bit_rules']) console.log(`  bit rules: ${m['pdquant.bit_rules']}`);
    if (m['pdquant.int8_kernels'] === 'true') {
      console.log('  quantized for integer kernels (--int8-kernels): onnxruntime runs its convolutions as QLinearConv');
      const uint8 = q.weights.filter((w) => w.dataType === 'uint8').length;
      if (uint8 > 0)
        console.log(`  ${uint8} of ${q.weights.length} weight tensors are UINT8 (codes past ±64, 8-bit weights): onnxruntime runs them on its U8U8 kernels, exact on every CPU, slower than the INT8 ones' U8S8 kernels on CPUs without VNNI`);
    }
  }
  const t = transformFromMetadata(metadata);
  console.log(`  preprocessing: ${t ? describeTransform(t) : 'not recorded in the metadata'}`);
  const codes = q.weights.reduce((a, w) => a + w.bytes, 0);
  const elements = q.weights.reduce((a, w) => a + w.elements, 0);
  const bits = (w: QdqSummary['weights'][number]) => `${Math.max(1, Math.ceil(Math.log2(w.maxCode + 1)))} bits`;
  if (q.weights.length)
    console.log(`  weights: ${q.weights.length} tensors stored as ${[...new Set(q.weights.map((w) => w.dataType))].join('/')} codes; by their largest code ${tally(q.weights.map(bits))}; ` +
      `${elements.toLocaleString('en-US')} weights in ${kb(codes)} (${kb(elements * 4)} as float32)`);
  else console.log('  weights: float (no quantizers: activation-only)');
  if (q.floatWeights.length)
    console.log(`  float weights: ${q.floatWeights.length} layer${q.floatWeights.length === 1 ? '' : 's'}, stored exactly as INT32 codes times powers of two (onnxruntime would round float initializers there to 8 bits)`);
  console.log(q.acts.length ? `  activations: ${q.acts.length} quantizers (${tally(q.acts.map((a) => `${a.bits} bits`))})` : '  activations: float (no quantizers: weight-only)');
  for (const a of q.acts) console.log(`    A${a.bits}  after ${a.value}`);
}
