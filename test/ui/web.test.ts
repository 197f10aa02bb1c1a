/** The page's code (src/ui/web) runs in a browser: no Node built-in is imported, other than as a type that the bundle drops. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const WEB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/ui/web');
const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

test('src/ui/web imports no Node built-ins, and its relative imports are type-only or stay browser code', () => {
  const bad: string[] = [];
  for (const f of fs.readdirSync(WEB).filter((n) => n.endsWith('.ts'))) {
    const src = fs.readFileSync(path.join(WEB, f), 'utf8');
    for (const m of src.matchAll(/^import\s+(type\s+)?[^'"]*from\s+'([^']+)'/gm)) {
      const [, typeOnly, spec] = m;
      if (builtins.has(spec!)) bad.push(`${f}: ${spec}`);
      // code (not types) from outside web/ must be pure: only report/curves.ts's spec builder is used
      if (!typeOnly && spec!.startsWith('../') && spec !== '../../report/curves.js') bad.push(`${f}: ${spec} (code from outside src/ui/web)`);
    }
  }
  assert.deepEqual(bad, []);
  // curves.ts itself imports only types
  const curves = fs.readFileSync(path.join(WEB, '../../report/curves.ts'), 'utf8');
  assert.deepEqual(
    [...curves.matchAll(/^import\s+(?!type\b).*$/gm)].map((m) => m[0]),
    [],
  );
});
