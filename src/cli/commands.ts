/** The command table: each entry registers one sub-command. */
import type { Command } from 'commander';
import { doctorCommand } from './doctor.js';
import { evalCommand } from './eval.js';
import { inspectCommand } from './inspect.js';
import { quantizeCommand } from './quantize.js';
import { reportCommand } from './report.js';
import { sensitivityCommand } from './sensitivity.js';

const commands: ((program: Command, version: string) => void)[] = [doctorCommand, inspectCommand, evalCommand, quantizeCommand, sensitivityCommand, reportCommand];

export function registerCommands(program: Command, version: string): void {
  for (const register of commands) register(program, version);
}
