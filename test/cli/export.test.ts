/** `graft export --web` as a user runs it: the bundle's files and model.json, and the refusals that lose nothing. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { linear, sequential } from '../../src/nn/index.js';
import { Network } from '../../src/train/network.js';
import { runGraft } from '../cli-run.js';
import { LABELS, saveSpatialModel } from '../web/fixtures.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-export-'));
const graft = (args: string[]) => runGraft(args, tmp);

before(() => {
  saveSpatialModel(path.join(tmp, 'run', 'model.onnx'), { size: [12, 16], resize: 'stretch' }, 2.5);
  new Network(sequential(linear(4, 2)).build({ inputShape: ['N', 4], seed: 0 }), { labels: ['a', 'b'] }).save(path.join(tmp, 'bare', 'model.onnx'));
  fs.mkdirSync(path.join(tmp, 'busy'));
  fs.writeFileSync(path.join(tmp, 'busy', 'notes.txt'), 'keep me');
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('graft export --web writes the bundle, and refuses a busy folder, a missing format and a model without preprocessing', async () => {
  const [ok, busy, noFormat, bare] = await Promise.all([
    graft(['--json', 'export', '--web', 'run', '--out', 'again', '--threshold', '0.6']),
    graft(['export', '--web', 'run/model.onnx', '--out', 'busy']),
    graft(['export', 'run', '--out', 'other']),
    graft(['export', '--web', 'bare/model.onnx', '--out', 'bare-web']),
  ]);
  assert.equal(ok.code, 0, ok.stderr);
  const out = JSON.parse(ok.stdout) as { files: string[]; labels: string[] };
  for (const f of [
    'index.html',
    'model.json',
    'model.onnx',
    'graft/web/index.js',
    'graft/web/resample.js',
    'graft/data/pixels.js',
    'ort/ort.wasm.min.mjs',
    'ort/ort-wasm-simd-threaded.wasm',
  ])
    assert.ok(out.files.includes(f), `missing ${f} in ${out.files.join(', ')}`);
  assert.ok(!out.files.some((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')), 'the bundle ships JavaScript and declarations, not TypeScript sources');
  const meta = JSON.parse(fs.readFileSync(path.join(tmp, 'again', 'model.json'), 'utf8'));
  assert.deepEqual(meta.labels, LABELS);
  assert.equal(meta.temperature, 2.5);
  assert.equal(meta.threshold, 0.6);
  assert.deepEqual(meta.preprocess.size, [12, 16]);
  assert.equal(meta.preprocess.resize, 'stretch');
  assert.equal(meta.output, 'logits');
  assert.equal(meta.softmax, true);
  for (const f of out.files.filter((x) => x.endsWith('.js')))
    assert.doesNotMatch(fs.readFileSync(path.join(tmp, 'again', f), 'utf8'), /from\s*['"](?![./])/, `${f} imports a package a static page cannot resolve`);

  // the shipped declarations type a page's own TypeScript (strict: an untyped module would be an error)
  fs.writeFileSync(
    path.join(tmp, 'page.ts'),
    [
      "import { WebClassifier, type WebClassification, decodeBlob } from './again/graft/web/index.js';",
      'const clf: WebClassifier = await WebClassifier.load(new URL("./again/", location.href), { numThreads: 1 });',
      'const r: WebClassification = await clf.classifyPixels(await decodeBlob(new Blob([])), 2);',
      "const names: string[] = r.top.map((t) => t.label + ' ' + t.probability.toFixed(3)).concat(clf.meta.labels);",
      'const x: Float32Array = clf.preprocess({ data: new Uint8Array(12), width: 2, height: 2, bands: 3 });',
      'export { names, x };',
    ].join('\n'),
  );
  const tsconfig = {
    compilerOptions: { strict: true, noEmit: true, target: 'ES2022', module: 'ES2022', moduleResolution: 'bundler', lib: ['ES2022', 'DOM'], types: [] },
    files: ['page.ts'],
  };
  fs.writeFileSync(path.join(tmp, 'tsconfig.json'), JSON.stringify(tsconfig));
  const tsc = spawnSync(process.execPath, [createRequire(import.meta.url).resolve('typescript/bin/tsc'), '-p', tmp], { encoding: 'utf8' });
  assert.equal(tsc.status, 0, `a page typed against the bundle does not compile:\n${tsc.stdout}${tsc.stderr}`);

  assert.equal(busy.code, 1);
  assert.match(busy.stderr, /busy already holds files.*--overwrite/);
  assert.deepEqual(fs.readdirSync(path.join(tmp, 'busy')), ['notes.txt']);
  assert.equal(fs.readFileSync(path.join(tmp, 'busy', 'notes.txt'), 'utf8'), 'keep me');

  assert.equal(noFormat.code, 1);
  assert.match(noFormat.stderr, /needs a target format.*--web/);
  assert.ok(!fs.existsSync(path.join(tmp, 'other')));

  assert.equal(bare.code, 1);
  assert.match(bare.stderr, /no preprocessing config.*--preprocess/);
  assert.ok(!fs.existsSync(path.join(tmp, 'bare-web')));
  assert.deepEqual(
    fs.readdirSync(tmp).filter((f) => f.includes('.partial-')),
    [],
  );
});

test('graft export --web --overwrite replaces an earlier bundle (the one the test above wrote)', async () => {
  assert.ok(fs.existsSync(path.join(tmp, 'again', 'model.json')));
  fs.writeFileSync(path.join(tmp, 'again', 'stale.txt'), 'old');
  const second = await graft(['export', '--web', 'run', '--out', 'again', '--overwrite']);
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stdout, /wrote a web bundle .* 3 classes, input 12x16/);
  assert.ok(!fs.existsSync(path.join(tmp, 'again', 'stale.txt')));
  assert.ok(fs.existsSync(path.join(tmp, 'again', 'index.html')));
});
