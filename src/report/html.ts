/** A self-contained HTML report of one run: accuracies, times, memory, and charts of the reconstruction. */
import { basename } from 'node:path';
import type { RunRecord } from '../methods/pipeline.js';
import { describeTransform } from '../data/transform.js';
import { DC_CURVE_EVERY, LOSS_CURVE_EVERY } from '../recon/config.js';
import { FLOAT_ACTIVATIONS, FLOAT_WEIGHTS } from '../quant/placement.js';
import { writeFileAtomic } from '../util/atomic.js';
import { describeMachine } from '../util/machine.js';
import { dcCurveSpec, lossCurveSpec, stageSpec, toSvg, unitTimeSpec } from './charts.js';

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const num = (x: number | undefined, digits = 2) => (x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits));
const sig = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '–' : x.toPrecision(4));
const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

/** An HTML table; columns from `numericFrom` on are right-aligned numbers. */
function table(head: string[], rows: (string | number)[][], numericFrom = 1): string {
  const cell = (v: string | number, i: number) => `<td${i >= numericFrom ? ' class="n"' : ''}>${escapeHtml(String(v))}</td>`;
  return `<table><thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map(cell).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

/** A two-column table of names and values, without a header. */
function facts(rows: [string, string][]): string {
  return `<table class="facts"><tbody>${rows.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join('')}</tbody></table>`;
}

/** Quantized vs FP top-1 and top-5 of an evaluated run. */
function accuracyRows(r: RunRecord): string[][] {
  const diff = (q?: number, fp?: number) => num((q ?? NaN) - (fp ?? NaN));
  return [
    ['top-1 %', num(r.top1), num(r.fp_top1), diff(r.top1, r.fp_top1)],
    ['top-5 %', num(r.top5), num(r.fp_top5), diff(r.top5, r.fp_top5)],
  ];
}

/** The method and bits, with what stays float and what the 8-bit head and stem rule raises. */
function methodRow(r: RunRecord): string {
  const [wFloat, aFloat] = [r.w_bits === FLOAT_WEIGHTS, r.a_bits === FLOAT_ACTIVATIONS];
  const raised = r.eight_bit_head_stem ? [...(wFloat ? [] : ['first/last layer']), ...(aFloat ? [] : ['classifier input'])] : [];
  return `${r.method}, ${wFloat ? 'float weights' : `${r.w_bits}-bit weights`}, ${aFloat ? 'float activations' : `${r.a_bits}-bit activations`}` +
    `${aFloat ? ' (weight-only)' : wFloat ? ' (activation-only)' : ''}${raised.length ? `, ${raised.join(' and ')} at 8 bits` : ''}`;
}

function weightStorage(r: RunRecord): string {
  if (r.w_bits === FLOAT_WEIGHTS) return 'float (exact INT32 codes times powers of two)';
  if (r.export?.int4_storage) return 'packed UINT4';
  if (!r.int8_kernels) return 'UINT8';
  const int8 = "INT8 codes q − z (zero point 0), for onnxruntime's U8S8 kernels";
  const uint8 = 'UINT8 with zero point 128, for its U8U8 kernels (slower without VNNI)';
  const wide = r.export?.uint8_weights;
  // Records from before uint8_weights was recorded say only what the integer-kernel form is.
  if (!wide) return `${int8}, or where codes go past ±64, ${uint8}`;
  if (wide.layers === 0) return int8;
  if (wide.layers === wide.of) return `${uint8} (codes past ±64)`;
  return `${int8}; ${uint8} for the ${wide.layers} of ${wide.of} layers with codes past ±64`;
}

function exportSection(r: RunRecord): string {
  const ex = r.export;
  if (!ex) return '';
  const rows: [string, string][] = [['file', ex.path], ['weight storage', weightStorage(r)]];
  const k = ex.integer_kernels;
  if (k)
    rows.push(['integer kernels in onnxruntime', `${k.integerConvs} of ${k.convs} convolutions${k.linears ? `, ${k.integerLinears} of ${k.linears} linear layers` : ''}, ${k.integerAdds} of ${k.adds} residual additions`]);
  if (ex.max_logit_diff === undefined) rows.push(['verification', 'skipped (--no-verify)']);
  else {
    rows.push(['max |Δlogit| vs simulation', `${sig(ex.max_logit_diff)} (logits up to ${sig(ex.max_logit)})`]);
    rows.push(['same top-1 class on probe images', `${num((ex.agreement ?? NaN) * 100, 1)} %`]);
    if (ex.layerwise)
      rows.push(['layer by layer, from onnxruntime\'s inputs', (ex.layerwise.weight_layers === 0 ? 'weights float (no quantizers); ' : `weights and biases of ${ex.layerwise.weight_layers} layers equal; `) +
        (ex.layerwise.quantizers === 0 ? 'activations float (no quantizers); '
          : `${ex.layerwise.quantizers} activation quantizers equal, ${ex.layerwise.rounding_flips} of ${ex.layerwise.values} values one rounding step apart; `) +
        `logits within ${sig(ex.layerwise.max_logit_diff)}`]);
    if (ex.ort_top1 !== undefined) rows.push(['onnxruntime top-1 %', `${num(ex.ort_top1)} (simulated ${num(r.top1)})`]);
  }
  return `<h2>Exported ONNX</h2>${facts(rows)}`;
}

async function reconSection(r: RunRecord): Promise<string> {
  const units = r.recon?.units;
  const skipped = r.recon?.skipped?.length ? `<p>Not reconstructed, nothing to learn (float weights, no activation step to learn): ${escapeHtml(r.recon.skipped.join(', '))}.</p>` : '';
  if (!units || units.length === 0) return skipped ? `<h2>Reconstruction</h2>\n${skipped}` : '';
  // With DC in the background, the iteration from which a unit's optimisation ran on every intra-op thread.
  const handover = units.some((u) => u.allThreadsFrom !== undefined);
  // A unit a resumed run continued from its saved progress: its times count from there.
  const resumed = units.some((u) => u.resumedAfter !== undefined);
  const rows = units.map((u) => {
    const end = u.curve.at(-1);
    return [
      u.name, u.kind, mb(u.cacheBytes), num(u.seconds.caching, 1), num(u.seconds.dc, 1), num(u.seconds.optimization, 1),
      ...(handover ? [u.allThreadsFrom === undefined ? '–' : String(u.allThreadsFrom)] : []),
      ...(resumed ? [u.resumedAfter === undefined ? '–' : String(u.resumedAfter)] : []),
      sig(end?.rec), sig(end?.pd), sig(end?.round), u.dc ? `${sig(u.dc.lossStart)} → ${sig(u.dc.lossEnd)}` : '–',
    ];
  });
  const hasDc = units.some((u) => u.dc && u.dc.curve.length > 0);
  const cfg = r.recon!.config as unknown as Record<string, unknown>;
  return [
    '<h2>Reconstruction</h2>',
    `<p>${units.length} units; totals: caching ${num(sum(units, 'caching'), 1)} s, distribution correction ${num(sum(units, 'dc'), 1)} s, optimisation ${num(sum(units, 'optimization'), 1)} s.</p>`,
    skipped,
    `<figure>${await toSvg(unitTimeSpec(units))}<figcaption>Seconds per unit and phase.</figcaption></figure>`,
    `<figure>${await toSvg(lossCurveSpec(units))}<figcaption>Losses every ${LOSS_CURVE_EVERY} iterations (log scale; the rounding loss is zero during warm-up and left out).</figcaption></figure>`,
    hasDc ? `<figure>${await toSvg(dcCurveSpec(units))}<figcaption>Distribution-correction loss (sum over batches) every ${DC_CURVE_EVERY} Adam steps.</figcaption></figure>` : '',
    table(['unit', 'kind', 'cache MB', 'caching s', 'DC s', 'optimisation s', ...(handover ? ['all threads from iteration'] : []), ...(resumed ? ['resumed after iteration'] : []), 'final rec', 'final pd', 'final round', 'DC loss'], rows, 2),
    '<h3>Hyper-parameters</h3>',
    table(['parameter', 'value'], Object.entries(cfg).map(([k, v]) => [k, typeof v === 'object' ? JSON.stringify(v) : String(v)])),
  ].join('\n');
}

const sum = (units: { seconds: Record<string, number> }[], phase: string) => units.reduce((a, u) => a + (u.seconds[phase] ?? 0), 0);

const STYLE = `body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0}td,th{padding:.2em .7em;border-bottom:1px solid #eee;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}figure{margin:1em 0}figcaption{color:#666;font-size:.9em}
.big{font-size:1.3em}.facts th{font-weight:normal;color:#666}`;

/** The report as one HTML string: tables, SVG charts and, at the end, the run record itself. */
export async function renderReport(r: RunRecord): Promise<string> {
  const title = `${basename(r.model.path)} — ${r.method} W${r.w_bits}A${r.a_bits}`;
  const headline = r.top1 !== undefined
    ? `<p class="big">top-1 <b>${num(r.top1)} %</b> (FP ${num(r.fp_top1)} %) on ${r.n} images</p>`
    : '<p class="big">Not evaluated (no --eval given).</p>';
  const total = Object.values(r.seconds).reduce((a, b) => a + b, 0);
  const meta: [string, string][] = [
    ['model', `${r.model.path} (sha256 ${r.model.sha256.slice(0, 16)}…)`],
    ['method', methodRow(r)],
    ...(r.bit_rules?.length ? [['bit rules', r.bit_rules.map((b) => `${b.match} → W${b.wBits}A${b.aBits}`).join('; ')] as [string, string]] : []),
    ['calibration', `${r.calibration.count} images from ${r.calibration.source} (sha256 ${r.calibration.sha256.slice(0, 16)}…)`],
    ['preprocessing', r.preprocess ? describeTransform(r.preprocess) : 'not recorded (model-ready .npy tensors are used as they are)'],
    ['seed', String(r.seed)],
    ['started', r.started],
    ['time', `${num(total, 1)} s in all; peak memory ${r.peak_rss_mb} MB`],
    ['engine', `pdquant ${r.tool.version}, LibTorch ${r.tool.torch}${r.tool.blas ? ` (BLAS ${r.tool.blas})` : ''}, Node ${r.tool.node}, ${r.tool.threads} threads`],
    ...(r.machine ? [['machine', describeMachine(r.machine)] as [string, string]] : []),
  ];
  // The record is embedded so the report alone is enough to reproduce the run; "<" is escaped so it cannot end the script element.
  const embedded = JSON.stringify(r).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pdquant: ${escapeHtml(title)}</title><style>${STYLE}</style></head>
<body>
<h1>${escapeHtml(title)}</h1>
${headline}
${facts(meta)}
${r.top1 !== undefined ? `<h2>Accuracy</h2>${table(['', 'quantized', 'FP', 'difference'], accuracyRows(r))}` : ''}
${exportSection(r)}
<h2>Time per stage</h2>
<figure>${await toSvg(stageSpec(r.seconds))}</figure>
${await reconSection(r)}
<script type="application/json" id="run-record">${embedded}</script>
</body></html>
`;
}

/** Renders the report and writes it atomically (a temp file, then rename). */
export async function writeReport(r: RunRecord, path: string): Promise<void> {
  writeFileAtomic(path, await renderReport(r));
}
