/**
 * The run folder of `graft train` under hostile conditions: two processes on one folder (a lock, taken over when its
 * owner was killed), temp files a kill left behind, flipped bytes in a checkpoint (refused, with a command that works).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { writeColourImages } from '../image-fixtures.js';

const bin = fileURLToPath(new URL('../../bin/graft.js', import.meta.url));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-run-safety-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const env = { ...process.env, GRAFT_FROM_SOURCE: '1', GRAFT_DEBUG: '', NODE_OPTIONS: '', GRAFT_THREADS: '1' };
const data = path.join(tmp, 'data');
const runs = path.join(tmp, 'runs');

const makeImages = (root: string, perClass: number) =>
  writeColourImages(root, {
    colours: [
      ['red', [220, 40, 40]],
      ['blue', [40, 60, 220]],
    ],
    perClass,
    size: 16,
    seed: 3,
    noise: 120,
  });

const args = (name: string, epochs: number) => [
  '-q',
  'train',
  '--data',
  data,
  '--arch',
  'small-cnn',
  '--width',
  '4',
  '--image-size',
  '16',
  '--head',
  'linear',
  '--mode',
  'full',
  '--epochs',
  String(epochs),
  '--batch-size',
  '8',
  '--no-early-stopping',
  '--seed',
  '1',
  '--runs-dir',
  runs,
  '--name',
  name,
];

function graft(a: string[]) {
  const r = spawnSync(process.execPath, [bin, ...a], { env, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const lockOf = (name: string) => path.join(runs, `.${name}.lock`);

test('two graft train on one run folder: the second exits 1 naming the folder and the pid; a killed owner’s lock and temps do not block', async () => {
  await makeImages(data, 12);
  const run = path.join(runs, 'busy');
  const child = spawn(process.execPath, [bin, ...args('busy', 500)], { env, stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  const t0 = Date.now();
  while (!fs.existsSync(path.join(run, 'checkpoints', 'full', 'last.ckpt')) && Date.now() - t0 < 120_000) {
    assert.equal(child.exitCode, null, 'the first run is still going');
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(fs.readFileSync(lockOf('busy'), 'utf8').trim(), String(child.pid));
  for (const extra of [['--resume'], ['--overwrite']]) {
    const second = graft([...args('busy', 500), ...extra]);
    assert.equal(second.code, 1, `${extra}: ${second.stderr}`);
    assert.match(second.stderr, new RegExp(`The run folder ${run.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')} is being run by process ${child.pid}\\.`));
  }
  assert.ok(fs.existsSync(path.join(run, 'config.json')), '--overwrite did not empty the running job’s folder');
  child.kill('SIGKILL');
  await exited;
  assert.ok(fs.existsSync(lockOf('busy')), 'the kill left the lock behind');
  // a temp file of the atomic writer of the killed process (its pid), and one of a live process (ours)
  const orphan = path.join(run, 'checkpoints', 'full', `.last.ckpt.tmp-${child.pid}-abc-0`);
  const live = path.join(run, `.metrics.jsonl.tmp-${process.pid}-abc-1`);
  const foreign = path.join(run, 'notes.tmp-1-2-3');
  for (const f of [orphan, live, foreign]) fs.writeFileSync(f, 'x');

  const resumed = spawnSync(process.execPath, [bin, ...args('busy', 3), '--resume'], { env, encoding: 'utf8', timeout: 120_000 });
  // another epoch count is another config: refused, but only after the lock was taken over
  assert.equal(resumed.status, 1);
  assert.match(resumed.stderr, new RegExp(`taking over the lock of .*busy left by process ${child.pid}, which is no longer running`));
  assert.match(resumed.stderr, /Cannot resume .*busy: its config differs in train\.epochs/);
  assert.ok(!fs.existsSync(orphan), 'the killed writer’s temp file was removed');
  assert.ok(fs.existsSync(live) && fs.existsSync(foreign), 'temps of a live process and files that are not graft temps are kept');
  assert.ok(!fs.existsSync(lockOf('busy')), 'the lock is released on exit, error or not');
  // and a stale lock does not block a run that goes through to the end
  fs.writeFileSync(lockOf('busy'), `${child.pid}\n`);
  const again = graft([...args('busy', 2), '--overwrite']);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /taking over the lock/);
  assert.ok(fs.existsSync(path.join(run, 'model.onnx')) && !fs.existsSync(lockOf('busy')));
});

test('a checkpoint with one flipped byte is refused; the advised command resumes from best.ckpt', () => {
  // --keep-checkpoints: the finished phase keeps the last.ckpt and best.ckpt a kill mid-phase would have left
  const r1 = graft([...args('flip', 3), '--keep-checkpoints']);
  assert.equal(r1.code, 0, r1.stderr);
  const dir = path.join(runs, 'flip', 'checkpoints', 'full');
  for (const f of ['final.ckpt', 'model.onnx']) fs.rmSync(path.join(f === 'model.onnx' ? path.join(runs, 'flip') : dir, f));
  const last = path.join(dir, 'last.ckpt');
  const bytes = fs.readFileSync(last);
  bytes[bytes.length - 5]! ^= 0x10; // one bit of one weight
  fs.writeFileSync(last, bytes);
  const r2 = graft([...args('flip', 3), '--resume']);
  assert.equal(r2.code, 1);
  assert.match(r2.stderr, /last\.ckpt is not a valid graft checkpoint \(checksum mismatch: its bytes changed since it was written\)/);
  const cp = r2.stderr.match(/\(cp "([^"]+)" "([^"]+)"\), then run graft train --resume again/);
  assert.ok(cp, r2.stderr);
  fs.copyFileSync(cp[1]!, cp[2]!);
  const r3 = graft([...args('flip', 3), '--resume']);
  assert.equal(r3.code, 0, r3.stderr);
  assert.ok(fs.existsSync(path.join(runs, 'flip', 'model.onnx')));
});
