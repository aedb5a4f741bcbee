/**
 * The CPU a run or a benchmark ran on. Timings mean nothing without it, and float results and onnxruntime's integer
 * kernels depend on its instruction sets: without VNNI, onnxruntime's U8S8 kernels add products in a saturating int16
 * (measured; the export writes 8-bit weights as UINT8 for that reason), and LibTorch's float sums round differently
 * with and without AVX2.
 */
import { readFileSync } from 'node:fs';
import { arch, availableParallelism, cpus } from 'node:os';

export interface MachineInfo {
  cpu: string;
  cores: number;
  arch: string;
  /** The instruction sets that change pdquant's numbers or speed, as the OS names them ([] where it does not say). */
  isa: string[];
}

/** x86 (Linux flags) and Arm (Linux Features) names: vector widths, fused multiply-add, integer dot products. */
const RELEVANT_ISA = [
  'sse4_1', 'sse4_2', 'avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512_vnni', 'avx_vnni', 'avx512_bf16', 'amx_int8',
  'asimd', 'asimddp', 'i8mm', 'sve', 'sve2',
];

/** The relevant instruction sets in the first CPU's flag line of a /proc/cpuinfo text. */
export function isaFromCpuinfo(cpuinfo: string): string[] {
  const line = /^(?:flags|Features)\s*:\s*(.*)$/m.exec(cpuinfo);
  if (!line) return [];
  const flags = new Set(line[1]!.trim().split(/\s+/));
  return RELEVANT_ISA.filter((f) => flags.has(f));
}

export function machineInfo(): MachineInfo {
  let isa: string[] = [];
  try {
    isa = isaFromCpuinfo(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    // not Linux: the instruction sets stay unknown
  }
  return { cpu: cpus()[0]?.model.trim() ?? 'unknown', cores: availableParallelism(), arch: arch(), isa };
}

/** One line for people: the model, cores, architecture and instruction sets. */
export function describeMachine(m: MachineInfo): string {
  return `${m.cpu}, ${m.cores} core${m.cores === 1 ? '' : 's'}, ${m.arch}${m.isa.length ? ` (${m.isa.join(' ')})` : ''}`;
}
