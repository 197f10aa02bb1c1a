/** `graft adapt` in-process (commander program with the adapt command): a tiny folder run and the bad-input errors. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { buildProgram } from '../../src/cli/index.js';
import { mlp } from '../../src/nn/index.js';
import { saveModel } from '../../src/onnx/io.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-adapt-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Runs `graft adapt …` in this process through the real program (errors reject; the table goes to stdout). */
async function graft(args: string[]): Promise<void> {
  await buildProgram().parseAsync(['node', 'graft', '--quiet', 'adapt', ...args]);
}

/** 8×8 grey images: class "dark" / "light" (target: a shifted brightness), `n` per class. */
async function images(root: string, n: number, shift: number, labelled = true): Promise<void> {
  for (const [k, base] of [
    ['dark', 60],
    ['light', 190],
  ] as const) {
    const dir = labelled ? path.join(root, k) : root;
    fs.mkdirSync(dir, { recursive: true });
    for (let i = 0; i < n; i++) {
      const px = Buffer.alloc(64, Math.min(255, base + shift + ((i * 7) % 20)));
      await sharp(px, { raw: { width: 8, height: 8, channels: 1 } })
        .png()
        .toFile(path.join(dir, `${k}-${i}.png`));
    }
  }
}

before(async () => {
  await images(path.join(tmp, 'src'), 12, 0);
  await images(path.join(tmp, 'tgt'), 12, 40, false);
  await images(path.join(tmp, 'tgt-eval'), 6, 40);
  fs.mkdirSync(path.join(tmp, 'empty', 'sub'), { recursive: true });
  fs.writeFileSync(path.join(tmp, 'empty', 'notes.txt'), 'no images here');
  fs.writeFileSync(path.join(tmp, 'labelled.csv'), `path,label\n${path.join(tmp, 'src', 'dark', 'dark-0.png')},dark\n`);
});

const common = ['--image-size', '8', '--channels', '1', '--epochs', '1', '--batch-size', '4', '--val-split', '0.25'];

test('graft adapt --compare prints one table over seeds, and --out writes the results', async () => {
  const src = path.join(tmp, 'src');
  await graft([
    '--source',
    src,
    '--target',
    path.join(tmp, 'tgt'),
    '--target-eval',
    path.join(tmp, 'tgt-eval'),
    ...common,
    '--compare',
    'source-only,mcc',
    '--seeds',
    '0,1',
    '--out',
    path.join(tmp, 'run'),
  ]);
  const out = fs.readFileSync(path.join(tmp, 'run', 'report.md'), 'utf8');
  assert.match(out, /\| method \| target acc % \(snd-picked\) \| target acc % \(last\) \| source val acc % \| SND/);
  assert.match(out, /\| source-only \| \d+\.\d ± \d+\.\d \|/);
  assert.match(out, /\| mcc \| \d+\.\d ± \d+\.\d \|/);
  const doc = JSON.parse(fs.readFileSync(path.join(tmp, 'run', 'results.json'), 'utf8'));
  assert.equal(doc.runs.length, 4);
  await graft(['--source', src, '--target', path.join(tmp, 'tgt'), ...common, '--method', 'dann', '--out', path.join(tmp, 'one')]);
  assert.match(fs.readFileSync(path.join(tmp, 'one', 'report.md'), 'utf8'), /\| dann \|/);
  assert.ok(fs.existsSync(path.join(tmp, 'one', 'model.onnx')) && fs.existsSync(path.join(tmp, 'one', 'model.json')));
});

test('a target folder without images is a clear error', async () => {
  await assert.rejects(
    graft(['--source', path.join(tmp, 'src'), '--target', path.join(tmp, 'empty'), ...common]),
    /--target: Folder .*empty contains no images/,
  );
});

test('source and target with different input sizes are a clear error', async () => {
  await assert.rejects(
    graft(['--source', path.join(tmp, 'src'), '--target', 'mnist-style-shift', ...common]),
    /--target mnist-style-shift gives 1x28x28 grayscale images, but the model's preprocessing gives 1x8x8 .*same input size/,
  );
});

test('AdaBN on a model without BatchNorm is a clear error', async () => {
  const file = path.join(tmp, 'nobn.onnx');
  const m = mlp([4], 2).build({ inputShape: ['N', 1, 8, 8].slice(0, 2) as never, seed: 0 });
  saveModel(m, file);
  fs.writeFileSync(path.join(tmp, 'nobn.json'), JSON.stringify({ preprocess: { size: [8, 8], channels: 1, resize: 'stretch' } }));
  await assert.rejects(
    graft(['--source', path.join(tmp, 'src'), '--target', path.join(tmp, 'tgt'), ...common, '--model', file, '--method', 'adabn']),
    /no BatchNormalization layer/,
  );
});

test('target labels given to the training path are refused', async () => {
  await assert.rejects(
    graft(['--source', path.join(tmp, 'src'), '--target', path.join(tmp, 'labelled.csv'), ...common]),
    /--target: the manifest .*labelled\.csv has a label column, and unsupervised adaptation never trains on target labels.*--target-eval/,
  );
  await assert.rejects(
    graft(['--source', path.join(tmp, 'src'), '--target', path.join(tmp, 'tgt'), ...common, '--method', 'mmd']),
    /unknown adaptation method "mmd"/,
  );
});
