/**
 * `graft train`, `graft pretrain` and `graft lr-find` end to end through the CLI, as subprocesses:
 * small coloured PNGs generated here go in, runs/<name>/model.onnx comes out and is checked in a fresh
 * onnxruntime session against the predictions the run stored; bad inputs give one clear error and exit 1.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { decodeBatch } from '../../src/data/image.js';
import { parsePreprocessConfig } from '../../src/data/preprocess.js';
import { type CliRun, runGraft } from '../cli-run.js';

const bin = fileURLToPath(new URL('../../bin/graft.js', import.meta.url));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-train-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function graft(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    cwd: tmp,
    encoding: 'utf8',
    env: { ...process.env, GRAFT_FROM_SOURCE: '1', GRAFT_DEBUG: '', NODE_OPTIONS: '', GRAFT_THREADS: '2' },
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Like {@link graft}, without blocking (independent failure cases run side by side). */
function graftAsync(args: string[]): Promise<CliRun> {
  return runGraft(args, tmp, { GRAFT_THREADS: '2' });
}

const COLOURS: Record<string, [number, number, number]> = { red: [220, 40, 40], green: [40, 200, 60], blue: [40, 60, 220] };

/** root/<colour>/<i>.png: 16×16 noisy images of one colour per class. */
async function makeImages(root: string, perClass: number, classes = Object.keys(COLOURS)): Promise<void> {
  let s = 7;
  const rnd = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (const c of classes) {
    fs.mkdirSync(path.join(root, c), { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const px = Buffer.alloc(16 * 16 * 3);
      for (let p = 0; p < px.length; p++) px[p] = Math.max(0, Math.min(255, COLOURS[c]![p % 3]! + (rnd() - 0.5) * 120));
      await sharp(px, { raw: { width: 16, height: 16, channels: 3 } })
        .png()
        .toFile(path.join(root, c, `${i}.png`));
    }
  }
}

const data = path.join(tmp, 'colours');
const small = ['--arch', 'small-cnn', '--width', '4', '--image-size', '16', '--head', 'linear', '--batch-size', '8', '--runs-dir', 'runs'];

test('graft train (head mode) writes a model whose fresh onnxruntime session reproduces the stored predictions', async () => {
  await makeImages(data, 20);
  const r = graft([
    '--json',
    'train',
    '--data',
    data,
    ...small,
    '--mode',
    'head',
    '--epochs',
    '30',
    '--lr',
    '0.5',
    '--no-early-stopping',
    '--seed',
    '1',
    '--name',
    'colours',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  assert.deepEqual(summary.classes, ['blue', 'green', 'red']);
  assert.equal(summary.samples.train + summary.samples.val, 60);
  assert.ok(summary.metrics.val.acc >= 0.8, `val acc ${summary.metrics.val.acc}`);
  assert.match(r.stderr, /"event":"progress".*"label":"epoch 30\/30".*"final":true/, 'JSON progress lines on a non-TTY');

  const run = path.join(tmp, 'runs', 'colours');
  const metrics = fs
    .readFileSync(path.join(run, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(metrics.length, 30);
  assert.deepEqual(Object.keys(metrics[0]), ['phase', 'epoch', 'step', 'lr', 'train_loss', 'train_acc', 'val_loss', 'val_acc']);
  for (const f of ['config.json', 'checkpoints/head/final.ckpt', 'model.onnx', 'model.json']) assert.ok(fs.existsSync(path.join(run, f)), `${f} exists`);
  // a finished phase needs only its final.ckpt (run.keepCheckpoints keeps the rest)
  assert.deepEqual(fs.readdirSync(path.join(run, 'checkpoints', 'head')), ['final.ckpt']);
  const meta = JSON.parse(fs.readFileSync(path.join(run, 'model.json'), 'utf8'));
  assert.deepEqual(meta.labels, ['blue', 'green', 'red']);
  assert.equal(meta.config.train.mode, 'head');
  assert.equal(meta.metrics.history.length, 30);
  // the sidecar records the graft that wrote it: package.json's version, not just any value
  const pkg = JSON.parse(fs.readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8'));
  assert.equal(meta.version, pkg.version);
  assert.equal(meta.graft, pkg.version);

  // reload the exported model in a fresh session and compare with the run's stored predictions
  const rows = fs
    .readFileSync(path.join(run, 'predictions.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(rows.length, summary.samples.val);
  const pre = parsePreprocessConfig(meta.preprocess);
  const batch = await decodeBatch(
    rows.map((x) => x.path),
    pre,
  );
  const s = await ort.InferenceSession.create(path.join(run, 'model.onnx'));
  const out = await s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', batch.data, batch.dims) });
  const p = out.probabilities!.data as Float32Array;
  rows.forEach((row, i) => {
    for (const [k, v] of (row.probabilities as number[]).entries())
      assert.ok(Math.abs(p[i * 3 + k]! - v) < 1e-5, `row ${i} class ${k}: ${p[i * 3 + k]} vs ${v}`);
    const pred = meta.labels[[...p.subarray(i * 3, i * 3 + 3)].indexOf(Math.max(...p.subarray(i * 3, i * 3 + 3)))];
    assert.equal(pred, row.pred);
  });
  await s.release();
});

test('graft pretrain saves a backbone + sidecar that graft train and graft lr-find pick up', () => {
  const pr = graft([
    '-q',
    'pretrain',
    '--arch',
    'small-cnn',
    '--width',
    '4',
    '--data',
    'mnist',
    '--limit',
    '400',
    '--epochs',
    '1',
    '--batch-size',
    '32',
    '--lr',
    '0.05',
    '--out',
    'backbone.onnx',
  ]);
  assert.equal(pr.code, 0, pr.stderr);
  assert.match(pr.stdout, /backbone\s+.*backbone\.onnx/);
  const side = JSON.parse(fs.readFileSync(path.join(tmp, 'backbone.json'), 'utf8'));
  assert.equal(side.preprocess.channels, 1);
  assert.deepEqual(side.preprocess.size, [28, 28]);
  assert.equal(side.labels.length, 10);
  assert.ok(side.cut, 'the sidecar names the feature cut');

  const tr = graft([
    '-q',
    'train',
    '--backbone',
    'backbone.onnx',
    '--data',
    data,
    '--mode',
    'head',
    '--epochs',
    '2',
    '--batch-size',
    '8',
    '--name',
    'on-backbone',
    '--runs-dir',
    'runs',
  ]);
  assert.equal(tr.code, 0, tr.stderr);
  assert.match(tr.stdout, /phase\s+head: 2 epoch\(s\)/);
  const meta = JSON.parse(fs.readFileSync(path.join(tmp, 'runs', 'on-backbone', 'model.json'), 'utf8'));
  assert.equal(meta.preprocess.channels, 1, 'the preprocessing came from the backbone sidecar');

  const lf = graft(['lr-find', '--backbone', 'backbone.onnx', '--data', data, '--mode', 'head', '--batch-size', '8', '--steps', '30', '--plot', 'lr.png']);
  assert.equal(lf.code, 0, lf.stderr);
  assert.match(lf.stdout, /step\s+lr\s+loss\s+smoothed/);
  assert.match(lf.stdout, /suggested lr: \S+ \((valley: halfway down|lowest smoothed loss \/ 10)/);
  assert.match(lf.stdout, /alternatives: minimum \/ 10 \S+/);
  const png = fs.readFileSync(path.join(tmp, 'lr.png'));
  assert.equal(png.subarray(1, 4).toString(), 'PNG');
});

test('a ./graft.yaml is never merged silently: train, pretrain and lr-find say "using config" and record it as source', async () => {
  if (!fs.existsSync(data)) await makeImages(data, 20); // when run alone
  const dir = path.join(tmp, 'with-yaml');
  fs.mkdirSync(dir, { recursive: true });
  const yaml = path.join(dir, 'graft.yaml');
  fs.writeFileSync(yaml, 'train:\n  epochs: 1\nrun:\n  name: from-yaml\n');
  const flags = ['--data', data, ...small, '--mode', 'head', '--overwrite'];
  const note = /using config \.\/graft\.yaml \(found in the current folder; flags override it; pass --config <file> to use another/;
  const [tr, pr, lf] = await Promise.all([
    runGraft(['train', ...flags], dir, { GRAFT_THREADS: '1' }),
    runGraft(['pretrain', '--data', data, ...small.filter((f) => f !== '--head' && f !== 'linear'), '--name', 'pre-yaml', '--out', 'pre.onnx'], dir, {
      GRAFT_THREADS: '1',
    }),
    runGraft(['--json', 'lr-find', ...flags, '--steps', '10', '--plot', 'lr.png'], dir, { GRAFT_THREADS: '1' }),
  ]);
  assert.equal(tr.code, 0, tr.stderr);
  assert.match(tr.stderr, note);
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'runs', 'from-yaml', 'config.json'), 'utf8'));
  assert.equal(cfg.source, yaml, 'config.json records the file');
  assert.equal(cfg.train.epochs, 1, 'the file was merged');
  assert.equal(pr.code, 0, pr.stderr);
  assert.match(pr.stderr, note);
  assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'runs', 'pre-yaml', 'config.json'), 'utf8')).source, yaml);
  assert.equal(lf.code, 0, lf.stderr);
  assert.equal(JSON.parse(lf.stdout).source, yaml, 'lr-find --json records the file');
  // without a config file: no note, and the source says so
  const bare = await runGraft(['lr-find', ...flags, '--steps', '10', '--plot', 'lr.png'], tmp, { GRAFT_THREADS: '1' });
  assert.equal(bare.code, 0, bare.stderr);
  assert.doesNotMatch(bare.stderr, /using config/);
});

test('bad input: one clear error line naming the problem and exit code 1', async () => {
  const base = ['train', ...small, '--mode', 'head', '--epochs', '1', '--overwrite'];
  const expectError = async (args: string[], re: RegExp) => {
    const r = await graftAsync([...base, ...args]);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    const lines = r.stderr.trimEnd().split('\n');
    assert.match(lines.at(-1)!, /^graft: error: /);
    assert.match(lines.at(-1)!, re);
  };
  const empty = path.join(tmp, 'empty-class');
  await makeImages(empty, 2, ['red']);
  fs.mkdirSync(path.join(empty, 'blue'));
  const single = path.join(tmp, 'single');
  await makeImages(single, 3, ['red']);
  const corrupt = path.join(tmp, 'corrupt');
  await makeImages(corrupt, 4, ['red', 'blue']);
  fs.writeFileSync(path.join(corrupt, 'red', 'broken.png'), 'not a png at all');
  const manifest = path.join(tmp, 'm.csv');
  fs.writeFileSync(manifest, 'path,label\ncolours/red/0.png,red\ncolours/blue/0.png,blue\ncolours/red/1.png,red\ncolours/blue/1.png,blue\n');
  const val = path.join(tmp, 'v.csv');
  fs.writeFileSync(val, 'path,label\ncolours/red/2.png,red\ncolours/green/2.png,purple\n');
  const locked = path.join(tmp, 'locked');
  fs.mkdirSync(locked, { mode: 0o000 });

  await Promise.all([
    expectError(['--data', empty], /Class folder .*empty-class\/blue contains no images/),
    expectError(['--data', single], /single class folder \(red\).*at least two classes/),
    expectError(['--data', path.join(tmp, 'nowhere')], /data\.train: .*nowhere does not exist/),
    // root reads any folder, so the unreadable case only bites for other users
    process.getuid?.() === 0 ? undefined : expectError(['--data', locked], /Cannot read image folder .*locked/),
    expectError(['--data', corrupt, '--strict', '--name', 'strict'], /Cannot decode image .*broken\.png.*without --strict/),
    expectError(['--manifest', manifest, '--val', val], /v\.csv line 3: unknown label "purple"/),
    (async () => {
      const ok = await graftAsync(['-q', ...base, '--data', corrupt, '--val-split', '0', '--name', 'corrupt']);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stderr, /warning: skipping corrupt image .*broken\.png/);
    })(),
  ]);
  fs.chmodSync(locked, 0o755);
});

test('graft train --backbone nsfwjs:MobileNetV2: a registry name is a backbone, not a path under the cwd', async () => {
  const data = path.join(tmp, 'named-backbone');
  await makeImages(data, 4, ['red', 'blue']);
  const r = await graftAsync([
    'train',
    '--backbone',
    'nsfwjs:MobileNetV2',
    '--data',
    data,
    '--val-split',
    '0',
    '--mode',
    'head',
    '--epochs',
    '1',
    '--batch-size',
    '4',
    '--runs-dir',
    path.join(tmp, 'runs-named'),
    '--no-early-stopping',
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /nsfwjs:MobileNetV2.*(ENOENT|no such file)/i);
  const side = JSON.parse(fs.readFileSync(path.join(tmp, 'runs-named', 'train', 'model.json'), 'utf8'));
  assert.deepEqual(side.labels, ['blue', 'red']);
  assert.equal(side.preprocess.size[0], 224, "the nsfwjs model's preprocessing");
});
