/** `pdquant report`: turn a run record (`quantize --json`) into an HTML report with charts. */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { existingPath, outputFile } from './options.js';

export function reportCommand(program: Command): void {
  program
    .command('report')
    .description('write an HTML report with charts from a run record (`pdquant quantize --json`)')
    .argument('<record>', 'run record JSON', existingPath('Run record'))
    .option('-o, --output <file>', 'HTML file to write (default: the record name with .html)', outputFile('-o'))
    .action(async (path: string, f: { output?: string }) => {
      const { readRunRecord, writeReport } = await import('../report/index.js');
      const out = f.output ?? path.replace(/(\.json)?$/i, '.html');
      if (resolve(out) === resolve(path)) throw new Error(`The report would overwrite its run record ${path}; choose another -o`);
      await writeReport(readRunRecord(path), out);
      console.log(`wrote ${out}`);
    });
}
