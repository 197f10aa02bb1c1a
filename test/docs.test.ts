/**
 * Every TypeScript example in README.md and docs/ that imports the library ('graft', or a subpath such as
 * 'graft/adapt') type-checks against the current source: the blocks are written to a temp folder whose
 * tsconfig maps 'graft' → src/index.ts and 'graft/<part>' → src/<part>/index.ts (as package.json's `exports`
 * map them to dist/ for users), and the repo's own tsc checks them. No example imports from './src/…'.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/** One fenced ```ts / ```typescript block: its file, the line of its opening fence and its code. */
interface Block {
  file: string;
  line: number;
  code: string;
}

function markdownFiles(): string[] {
  const docs = fs
    .readdirSync(path.join(root, 'docs'), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.md'))
    .map((e) => path.relative(root, path.join(e.parentPath, e.name)));
  return ['README.md', ...docs.sort()];
}

function tsBlocks(file: string): Block[] {
  const lines = fs.readFileSync(path.join(root, file), 'utf8').split('\n');
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^\s*```(ts|typescript)\s*$/.test(lines[i]!)) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^\s*```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    out.push({ file, line: start + 1, code: body.join('\n') });
  }
  return out;
}

const blocks = markdownFiles().flatMap(tsBlocks);
const importsGraft = (b: Block) => /from\s+['"]graft(\/[\w-]+)?['"]/.test(b.code);
const where = (b: Block) => `${b.file}, the block at line ${b.line}`;

test('no README or docs example imports from the source tree instead of the package', () => {
  const bad = blocks.filter((b) => /from\s+['"]\.{1,2}\/src\//.test(b.code)).map(where);
  assert.deepEqual(bad, [], "import from 'graft' (or 'graft/<part>') as a user would");
});

test("every README and docs/ code block that imports 'graft' type-checks with tsc", () => {
  const checked = blocks.filter(importsGraft);
  assert.ok(
    checked.some((b) => b.file === 'README.md'),
    'the README has a library example',
  );
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-docs-'));
  try {
    const names = new Map<string, Block>();
    for (const b of checked) {
      const name = `${b.file.replace(/[^\w]+/g, '_')}_L${b.line}.ts`;
      names.set(name, b);
      fs.writeFileSync(path.join(dir, name), `${b.code}\nexport {};\n`);
    }
    // ESM like the package, so top-level await and the package's ESM source are allowed
    fs.writeFileSync(path.join(dir, 'package.json'), '{ "type": "module" }\n');
    const tsconfig = {
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        esModuleInterop: true,
        resolveJsonModule: true,
        types: ['node'],
        typeRoots: [path.join(root, 'node_modules', '@types')],
        paths: { graft: [path.join(root, 'src', 'index.ts')], 'graft/*': [path.join(root, 'src', '*', 'index.ts')] },
      },
      files: [...names.keys()],
    };
    fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify(tsconfig, null, 2));
    const r = spawnSync(path.join(root, 'node_modules', '.bin', 'tsc'), ['-p', path.join(dir, 'tsconfig.json')], { encoding: 'utf8', timeout: 300_000 });
    assert.equal(r.error, undefined, `tsc did not run: ${r.error?.message}`);
    const output = `${r.stdout}${r.stderr}`;
    // name the markdown file and block of each error (tsc prints "<file>(line,col): error TS…")
    const errors = output
      .split('\n')
      .filter((l) => / error TS\d+/.test(l))
      .map((l) => {
        const m = /^(?:.*[\\/])?([^\\/(]+\.ts)\((\d+),(\d+)\): (.*)$/.exec(l);
        const b = m && names.get(m[1]!);
        return b ? `${where(b)}, code line ${m![2]}: ${m![4]}` : l;
      });
    assert.deepEqual(errors, [], `examples that do not type-check:\n${errors.join('\n')}`);
    assert.equal(r.status, 0, output);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
