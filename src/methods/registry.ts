/** Named methods (PDQUANT.md §7): each a small preset over scale initialisation and reconstruction. */
import type { InitMethod } from '../quant/uniform.js';

export interface MethodPreset {
  name: string;
  summary: string;
  /** Scale initialisation of weights and activations. */
  init: InitMethod;
  /** Reconstruction settings; null for the scale-only baselines. */
  recon: ReconPreset | null;
}

export interface ReconPreset {
  unit: 'layer' | 'block';
  learnActSteps: boolean;
  rec: boolean;
  pd: boolean;
  drop: boolean;
  dc: boolean;
}

const table = new Map<string, MethodPreset>();

/** Adds presets; refuses duplicates. */
export function registerMethods(presets: MethodPreset[]): void {
  for (const p of presets) {
    if (table.has(p.name)) throw new Error(`method ${p.name} registered twice`);
    table.set(p.name, p);
  }
}

export function methodNames(): string[] {
  return [...table.keys()];
}

export function method(name: string): MethodPreset {
  const m = table.get(name);
  if (!m) throw new Error(`Unknown method ${name}; choose one of ${methodNames().join(', ')}`);
  return m;
}

const block = (rest: Omit<ReconPreset, 'unit' | 'learnActSteps'>): ReconPreset => ({ unit: 'block', learnActSteps: true, ...rest });

registerMethods([
  { name: 'minmax', summary: 'nearest rounding, ranges from min/max', init: 'minmax', recon: null },
  { name: 'mse', summary: 'nearest rounding, scales minimising the Lp-2.4 error', init: 'mse', recon: null },
  { name: 'cosine', summary: 'nearest rounding, scales maximising cosine similarity', init: 'cosine', recon: null },
  { name: 'adaround', summary: 'layer-wise learned rounding, MSE reconstruction', init: 'mse', recon: { unit: 'layer', learnActSteps: false, rec: true, pd: false, drop: false, dc: false } },
  { name: 'brecq', summary: 'block-wise learned rounding and steps, MSE reconstruction', init: 'mse', recon: block({ rec: true, pd: false, drop: false, dc: false }) },
  { name: 'qdrop', summary: 'BRECQ + random dropping of activation quantization', init: 'mse', recon: block({ rec: true, pd: false, drop: true, dc: false }) },
  { name: 'pd-only', summary: 'prediction-difference loss only', init: 'mse', recon: block({ rec: false, pd: true, drop: false, dc: false }) },
  { name: 'pd-reg', summary: 'PD loss + reconstruction regulariser', init: 'mse', recon: block({ rec: true, pd: true, drop: false, dc: false }) },
  { name: 'pd-reg-drop', summary: 'PD + Reg + QDrop', init: 'mse', recon: block({ rec: true, pd: true, drop: true, dc: false }) },
  { name: 'qdrop-dc', summary: 'QDrop + distribution correction', init: 'mse', recon: block({ rec: true, pd: false, drop: true, dc: true }) },
  { name: 'pdquant', summary: 'PD-Quant: PD + Reg + QDrop + distribution correction', init: 'mse', recon: block({ rec: true, pd: true, drop: true, dc: true }) },
]);
