/** A progress bar on stderr (silent when stderr is not a terminal). */
import cliProgress from 'cli-progress';

export function progressBar(label: string): { update(done: number, total: number, extra?: string): void; stop(): void } {
  const bar = new cliProgress.SingleBar(
    { format: `${label} [{bar}] {value}/{total} {extra} ETA {eta_formatted}`, stream: process.stderr, hideCursor: true, clearOnComplete: true },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(done, total, extra = '') {
      if (!started) {
        bar.start(total, 0, { extra });
        started = true;
      }
      bar.update(done, { extra });
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
