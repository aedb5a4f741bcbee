/**
 * A unit's progress in the run folder while its optimisation runs: where it stood after an iteration, so that a run
 * resumed after a crash continues inside the unit instead of starting it again (hours on a large model).
 *
 * One file, replaced atomically: a little-endian u32 header length, the header (JSON), then the arrays' bytes.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';
import type { UnitProgressState } from './unit.js';
import { anotherRunError, differingFields } from './fingerprint.js';

const FORMAT = 'pdquant-unit-progress-1';

export function unitProgressPath(runDir: string): string {
  return join(runDir, 'unit-progress.bin');
}

interface Header {
  format: string;
  unit: string;
  fingerprint: Record<string, unknown>;
  iteration: number;
  curve: UnitProgressState['curve'];
  adamSteps: { w: (number | null)[]; a: (number | null)[] | null };
  rngDevices: string[];
  /** Byte lengths of the arrays, in the order they follow the header. */
  lengths: number[];
}

export function writeUnitProgress(runDir: string, unit: string, fingerprint: Record<string, unknown>, s: UnitProgressState): void {
  const adam = (list: UnitProgressState['adamW']) => list.flatMap((x) => (x ? [x.m, x.v] : []));
  const floats = [...s.alphas, ...s.steps, ...adam(s.adamW), ...(s.adamA ? adam(s.adamA) : [])];
  // The reader takes them as float32 (what α, the steps and their moments are).
  if (floats.some((a) => !(a instanceof Float32Array))) throw new TypeError('unit progress holds float32 parameters only');
  const arrays: Uint8Array[] = [...floats, ...s.rng.map((r) => r.state)].map((a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  const header: Header = {
    format: FORMAT, unit, fingerprint, iteration: s.iteration, curve: s.curve,
    adamSteps: { w: s.adamW.map((x) => x?.step ?? null), a: s.adamA ? s.adamA.map((x) => x?.step ?? null) : null },
    rngDevices: s.rng.map((r) => r.device),
    lengths: arrays.map((a) => a.byteLength),
  };
  // The counts of alphas and steps follow from the unit; they are in the header so a reader can check them.
  const json = new TextEncoder().encode(JSON.stringify({ ...header, alphas: s.alphas.length, steps: s.steps.length }));
  const head = new Uint8Array(4);
  new DataView(head.buffer).setUint32(0, json.byteLength, true);
  writeFileAtomic(unitProgressPath(runDir), Buffer.concat([head, json, ...arrays]));
}

/**
 * The unit whose progress the run folder holds, and that progress; undefined when it holds none. Progress saved by
 * another run (another fingerprint) is refused, as its checkpoint is.
 */
export function readUnitProgress(runDir: string, fingerprint: Record<string, unknown>): { unit: string; state: UnitProgressState } | undefined {
  const path = unitProgressPath(runDir);
  if (!existsSync(path)) return undefined;
  const bytes = readFileSync(path);
  const unreadable = (e: unknown) =>
    new Error(`The unit progress file ${path} cannot be read (${(e as Error).message}); delete it to redo that unit from its start`);
  let header: Header & { alphas: number; steps: number };
  let offset: number;
  try {
    const n = bytes.readUInt32LE(0);
    header = JSON.parse(bytes.subarray(4, 4 + n).toString('utf8'));
    if (header.format !== FORMAT) throw new Error(`format ${String(header.format)}`);
    offset = 4 + n;
    const total = header.lengths.reduce((a, b) => a + b, offset);
    if (total !== bytes.byteLength) throw new Error(`${bytes.byteLength} bytes where the header describes ${total}`);
  } catch (e) {
    throw unreadable(e);
  }
  const differing = differingFields(header.fingerprint, fingerprint);
  if (differing.length > 0) throw anotherRunError('unit progress', runDir, differing);
  try {
    const arrays = header.lengths.map((len) => {
      const copy = new Uint8Array(bytes.subarray(offset, offset + len));
      offset += len;
      return copy;
    });
    const floats = (a: Uint8Array) => new Float32Array(a.buffer, a.byteOffset, a.byteLength / 4);
    let i = 0;
    const next = () => arrays[i++]!;
    const alphas = Array.from({ length: header.alphas }, () => floats(next()));
    const steps = Array.from({ length: header.steps }, () => floats(next()));
    const adam = (counts: (number | null)[]) => counts.map((step) => (step === null ? null : { m: floats(next()), v: floats(next()), step }));
    const adamW = adam(header.adamSteps.w);
    const adamA = header.adamSteps.a ? adam(header.adamSteps.a) : null;
    const rng = header.rngDevices.map((device) => ({ device, state: next() }));
    return { unit: header.unit, state: { iteration: header.iteration, curve: header.curve, alphas, steps, adamW, adamA, rng } };
  } catch (e) {
    throw unreadable(e);
  }
}

export function removeUnitProgress(runDir: string): void {
  rmSync(unitProgressPath(runDir), { force: true });
}
