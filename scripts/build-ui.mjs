// Writes graft ui's page script (dist/ui-web/app.js) after `tsc`, so an install without esbuild serves it.
import fs from 'node:fs';
import path from 'node:path';

const { bundleAppScript, PREBUILT_SCRIPT } = await import(new URL('../dist/src/ui/assets.js', import.meta.url).href);
fs.mkdirSync(path.dirname(PREBUILT_SCRIPT), { recursive: true });
fs.writeFileSync(PREBUILT_SCRIPT, await bundleAppScript());
console.log(`wrote ${path.relative(process.cwd(), PREBUILT_SCRIPT)}`);
