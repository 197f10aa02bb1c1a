/**
 * The library one-liners (issue 14), as a user writes them: a snippet importing the public entry is type-checked
 * with the repo's compiler options (TypeScript compiler API), then run. `net.classify(files | buffers)` gives
 * `[{ file, label, p, top }]` with the same top-1 as `graft predict`; `loadImageFolder` feeds predict as well as
 * fit. A snippet with a type error is rejected, so the check is real.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import ts from 'typescript';
import { parsePreprocessConfig } from '../../src/data/preprocess.js';
import { flatten, globalAvgPool, linear, sequential } from '../../src/nn/index.js';
import { Tensor } from '../../src/tensor.js';
import { Network } from '../../src/train/network.js';
import { runGraft } from '../cli-run.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
// beside src/, so the snippet imports '../src/index.js' exactly as the docs show it
const dir = fs.mkdtempSync(path.join(repo, '.scratch-api-'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-api-classify-'));
after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(tmp, { recursive: true, force: true });
});

const model = path.join(tmp, 'model', 'model.onnx');
const data = path.join(tmp, 'data');

before(async () => {
  const m = sequential(globalAvgPool(), flatten(), linear(3, 3)).build({ inputShape: ['N', 3, 16, 16], seed: 0 });
  const [w, b] = [...m.graph.initializers.keys()].sort((x, y) => y.length - x.length || x.localeCompare(y));
  m.graph.initializers.set(w!, Tensor.f32([3, 3], [10, 0, 0, 0, 10, 0, 0, 0, 10]));
  m.graph.initializers.set(b!, Tensor.f32([3], [0, 0, 0]));
  new Network(m, { labels: ['red', 'green', 'blue'], preprocess: parsePreprocessConfig({ size: 16, resize: 'stretch' }) }).save(model);
  const colours: Record<string, [number, number, number][]> = {
    red: [
      [230, 20, 20],
      [150, 20, 160],
    ],
    green: [
      [20, 230, 20],
      [30, 180, 60],
    ],
    blue: [
      [20, 20, 230],
      [60, 40, 200],
    ],
  };
  for (const [c, list] of Object.entries(colours))
    for (const [i, [r, g, bl]] of list.entries()) {
      fs.mkdirSync(path.join(data, c), { recursive: true });
      await sharp({ create: { width: 20, height: 12, channels: 3, background: { r, g, b: bl } } })
        .png()
        .toFile(path.join(data, c, `${i}.png`));
    }
});

const SNIPPET = `import fs from 'node:fs';
import { type ImageClass, loadImageFolder, Network } from '../src/index.js';

const [modelFile, folder] = process.argv.slice(2) as [string, string];
const net = Network.load(modelFile);
const data = await loadImageFolder(folder, net, { val: 0.5 });
const rows: ImageClass[] = await net.classify(data.files, { topK: 2 });
const fromBuffers = await net.classify(data.files.map((f) => fs.readFileSync(f)), { threshold: 0.99 });
const { probabilities, classes } = await net.predict(data.all);
const top: { label: string; p: number }[] = rows[0]!.top;
console.log(JSON.stringify({ rows, fromBuffers, classes, n: probabilities.length / classes, train: data.train.length, val: data.val.length, top }));
`;

/** Type-checks `files` (one program) with the repo's tsconfig options; returns the diagnostics as text. */
function typeCheck(files: string[]): string[] {
  const cfg = ts.readConfigFile(path.join(repo, 'tsconfig.json'), ts.sys.readFile);
  const parsed = ts.parseJsonConfigFileContent(cfg.config, ts.sys, repo);
  const program = ts.createProgram(files, { ...parsed.options, noEmit: true });
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file && d.start !== undefined ? `${path.basename(d.file.fileName)}:${d.file.getLineAndCharacterOfPosition(d.start).line + 1}` : '';
    return `${where} ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
  });
}

test('net.classify and loadImageFolder: the snippet type-checks with tsc, runs, and agrees with graft predict', async () => {
  const good = path.join(dir, 'classify.ts');
  const bad = path.join(dir, 'classify-bad.ts');
  fs.writeFileSync(good, SNIPPET);
  // a mistake a user could make: the label is a string, not a number
  fs.writeFileSync(bad, SNIPPET.replace('const top: { label: string; p: number }[]', 'const top: { label: number; p: number }[]'));
  const diagnostics = typeCheck([good, bad]);
  assert.deepEqual(
    diagnostics.filter((d) => !d.startsWith('classify-bad.ts:')),
    [],
  );
  assert.ok(
    diagnostics.some((d) => /^classify-bad\.ts:10 .*Type 'string' is not assignable to type 'number'/s.test(d)),
    `a type error in the snippet is reported: ${diagnostics.join('; ')}`,
  );

  const run = spawnSync(process.execPath, ['--import', 'tsx', good, model, data], {
    cwd: repo,
    encoding: 'utf8',
    env: { ...process.env, GRAFT_THREADS: '1' },
  });
  assert.equal(run.status, 0, run.stderr);
  const out = JSON.parse(run.stdout);
  assert.equal(out.n, 6, 'loadImageFolder(...).all holds every image for net.predict');
  assert.equal(out.classes, 3);
  assert.equal(out.train + out.val, 6);
  assert.equal(out.rows.length, 6);
  for (const r of out.rows) {
    assert.deepEqual(Object.keys(r), ['file', 'label', 'p', 'top']);
    assert.equal(r.top.length, 2);
    assert.equal(r.label, r.top[0].label);
    assert.equal(r.p, r.top[0].p);
  }
  out.fromBuffers.forEach((b: { file: string; label: string; p: number }, i: number) => {
    assert.equal(b.file, `buffer #${i}`);
    assert.equal(b.p, out.rows[i].p, 'a Buffer decodes like its file');
    assert.equal(b.label, out.rows[i].p < 0.99 ? 'unknown' : out.rows[i].label);
  });
  const purple = out.fromBuffers[out.rows.findIndex((r: { file: string }) => r.file.endsWith(path.join('red', '1.png')))];
  assert.equal(purple.label, 'unknown', 'the purple image (p ≈ 0.6) is under the threshold');

  const cli = await runGraft(['--json', 'predict', model, data], tmp, { GRAFT_THREADS: '1' });
  assert.equal(cli.code, 0, cli.stderr);
  const predicted = new Map(
    JSON.parse(cli.stdout).results.map((r: { file: string; top: { label: string }[] }) => [path.resolve(tmp, r.file), r.top[0]!.label]),
  );
  for (const r of out.rows) assert.equal(r.label, predicted.get(path.resolve(r.file)), r.file);
});
