/** Vega-Lite chart specs for a run record, rendered to static SVG so the report needs no script or network. */
import type { TopLevelSpec } from 'vega-lite';
import { DC_CURVE_EVERY } from '../recon/config.js';
import type { UnitRecord } from '../recon/run.js';

/** The chart inside a faceted spec (vega-lite exports no stable name for it). */
type PanelSpec = Extract<TopLevelSpec, { facet: unknown }>['spec'];

/** Renders a Vega-Lite spec to an SVG string (headless, no canvas needed). */
export async function toSvg(spec: TopLevelSpec): Promise<string> {
  const [{ View, parse }, { compile }] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new View(parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

const FONT = { config: { font: 'system-ui, sans-serif', view: { stroke: '#ddd' } } } as const;

/** Seconds per stage of the run (load, calibration data, reconstruction, evaluation, export, ...). */
export function stageSpec(seconds: Record<string, number>): TopLevelSpec {
  return {
    ...FONT,
    width: 420,
    data: { values: Object.entries(seconds).map(([stage, s]) => ({ stage, seconds: s })) },
    mark: { type: 'bar', color: '#4c78a8' },
    encoding: {
      y: { field: 'stage', type: 'nominal', sort: null, title: null },
      x: { field: 'seconds', type: 'quantitative', title: 'seconds' },
    },
  };
}

/** Seconds per reconstruction unit, stacked by phase (caching, distribution correction, optimisation). */
export function unitTimeSpec(units: UnitRecord[]): TopLevelSpec {
  const phases = ['caching', 'dc', 'optimization'] as const;
  const values = units.flatMap((u) => phases.map((phase, p) => ({ unit: u.name, phase, p, seconds: u.seconds[phase] })));
  return {
    ...FONT,
    width: 420,
    data: { values },
    mark: 'bar',
    encoding: {
      y: { field: 'unit', type: 'nominal', sort: units.map((u) => u.name), title: null },
      x: { field: 'seconds', type: 'quantitative', stack: 'zero', title: 'seconds' },
      color: { field: 'phase', type: 'nominal', sort: [...phases], scale: { domain: [...phases], range: ['#9ecae9', '#f58518', '#4c78a8'] } },
      order: { field: 'p' },
    },
  };
}

/**
 * Reconstruction losses against the iteration, one small chart per unit (each with its own y scale,
 * logarithmic: the losses span decades). Zero values (the rounding loss during warm-up) are left out.
 */
export function lossCurveSpec(units: UnitRecord[]): TopLevelSpec {
  const kinds = ['rec', 'pd', 'round'] as const;
  const values = units.flatMap((u) =>
    u.curve.flatMap((p) => kinds.filter((k) => p[k] > 0 && Number.isFinite(p[k])).map((k) => ({ unit: u.name, iter: p.iter, loss: p[k], kind: k }))),
  );
  return smallMultiples(values, units, {
    width: 190,
    height: 110,
    mark: { type: 'line', strokeWidth: 1.5 },
    encoding: {
      x: { field: 'iter', type: 'quantitative', title: 'iteration' },
      y: { field: 'loss', type: 'quantitative', scale: { type: 'log' }, title: 'loss' },
      color: { field: 'kind', type: 'nominal', sort: [...kinds], scale: { domain: [...kinds], range: ['#4c78a8', '#e45756', '#54a24b'] }, title: 'loss' },
    },
  });
}

/** Distribution-correction loss against the Adam step (recorded every DC_CURVE_EVERY steps), one small chart per unit. */
export function dcCurveSpec(units: UnitRecord[]): TopLevelSpec {
  const withDc = units.filter((u) => u.dc && u.dc.curve.length > 0);
  const values = withDc.flatMap((u) => u.dc!.curve.map((loss, i) => ({ unit: u.name, step: i * DC_CURVE_EVERY, loss })));
  return smallMultiples(values, withDc, {
    width: 190,
    height: 90,
    mark: { type: 'line', color: '#f58518', point: { color: '#f58518' } },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'DC step' },
      y: { field: 'loss', type: 'quantitative', scale: { zero: false }, title: 'DC loss' },
    },
  });
}

/** One small chart per unit, four to a row, in network order, each with its own y scale and x axis. */
function smallMultiples(values: Record<string, unknown>[], units: UnitRecord[], spec: PanelSpec): TopLevelSpec {
  return {
    ...FONT,
    data: { values },
    facet: { field: 'unit', type: 'nominal', sort: units.map((u) => u.name), title: null },
    columns: 4,
    spec,
    resolve: { scale: { y: 'independent' }, axis: { x: 'independent' } },
  };
}
