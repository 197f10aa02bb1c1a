#!/usr/bin/env node
// The `graft` executable. Runs the compiled CLI (dist/src/cli/index.js) after `npm run build`;
// otherwise, or when GRAFT_FROM_SOURCE=1, runs the TypeScript source through tsx (development).
import { existsSync } from 'node:fs';

const root = new URL('../', import.meta.url);
const compiled = new URL('dist/src/cli/index.js', root);
let cli;
if (process.env.GRAFT_FROM_SOURCE !== '1' && existsSync(compiled)) {
  cli = await import(compiled.href);
} else {
  try {
    const { register } = await import('tsx/esm/api');
    register();
  } catch {
    process.stderr.write('graft: error: graft is not built and tsx is not installed. Run `npm run build` (or `npm install` for development).\n');
    process.exit(1);
  }
  cli = await import(new URL('src/cli/index.ts', root).href);
}
await cli.main(process.argv);
