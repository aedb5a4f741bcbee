import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeMachine, isaFromCpuinfo, machineInfo } from '../src/util/machine.js';

test('the instruction sets that matter are read from an x86 flags line and an Arm Features line', () => {
  const x86 = 'processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 avx512f avx512_vnni\n\nprocessor\t: 1\nflags\t\t: fpu\n';
  assert.deepEqual(isaFromCpuinfo(x86), ['sse4_1', 'sse4_2', 'avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512_vnni']);
  const arm = 'processor\t: 0\nFeatures\t: fp asimd evtstrm aes crc32 asimddp i8mm\n';
  assert.deepEqual(isaFromCpuinfo(arm), ['asimd', 'asimddp', 'i8mm']);
  assert.deepEqual(isaFromCpuinfo('processor : 0\n'), []);
});

test('machineInfo describes this machine in one line', () => {
  const m = machineInfo();
  assert.ok(m.cores >= 1 && m.cpu.length > 0 && m.arch.length > 0);
  assert.equal(describeMachine({ cpu: 'Some CPU', cores: 1, arch: 'arm64', isa: [] }), 'Some CPU, 1 core, arm64');
  assert.equal(describeMachine({ cpu: 'AMD EPYC', cores: 2, arch: 'x64', isa: ['avx', 'avx2'] }), 'AMD EPYC, 2 cores, x64 (avx avx2)');
});
