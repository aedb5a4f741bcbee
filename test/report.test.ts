// The HTML report: its charts follow the record, text from the record is escaped, and the record is embedded intact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderReport } from '../src/report/index.js';
import type { RunRecord } from '../src/methods/pipeline.js';
import type { UnitRecord } from '../src/recon/run.js';
import { DEFAULTS } from '../src/recon/config.js';

const unit = (name: string, dc: boolean): UnitRecord => ({
  name,
  kind: 'block',
  seconds: { caching: 0.5, dc: dc ? 3 : 0, optimization: 10 },
  cacheBytes: 3 * 2 ** 20,
  ...(dc ? { dc: { lossStart: 12, lossEnd: 7, curve: [12, 9, 7] } } : {}),
  curve: [0, 100, 200].map((iter) => ({ iter, rec: 1 / (iter + 1), pd: 2, round: iter < 100 ? 0 : 50 - iter / 10, beta: 20 })),
});

function record(extra: Partial<RunRecord> = {}): RunRecord {
  return {
    tool: { name: 'pdquant', version: '0.1.0', torch: '1.13.0', node: 'v20.0.0', threads: 2 },
    model: { path: 'models/<b>net</b>.onnx', sha256: 'a'.repeat(64) },
    method: 'pdquant', w_bits: 4, a_bits: 2, eight_bit_head_stem: true, seed: 1005,
    calibration: { source: 'calib.txt', count: 1024, sha256: 'b'.repeat(64) },
    seconds: { load: 0.1, reconstruction: 20 },
    started: '2026-11-27T00:00:00.000Z',
    peak_rss_mb: 512,
    ...extra,
  };
}

const svgCount = (html: string) => (html.match(/<svg/g) ?? []).length;
const embedded = (html: string) => JSON.parse(html.match(/<script type="application\/json" id="run-record">(.*)<\/script>/)![1]!);

test('a reconstruction run: stage, unit-time, loss-curve and DC charts, units in network order', async () => {
  const units = [unit('stem', false), unit('layer2.0', true), unit('layer1.0', true)];
  const r = record({ top1: 72.07, top5: 97.5, fp_top1: 81.03, fp_top5: 99, n: 10000, recon: { config: DEFAULTS, units } });
  const html = await renderReport(r);
  assert.equal(svgCount(html), 4);
  assert.match(html, /top-1 <b>72\.07 %<\/b> \(FP 81\.03 %\) on 10000 images/);
  assert.match(html, /<td class="n">-8\.96<\/td>/, 'top-1 difference to FP');
  const rows = [...html.matchAll(/<tr><td>(stem|layer2\.0|layer1\.0)<\/td>/g)].map((m) => m[1]);
  assert.deepEqual(rows, ['stem', 'layer2.0', 'layer1.0'], 'the unit table keeps network order');
  const lossChart = html.match(/<svg[\s\S]*?<\/svg>/g)![2]!;
  const at = ['stem', 'layer2.0', 'layer1.0'].map((n) => lossChart.indexOf(`>${n}</text>`));
  assert.ok(at[0]! >= 0 && at[0]! < at[1]! && at[1]! < at[2]!, `loss-curve panels in network order: ${at}`);
  assert.match(html, /12\.00 → 7\.000/, 'DC loss start → end');
  assert.doesNotMatch(html, /all threads from/, 'no handover column when no unit handed over');
  assert.doesNotMatch(html, /resumed after/, 'no resume column when no unit was continued');
  assert.deepEqual(embedded(html), r);
});

test('units left out with nothing to learn are named, also when no unit was reconstructed', async () => {
  const some = await renderReport(record({ w_bits: 32, recon: { config: DEFAULTS, units: [unit('layer1.0', true)], skipped: ['fc'] } }));
  assert.match(some, /<p>1 units; totals: [^<]*<\/p>\n<p>Not reconstructed, nothing to learn \(float weights, no activation step to learn\): fc\.<\/p>/);
  const none = await renderReport(record({ w_bits: 32, method: 'adaround', recon: { config: DEFAULTS, units: [], skipped: ['stem', 'fc'] } }));
  assert.match(none, /<h2>Reconstruction<\/h2>\n<p>Not reconstructed, nothing to learn \(float weights, no activation step to learn\): stem, fc\.<\/p>/);
  assert.doesNotMatch(await renderReport(record({ recon: { config: DEFAULTS, units: [unit('stem', false)] } })), /Not reconstructed/);
});

test('units that went to every intra-op thread mid-way show the iteration, the others a dash', async () => {
  const units = [{ ...unit('stem', true), allThreadsFrom: 3544 }, unit('layer1.0', true)];
  const html = await renderReport(record({ recon: { config: DEFAULTS, units } }));
  assert.match(html, /<th>all threads from iteration<\/th>/);
  assert.match(html, /<tr><td>stem<\/td>(<td[^>]*>[^<]*<\/td>){5}<td class="n">3544<\/td>/);
  assert.match(html, /<tr><td>layer1\.0<\/td>(<td[^>]*>[^<]*<\/td>){5}<td[^>]*>–<\/td>/);
});

test('a unit a resumed run continued inside shows the iteration it continued after (its times count from there)', async () => {
  const units = [unit('stem', true), { ...unit('layer1.0', true), resumedAfter: 812 }];
  const html = await renderReport(record({ recon: { config: DEFAULTS, units } }));
  assert.match(html, /<th>resumed after iteration<\/th>/);
  assert.match(html, /<tr><td>layer1\.0<\/td>(<td[^>]*>[^<]*<\/td>){5}<td class="n">812<\/td>/);
  assert.match(html, /<tr><td>stem<\/td>(<td[^>]*>[^<]*<\/td>){5}<td[^>]*>–<\/td>/);
});

test("the engine row names LibTorch's BLAS where the record has it (records from before it was recorded do not)", async () => {
  const tool = { ...record().tool, blas: 'generic' };
  assert.match(await renderReport(record({ tool })), /LibTorch 1\.13\.0 \(BLAS generic\), Node v20\.0\.0, 2 threads/);
  assert.match(await renderReport(record()), /LibTorch 1\.13\.0, Node v20\.0\.0, 2 threads/);
});

test('the machine row names the CPU and its instruction sets where the record has them', async () => {
  const machine = { cpu: 'AMD EPYC', cores: 2, arch: 'x64', isa: ['avx', 'avx2', 'fma'] };
  assert.match(await renderReport(record({ machine })), /<th>machine<\/th><td>AMD EPYC, 2 cores, x64 \(avx avx2 fma\)<\/td>/);
  assert.doesNotMatch(await renderReport(record()), /<th>machine<\/th>/);
});

test('a scale-only run without evaluation: one chart, no reconstruction section', async () => {
  const html = await renderReport(record({ method: 'mse' }));
  assert.equal(svgCount(html), 1);
  assert.match(html, /Not evaluated/);
  assert.doesNotMatch(html, /<h2>Reconstruction<\/h2>/);
});

test('text from the record is escaped, and "</script>" in it cannot end the embedded record', async () => {
  const r = record({ calibration: { source: '</script><script>alert(1)</script>', count: 4, sha256: 'c'.repeat(64) } });
  const html = await renderReport(r);
  assert.doesNotMatch(html, /<b>net<\/b>/);
  assert.match(html, /&#60;b&#62;net&#60;\/b&#62;\.onnx/);
  assert.doesNotMatch(html, /<script>alert/);
  assert.deepEqual(embedded(html), r);
});

test('the export section: the logits, the top-1 agreement and the layer-by-layer check', async () => {
  const layerwise = { quantizers: 63, values: 217161728, rounding_flips: 265, max_logit_diff: 8.64e-7, failed_at: null, weight_layers: 53, weights_failed_at: null, same_kernels: true };
  const html = await renderReport(record({ export: { path: 'm.q.onnx', int4_storage: false, max_logit_diff: 8.18e-4, max_logit: 0.541, agreement: 0.703, layerwise } }));
  assert.match(html, /<th>same top-1 class on probe images<\/th><td>70\.3 %<\/td>/);
  assert.match(html, /<th>layer by layer, from onnxruntime&#39;s inputs<\/th><td>weights and biases of 53 layers equal; 63 activation quantizers equal, 265 of 217161728 values one rounding step apart; logits within 8\.640e-7<\/td>/);
  const weightOnly = await renderReport(record({ export: { path: 'm.q.onnx', int4_storage: false, max_logit_diff: 2e-6, max_logit: 12.7, agreement: 1,
    layerwise: { ...layerwise, quantizers: 0, values: 0, rounding_flips: 0 } } }));
  assert.match(weightOnly, /<td>weights and biases of 53 layers equal; activations float \(no quantizers\); logits within 8\.640e-7<\/td>/);
  assert.match(html, /<th>method<\/th><td>pdquant, 4-bit weights, 2-bit activations, first\/last layer and classifier input at 8 bits<\/td>/);
  const floatActs = await renderReport(record({ a_bits: 32 }));
  assert.match(floatActs, /<th>method<\/th><td>pdquant, 4-bit weights, float activations \(weight-only\), first\/last layer at 8 bits<\/td>/);
  const floatWeights = await renderReport(record({ w_bits: 32, export: { path: 'm.q.onnx', int4_storage: false, max_logit_diff: 2e-6, max_logit: 12.7, agreement: 1, layerwise: { ...layerwise, weight_layers: 0 } } }));
  assert.match(floatWeights, /<th>method<\/th><td>pdquant, float weights, 2-bit activations \(activation-only\), classifier input at 8 bits<\/td>/);
  assert.match(floatWeights, /<th>weight storage<\/th><td>float \(exact INT32 codes times powers of two\)<\/td>/);
  assert.match(floatWeights, /<td>weights float \(no quantizers\); 63 activation quantizers equal, 265 of 217161728 values one rounding step apart; logits within/);
  const kernels = await renderReport(record({ w_bits: 4, a_bits: 8, int8_kernels: true, export: { path: 'm.q.onnx', int4_storage: false, uint8_weights: { layers: 2, of: 20 },
    integer_kernels: { integerConvs: 19, convs: 19, integerAdds: 9, adds: 9, integerLinears: 0, linears: 1 } } }));
  assert.match(kernels, /<th>weight storage<\/th><td>INT8 codes q − z \(zero point 0\), for onnxruntime&#39;s U8S8 kernels; UINT8 with zero point 128, for its U8U8 kernels \(slower without VNNI\) for the 2 of 20 layers with codes past ±64<\/td>/);
  assert.match(kernels, /<th>integer kernels in onnxruntime<\/th><td>19 of 19 convolutions, 0 of 1 linear layers, 9 of 9 residual additions<\/td>/);
  const unchecked = await renderReport(record({ export: { path: 'm.q.onnx', int4_storage: false } }));
  assert.match(unchecked, /skipped \(--no-verify\)/);
  assert.doesNotMatch(unchecked, /layer by layer/);
});
