/** `pdquant doctor`: engine version, CUDA, threads, BLAS, the CPU, and a forward/backward self-check. */
import type { Command } from 'commander';

export function doctorCommand(program: Command, version: string): void {
  program
    .command('doctor')
    .description('print the engine (LibTorch) version, CUDA availability, threads, BLAS, the CPU and its instruction sets, and run a self-check')
    .action(async () => {
      const E = await import('../engine/index.js');
      const info = E.engineInfo();
      console.log(`pdquant ${version}`);
      console.log(`LibTorch ${info.torch}, CUDA ${info.cuda ? `available (${info.cudaDevices} device${info.cudaDevices === 1 ? '' : 's'})` : 'not available'}, ${info.threads} threads`);
      // The addon reroutes linear layers around a generic BLAS (native/src/ops.cc); say so, as it explains their speed.
      console.log(`BLAS: ${info.blas}${info.blas === 'generic' ? ' (linear layers of 128×128+ weights, at 16+ rows or 2+ on several threads, run as 1×1 convolutions on oneDNN)' : ''}`);
      const { describeMachine, machineInfo } = await import('../util/machine.js');
      // Times and float sums depend on it (run records and bench results record it too).
      console.log(`CPU: ${describeMachine(machineInfo())}`);
      const ok = E.tidy(() => {
        E.manualSeed(0);
        const x = E.randn([2, 3, 8, 8]);
        const w = E.randn([4, 3, 3, 3]).requiresGrad_();
        const y = E.conv2d(x, w, null, { padding: 1 });
        y.sum().backward();
        const g = w.grad!;
        // d(sum conv)/dw[o,c,i,j] = sum of the input window: the same for every output channel o.
        const gv = g.data() as Float32Array;
        const per = gv.length / 4;
        let maxDiff = 0;
        for (let k = 0; k < per; k++) maxDiff = Math.max(maxDiff, Math.abs(gv[k]! - gv[k + per]!));
        return y.shape.join('x') === '2x4x8x8' && maxDiff < 1e-4;
      });
      console.log(`engine self-check (conv2d forward + backward): ${ok ? 'ok' : 'FAILED'}`);
      if (!ok) process.exit(1);
    });
}
