/**
 * Imports only go down: engine → nothing above it; pipeline → engine; surfaces → anything.
 * Scans every import of src/ (static, type-only, side-effect, re-export and dynamic `import(...)`).
 * The layers are those of docs/engine.md and docs/dev/CONTRIBUTING-ENGINE.md:
 *   engine    src/{onnx, ir, ops, autodiff, optim, runtime, step, nn}
 *   pipeline  src/{data, features, train, adapt, tune, report, models, import, run, web, choose}
 *   surfaces  src/{cli, api, demo, server, ui}
 * src/util/ and src/tensor.ts sit below everything; src/index.ts (the library entry) above everything.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src');
const ENGINE = new Set(['onnx', 'ir', 'ops', 'autodiff', 'optim', 'runtime', 'step', 'nn']);
const PIPELINE = new Set(['data', 'features', 'train', 'adapt', 'tune', 'report', 'models', 'import', 'run', 'web', 'choose', 'scale']);
const SURFACES = new Set(['cli', 'api', 'demo', 'server', 'ui']);
const BASE = new Set(['util', 'tensor.ts']);

type Layer = 'engine' | 'pipeline' | 'surface' | 'base' | 'entry';

function layerOf(top: string): Layer {
  if (ENGINE.has(top)) return 'engine';
  if (PIPELINE.has(top)) return 'pipeline';
  if (SURFACES.has(top)) return 'surface';
  if (BASE.has(top)) return 'base';
  if (top === 'index.ts') return 'entry';
  throw new Error(`src/${top} belongs to no layer: add it to one of the sets in test/layers.test.ts (and to docs/engine.md's table).`);
}

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = path.join(dir, d.name);
    return d.isDirectory() ? sourceFiles(p) : d.name.endsWith('.ts') ? [p] : [];
  });
}

/** Every relative module specifier of a file: `from '…'`, `import '…'` and `import('…')`. */
function specifiers(code: string): string[] {
  const out: string[] = [];
  for (const m of code.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)(['"`])(\.{1,2}\/[^'"`]+)\1/gm)) out.push(m[2]!);
  return out;
}

interface Edge {
  from: string;
  to: string;
  fromTop: string;
  toTop: string;
}

/** Every import between two files of src/, as paths relative to src/ (`tune/config.ts -> cli/config.ts`). */
function edges(): Edge[] {
  const out: Edge[] = [];
  for (const file of sourceFiles(SRC)) {
    const from = path.relative(SRC, file).split(path.sep).join('/');
    for (const spec of specifiers(fs.readFileSync(file, 'utf8'))) {
      const target = path.resolve(path.dirname(file), spec).replace(/\.js$/, '.ts');
      const to = path.relative(SRC, target).split(path.sep).join('/');
      if (to.startsWith('..')) continue;
      out.push({ from, to, fromTop: from.split('/')[0]!, toTop: to.split('/')[0]! });
    }
  }
  return out;
}

const show = (es: Edge[]) => [...new Set(es.map((e) => `${e.from} -> ${e.to}`))].sort();

test('the import scanner sees static, type-only, side-effect, re-export and dynamic imports', () => {
  const code = [
    "import { a } from '../x/a.js';",
    "import type { B } from './b.js';",
    "import '../ops/index.js';",
    "export { c } from '../c.js';",
    'import {\n  d,\n  e,\n} from "../d.js";',
    "  const { f } = await import('../../f.js');",
    "const notAnImport = 'from ./g.js';",
  ].join('\n');
  assert.deepEqual(specifiers(code), ['../x/a.js', './b.js', '../ops/index.js', '../c.js', '../d.js', '../../f.js']);
});

test('the engine imports nothing from the pipeline or the surfaces', () => {
  const all = edges();
  assert.ok(all.length > 100, `only ${all.length} imports found in src/: the scanner is broken`);
  const bad = all.filter((e) => layerOf(e.fromTop) === 'engine' && ['pipeline', 'surface', 'entry'].includes(layerOf(e.toTop)));
  assert.deepEqual(show(bad), [], 'engine files import upward; move the code down or the caller up (docs/engine.md, "Layers of the code")');
});

test('ir/ does not import ops/ or nn/ (the op table lives in ir/op-registry.ts; ops/ fills it)', () => {
  const bad = edges().filter((e) => e.fromTop === 'ir' && (e.toTop === 'ops' || e.toTop === 'nn'));
  assert.deepEqual(show(bad), []);
});

test('base modules (util/, tensor.ts) import nothing from the layers above them', () => {
  const bad = edges().filter((e) => layerOf(e.fromTop) === 'base' && layerOf(e.toTop) !== 'base');
  assert.deepEqual(show(bad), []);
});

test('the pipeline imports nothing from the surfaces (cli, api, demo, server, ui)', () => {
  const bad = edges().filter((e) => layerOf(e.fromTop) === 'pipeline' && ['surface', 'entry'].includes(layerOf(e.toTop)));
  assert.deepEqual(show(bad), [], 'the pipeline must not depend on cli/, api/ or demo/; move the shared code down (src/run/ is the layer the surfaces drive)');
});
