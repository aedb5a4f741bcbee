#!/usr/bin/env node
// Entry point: the CLI is compiled TypeScript in dist/.
import('../dist/src/cli/main.js').catch((e) => {
  if (e && e.code === 'ERR_MODULE_NOT_FOUND' && String(e.message).includes('dist/src/cli')) {
    console.error('pdquant: not built yet. Run `npm run build` (or `bash scripts/setup.sh`) first.');
  } else {
    console.error(`pdquant: ${e && e.message ? e.message : e}`);
  }
  process.exit(1);
});
