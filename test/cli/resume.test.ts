/**
 * `graft train --resume` after `kill -9`: a run killed mid-training (between checkpoints, in the second phase
 * of fine-tune, with augmentation and early stopping on) and resumed must end with exactly the weights and
 * metrics.jsonl of an uninterrupted run with the same seed.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadModel } from '../../src/onnx/io.js';
import { writeColourImages } from '../image-fixtures.js';

const bin = fileURLToPath(new URL('../../bin/graft.js', import.meta.url));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-resume-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const env = { ...process.env, GRAFT_FROM_SOURCE: '1', GRAFT_DEBUG: '', NODE_OPTIONS: '', GRAFT_THREADS: '2' };

const makeImages = (root: string, perClass: number) =>
  writeColourImages(root, {
    colours: [
      ['red', [220, 40, 40]],
      ['green', [40, 200, 60]],
      ['blue', [40, 60, 220]],
    ],
    perClass,
    size: 20,
    seed: 11,
    noise: 120,
  });

const args = (name: string) => [
  '-q',
  'train',
  '--data',
  path.join(tmp, 'data'),
  '--arch',
  'small-cnn',
  '--width',
  '4',
  '--image-size',
  '16',
  '--head',
  'mlp',
  '--hidden',
  '8',
  '--head-dropout',
  '0.2',
  '--mode',
  'fine-tune',
  '--freeze-epochs',
  '1',
  '--epochs',
  '6',
  '--batch-size',
  '8',
  '--augment',
  '--monitor',
  'val_acc',
  '--patience',
  '10',
  '--lr',
  '0.3',
  '--checkpoint-every',
  '3',
  '--seed',
  '5',
  '--runs-dir',
  path.join(tmp, 'runs'),
  '--name',
  name,
];

function lines(file: string): number {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).length;
  } catch {
    return 0;
  }
}

test('a run killed with SIGKILL and resumed equals an uninterrupted run: weights and metrics.jsonl', async (t) => {
  await makeImages(path.join(tmp, 'data'), 16);
  const full = spawnSync(process.execPath, [bin, ...args('full')], { env, encoding: 'utf8', timeout: 120_000 });
  assert.equal(full.status, 0, full.stderr);

  const fullLog = fs.readFileSync(path.join(tmp, 'runs', 'full', 'metrics.jsonl'), 'utf8');
  t.diagnostic(`uninterrupted run: ${full.stdout.match(/phase\s+fine-tune.*/)?.[0]}`);
  t.diagnostic(
    fullLog
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const o = JSON.parse(l);
        return `${o.phase} ${o.epoch} ${o.val_acc.toFixed(3)}`;
      })
      .join('; '),
  );

  // start the same run and kill -9 it once the second phase has finished 4 epochs and checkpointed again; with
  // val_acc monitored, its first epoch at the top accuracy stays the best, so the resumed run must bring back the
  // best weights kept for early stopping (restoreBest) from before the kill
  const run = path.join(tmp, 'runs', 'killed');
  const child = spawn(process.execPath, [bin, ...args('killed')], { env, stdio: 'ignore' });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  let killed = false;
  const started = Date.now();
  while (!killed && Date.now() - started < 120_000) {
    if (lines(path.join(run, 'metrics.jsonl')) >= 5 && fs.existsSync(path.join(run, 'checkpoints', 'fine-tune', 'last.ckpt'))) {
      killed = child.kill('SIGKILL');
      break;
    }
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  await exited;
  assert.ok(killed, 'the run was killed before it finished');
  assert.ok(!fs.existsSync(path.join(run, 'model.onnx')), 'the killed run did not get to the end');

  // a kill can land between a metrics line and its checkpoint: simulate that, plus a torn last line
  fs.appendFileSync(path.join(run, 'metrics.jsonl'), '{"phase":"fine-tune","epoch":9,"step":999,"train_loss":0}\n{"phase":"fine-t');

  const resumed = spawnSync(process.execPath, [bin, ...args('killed'), '--resume'], { env, encoding: 'utf8', timeout: 120_000 });
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stdout, /phase\s+head: 1 epoch\(s\) \(restored from checkpoint\)/);

  const a = path.join(tmp, 'runs', 'full');
  assert.equal(fs.readFileSync(path.join(run, 'metrics.jsonl'), 'utf8'), fullLog, 'metrics.jsonl identical');
  const ma = loadModel(path.join(a, 'model.onnx'));
  const mb = loadModel(path.join(run, 'model.onnx'));
  assert.deepEqual([...mb.graph.initializers.keys()], [...ma.graph.initializers.keys()]);
  for (const [k, t] of ma.graph.initializers) assert.deepEqual(mb.graph.initializers.get(k)!.data, t.data, `weights of ${k} identical`);
  assert.ok(fs.readFileSync(path.join(run, 'model.onnx')).equals(fs.readFileSync(path.join(a, 'model.onnx'))), 'model.onnx byte-identical');

  // resuming with a different config is refused, naming the key
  const other = spawnSync(process.execPath, [bin, ...args('killed'), '--resume', '--lr', '0.5'], { env, encoding: 'utf8', timeout: 120_000 });
  assert.equal(other.status, 1);
  assert.match(other.stderr, /^graft: error: Cannot resume .*killed: its config differs in train\.optimizer\.lr\./);
});

test('a finished fine-tune run keeps one final.ckpt per phase, within 3× model.onnx, and --resume of it still works', () => {
  // runs/full is the uninterrupted fine-tune run of the test above
  const run = path.join(tmp, 'runs', 'full');
  const ckpts = path.join(run, 'checkpoints');
  const files = fs.readdirSync(ckpts, { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
  assert.deepEqual(files.map((e) => path.relative(ckpts, path.join(e.parentPath, e.name))).sort(), ['fine-tune/final.ckpt', 'head/final.ckpt']);
  const total = files.reduce((n, e) => n + fs.statSync(path.join(e.parentPath, e.name)).size, 0);
  const model = fs.statSync(path.join(run, 'model.onnx')).size;
  assert.ok(total <= 3 * model, `checkpoints ${total} B within 3× model.onnx ${model} B`);

  const before = fs.readFileSync(path.join(run, 'model.onnx'));
  const again = spawnSync(process.execPath, [bin, ...args('full'), '--resume'], { env, encoding: 'utf8', timeout: 120_000 });
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /phase\s+head: 1 epoch\(s\) \(restored from checkpoint\)/);
  assert.match(again.stdout, /phase\s+fine-tune: \d+ epoch\(s\).*\(restored from checkpoint\)/);
  assert.ok(fs.readFileSync(path.join(run, 'model.onnx')).equals(before), 'the resumed finished run writes the same model.onnx');
});

test('a run killed after early stopping ended a phase, before the phase was recorded, resumes without training further', () => {
  const common = ['-q', 'train', '--data', path.join(tmp, 'data'), '--arch', 'small-cnn', '--width', '4', '--image-size', '16', '--head', 'linear'];
  const a = [...common, '--mode', 'head', '--epochs', '40', '--batch-size', '8', '--lr', '0.5', '--monitor', 'val_acc', '--patience', '2', '--seed', '2'];
  const runs = path.join(tmp, 'runs-es');
  // --keep-checkpoints: the finished run keeps the last.ckpt and early-best.ckpt that a kill would have left
  const r1 = spawnSync(process.execPath, [bin, ...a, '--keep-checkpoints', '--runs-dir', runs, '--name', 'es'], { env, encoding: 'utf8', timeout: 120_000 });
  assert.equal(r1.status, 0, r1.stderr);
  assert.match(r1.stdout, /phase\s+head: \d+ epoch\(s\), stopped early/);
  // the state a kill leaves between the last epoch's checkpoint and the end of the phase
  const copy = path.join(runs, 'es-killed');
  fs.cpSync(path.join(runs, 'es'), copy, { recursive: true });
  for (const f of ['checkpoints/head/final.ckpt', 'model.onnx', 'model.json', 'predictions.jsonl']) fs.rmSync(path.join(copy, f));
  const r2 = spawnSync(process.execPath, [bin, ...a, '--runs-dir', runs, '--name', 'es-killed', '--resume'], { env, encoding: 'utf8', timeout: 120_000 });
  assert.equal(r2.status, 0, r2.stderr);
  assert.equal(r2.stdout.match(/phase.*/)?.[0], r1.stdout.match(/phase.*/)?.[0]);
  assert.equal(fs.readFileSync(path.join(copy, 'metrics.jsonl'), 'utf8'), fs.readFileSync(path.join(runs, 'es', 'metrics.jsonl'), 'utf8'));
  assert.ok(fs.readFileSync(path.join(copy, 'model.onnx')).equals(fs.readFileSync(path.join(runs, 'es', 'model.onnx'))), 'same restored best weights');
});
