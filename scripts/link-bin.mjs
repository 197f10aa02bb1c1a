// Makes `npx graft` work inside a fresh clone: npm links the bins of dependencies, not the
// project's own, so `prepare` links node_modules/.bin/graft to bin/graft.js.
import fs from 'node:fs';
import path from 'node:path';
const bin = path.resolve('node_modules/.bin');
fs.mkdirSync(bin, { recursive: true });
const link = path.join(bin, 'graft');
fs.rmSync(link, { force: true });
fs.symlinkSync(path.relative(bin, path.resolve('bin/graft.js')), link);
fs.chmodSync(path.resolve('bin/graft.js'), 0o755);
