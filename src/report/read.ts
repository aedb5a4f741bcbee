/** Reads a run record written by `pdquant quantize --json`, refusing anything else with a clear message. */
import { readFileSync } from 'node:fs';
import type { RunRecord } from '../methods/pipeline.js';

/** The fields the report reads, with their types: a record missing one is named rather than half-rendered. */
const REQUIRED: [string, 'string' | 'number' | 'object'][] = [
  ['tool.version', 'string'], ['tool.torch', 'string'], ['tool.node', 'string'], ['tool.threads', 'number'],
  ['model.path', 'string'], ['model.sha256', 'string'], ['method', 'string'], ['w_bits', 'number'], ['a_bits', 'number'],
  ['seed', 'number'], ['calibration.source', 'string'], ['calibration.count', 'number'], ['calibration.sha256', 'string'],
  ['seconds', 'object'], ['started', 'string'], ['peak_rss_mb', 'number'],
];

const at = (v: unknown, path: string) => path.split('.').reduce<unknown>((o, k) => (o !== null && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), v);

export function readRunRecord(path: string): RunRecord {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path} is not a JSON file: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (at(value, 'tool.name') !== 'pdquant') throw new Error(`${path} is not a pdquant run record (one written by \`pdquant quantize --json\`)`);
  const missing = REQUIRED.find(([field, type]) => {
    const v = at(value, field);
    return typeof v !== type || v === null;
  });
  if (missing) throw new Error(`${path} is not a complete pdquant run record: ${missing[0]} is missing or not a ${missing[1]}`);
  const units = at(value, 'recon.units');
  if (at(value, 'recon') !== undefined && (!Array.isArray(units) || units.some((u) => !Array.isArray(at(u, 'curve')) || typeof at(u, 'seconds.dc') !== 'number' || typeof at(u, 'name') !== 'string')))
    throw new Error(`${path} is not a complete pdquant run record: recon.units is malformed`);
  return value as RunRecord;
}
