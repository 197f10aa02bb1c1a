/**
 * `graft adapt --method auto --resume`: every candidate run is recorded as it finishes (finished.ckpt), so a run
 * killed after some candidates reads those back, runs the rest, and picks exactly what an uninterrupted run picks.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { AdaptResult } from '../../src/adapt/index.js';
import { FINISHED_FILE, loadFinished, saveFinished } from '../../src/adapt/index.js';
import { buildProgram } from '../../src/cli/index.js';
import { withInitializers } from '../../src/ir/model.js';
import { smallCNN } from '../../src/nn/index.js';
import { Tensor } from '../../src/tensor.js';
import { GRAFT_BIN } from '../cli-run.js';
import { brightnessImages } from './images.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-adapt-resume-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

before(async () => {
  await brightnessImages(path.join(tmp, 'src'), 12, 0);
  await brightnessImages(path.join(tmp, 'tgt'), 12, 40, false);
  await brightnessImages(path.join(tmp, 'tgt-eval'), 6, 40);
});

const env = { ...process.env, GRAFT_FROM_SOURCE: '1', GRAFT_DEBUG: '', NODE_OPTIONS: '' };
// 3 methods × 2 seeds = 6 candidates (AdaBN reuses each seed's source-only run); the top 2 by IM are exported
const args = (out: string, target = path.join(tmp, 'tgt')) => [
  'adapt',
  '--source',
  path.join(tmp, 'src'),
  '--target',
  target,
  '--target-eval',
  path.join(tmp, 'tgt-eval'),
  '--image-size',
  '8',
  '--channels',
  '1',
  '--batch-size',
  '4',
  '--val-split',
  '0.25',
  '--epochs',
  '4',
  '--method',
  'auto',
  '--candidates',
  'source-only,adabn,mcc',
  '--seeds',
  '0,1',
  '--ensemble',
  '2',
  '--out',
  out,
];
const graft = (a: string[]) => spawnSync(process.execPath, [GRAFT_BIN, ...a], { env, encoding: 'utf8', timeout: 120_000 });
/** `graft …` in this process (quiet; errors reject): cheaper than a process where its output is not read. */
const inProcess = (a: string[]) => buildProgram().parseAsync(['node', 'graft', '--quiet', ...a]);
const finished = (out: string) =>
  fs.existsSync(path.join(out, 'checkpoints'))
    ? fs
        .readdirSync(path.join(out, 'checkpoints'))
        .map((d) => path.join(out, 'checkpoints', d, FINISHED_FILE))
        .filter((f) => fs.existsSync(f))
    : [];
/** What must not depend on the interruption: every candidate's scores, the pick and the ensemble (wall times aside). */
const outcome = (out: string) => {
  const doc = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
  const drop = ({ seconds: _s, ...r }: Record<string, unknown>) => r;
  return { candidates: doc.auto.candidates.map(drop), pick: doc.auto.pick, ensemble: doc.auto.ensemble, runs: doc.runs.map(drop), rows: doc.rows.map(drop) };
};

test('graft adapt --method auto killed with SIGKILL after some candidates, then --resume: finished candidates are read back, the pick equals an uninterrupted run', async () => {
  const full = path.join(tmp, 'full');
  await inProcess(args(full));
  assert.equal(finished(full).length, 6, 'every candidate recorded as it finished');

  // the same run into another folder (with its own copy of the target, changed below), killed twice
  const tgt = path.join(tmp, 'tgt-copy');
  fs.cpSync(path.join(tmp, 'tgt'), tgt, { recursive: true, preserveTimestamps: true });
  const killedDir = path.join(tmp, 'killed');
  /** Starts `graft adapt …` and kills it (SIGKILL) once `n` candidates have finished; returns their records. */
  const killAfter = async (n: number, extra: string[] = []) => {
    const child = spawn(process.execPath, [GRAFT_BIN, ...args(killedDir, tgt), ...extra], { env, stdio: 'ignore' });
    const exited = new Promise<void>((r) => child.on('exit', () => r()));
    let killed = false;
    const t0 = Date.now();
    while (Date.now() - t0 < 120_000 && child.exitCode === null) {
      if (finished(killedDir).length >= n) {
        killed = child.kill('SIGKILL');
        break;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await exited;
    const done = finished(killedDir);
    assert.ok(killed && done.length >= n && done.length < 6 && !fs.existsSync(path.join(killedDir, 'results.json')), 'killed mid-way');
    return done;
  };
  // killed after seed 0's source-only (AdaBN then builds on the one read back), resumed and killed again mid-way
  await killAfter(1);
  const done = await killAfter(4, ['--resume']);
  const mtimes = done.map((f) => fs.statSync(f).mtimeMs);

  // resuming with other candidates, seeds or data is refused, and changes nothing
  await assert.rejects(
    inProcess([...args(killedDir, tgt), '--resume', '--candidates', 'source-only,mcc']),
    /Cannot resume .*killed: it was run with other candidates \(--candidates/,
  );
  await assert.rejects(inProcess([...args(killedDir, tgt), '--resume', '--seeds', '0']), /Cannot resume .*killed: it was run with other --seeds\./);
  fs.copyFileSync(path.join(tgt, 'dark-0.png'), path.join(tgt, 'extra.png'));
  await assert.rejects(
    inProcess([...args(killedDir, tgt), '--resume']),
    /Cannot resume .*killed: it was run with other data files \(files under --source, --target/,
  );
  fs.rmSync(path.join(tgt, 'extra.png'));
  assert.deepEqual(finished(killedDir), done);

  const b = graft([...args(killedDir, tgt), '--resume']);
  assert.equal(b.status, 0, b.stderr);
  // each finished candidate was read back (its record untouched), the others ran
  const readBack = b.stderr.split('\n').filter((l) => /: finished before; read back from .*finished\.ckpt, not run again/.test(l));
  assert.equal(readBack.length, done.length, b.stderr);
  assert.deepEqual(
    done.map((f) => fs.statSync(f).mtimeMs),
    mtimes,
  );
  assert.equal(finished(killedDir).length, 6);
  assert.deepEqual(outcome(killedDir), outcome(full));
  assert.ok(fs.readFileSync(path.join(killedDir, 'model.onnx')).equals(fs.readFileSync(path.join(full, 'model.onnx'))), 'model.onnx byte-identical');
});

test('graft adapt --compare --resume reads the finished runs back and runs the unfinished one, with the same results', async () => {
  const out = path.join(tmp, 'compare');
  const cmp = [...args(out).slice(0, args(out).indexOf('--method')), '--compare', 'source-only,mcc', '--seeds', '0,1', '--out', out];
  await inProcess(cmp);
  const before = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
  // as if killed before the last run's record was written: its last.ckpt (at the final step) is all that is left
  fs.rmSync(path.join(out, 'results.json'));
  fs.rmSync(path.join(out, 'checkpoints', 'mcc-seed1', FINISHED_FILE));
  const kept = finished(out);
  const mtimes = kept.map((f) => fs.statSync(f).mtimeMs);
  await inProcess([...cmp, '--resume']);
  assert.deepEqual(
    kept.map((f) => fs.statSync(f).mtimeMs),
    mtimes,
    'the finished runs were read back, not written again',
  );
  assert.equal(finished(out).length, 4);
  const again = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
  const drop = (runs: Record<string, unknown>[]) => runs.map(({ seconds: _s, ...r }) => r);
  assert.deepEqual(drop(again.runs), drop(before.runs));
});

test('a finished-run record rebuilds its models on the starting model, and refuses another starting model or another run', () => {
  const start = smallCNN({ width: 4, classes: 2, inChannels: 1, imageSize: 8 }).build({ inputShape: ['N', 1, 8, 8], seed: 0 });
  const [name, w] = [...start.graph.initializers].find(([, t]) => t.dtype === 'float32')!;
  const changed = new Tensor(
    'float32',
    w.dims,
    (w.data as Float32Array).map((v) => v + 1),
  );
  const model = withInitializers(start, [[name, changed]]);
  const rec = { step: 4, epoch: 1, snd: 1, target_entropy: 0.5, target_im: 0.25 };
  const r = {
    method: 'mcc',
    seed: 0,
    model,
    lastModel: start,
    selectBy: 'im',
    selected: rec,
    last: { ...rec, step: 8 },
    history: [rec],
    train: {},
    steps: 8,
    seconds: 1,
    featureCache: false,
  };
  const dir = path.join(tmp, 'record');
  saveFinished(dir, r as AdaptResult, start);
  const back = loadFinished(dir, start, { method: 'mcc', seed: 0 })!;
  assert.deepEqual(back.model.graph.initializers.get(name)!.data, changed.data);
  assert.deepEqual(back.lastModel.graph.initializers.get(name)!.data, w.data);
  assert.deepEqual(back.selected, rec);
  assert.equal(loadFinished(path.join(tmp, 'none'), start, { method: 'mcc', seed: 0 }), undefined);
  const other = smallCNN({ width: 4, classes: 2, inChannels: 1, imageSize: 8 }).build({ inputShape: ['N', 1, 8, 8], seed: 1 });
  assert.throws(() => loadFinished(dir, other, { method: 'mcc', seed: 0 }), /was trained from another starting model .*start again with --overwrite/);
  assert.throws(() => loadFinished(dir, start, { method: 'coral', seed: 0 }), /records mcc \(seed 0\), not coral \(seed 0\)/);
});
