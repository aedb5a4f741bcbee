/** The pdquant command line: parses, wires, prints. */
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { registerCommands } from './commands.js';
import { reportError } from './errors.js';

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('pdquant')
  .description('Post-training quantization of CNNs (PD-Quant, QDrop, BRECQ, AdaRound) — ONNX in, verified ONNX out')
  .version(pkg.version, '-V, --version')
  // The message alone, not the whole usage after it: one clear line and where the options are.
  .showHelpAfterError('(add --help for the options)')
  .exitOverride();

registerCommands(program, pkg.version);

// `pdquant inspect model.onnx | head`: a reader that stops early is not an error of ours.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode);
  reportError(e);
}
