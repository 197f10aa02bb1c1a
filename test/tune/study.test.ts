/**
 * Durability and failure handling of studies with parallel worker processes: `graft tune` killed with
 * SIGKILL mid-study resumes with nothing lost and nothing run twice (running trials re-run, recorded as
 * such); a trial that throws or whose worker dies is recorded as failed and the study goes on; a study log
 * from another search space or locked by a live process gives a clear error.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { parseTuneConfig } from '../../src/tune/config.js';
import { runTune } from '../../src/tune/run.js';
import { parseSpace } from '../../src/tune/space.js';
import { type StudyEvent, StudyLog } from '../../src/tune/storage.js';

const bin = fileURLToPath(new URL('../../bin/graft.js', import.meta.url));
const objective = fileURLToPath(new URL('./fixtures/curve-objective.ts', import.meta.url));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-tune-study-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const env = { ...process.env, GRAFT_FROM_SOURCE: '1', GRAFT_DEBUG: '', NODE_OPTIONS: '' };

const space = {
  lr: { type: 'log-uniform', low: 1e-4, high: 1 },
  y: { type: 'uniform', low: 0, high: 1 },
};

function events(file: string): StudyEvent[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as StudyEvent);
}

const ofType = <T extends StudyEvent['type']>(evs: StudyEvent[], type: T) => evs.filter((e): e is Extract<StudyEvent, { type: T }> => e.type === type);

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('graft tune killed with SIGKILL mid-study resumes: nothing lost, nothing repeated, running trials re-run', async () => {
  const pidDir = path.join(tmp, 'pids');
  const cfg = {
    study: { name: 'killed', dir: 'runs', trials: 12, workers: 2, threadsPerWorker: 1, seed: 1 },
    sampler: { name: 'tpe', startup: 4 },
    pruner: { name: 'median', startup: 3 },
    space,
    objective: { module: objective, options: { epochs: 5, sleepMs: 60, pidDir } },
  };
  fs.writeFileSync(path.join(tmp, 'tune.yaml'), stringify(cfg));
  const file = path.join(tmp, 'runs', 'killed', 'study.jsonl');
  const child = spawn(process.execPath, [bin, 'tune', '--config', 'tune.yaml'], { cwd: tmp, env, stdio: 'ignore' });
  // wait until some trials have ended and others are running, then kill -9
  const t0 = Date.now();
  for (;;) {
    await new Promise((r) => setTimeout(r, 25));
    if (Date.now() - t0 > 40_000) assert.fail('the study made no progress in 40 s');
    if (!fs.existsSync(file)) continue;
    const evs = events(file);
    const ended = new Set(ofType(evs, 'end').map((e) => e.trial));
    const open = ofType(evs, 'start').filter((e) => !ended.has(e.trial));
    if (ended.size >= 4 && open.length >= 1) break;
  }
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  const before = events(file);
  const endedBefore = ofType(before, 'end');
  const ids = new Set(ofType(before, 'end').map((e) => e.trial));
  const open = ofType(before, 'start').filter((e) => !ids.has(e.trial));
  assert.ok(open.length >= 1 && endedBefore.length >= 4);
  // the workers notice that their parent is gone and exit
  const workers = fs.readdirSync(pidDir).map(Number);
  assert.ok(workers.length >= 2);
  for (let i = 0; i < 100 && workers.some(alive); i++) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(workers.filter(alive), [], 'no worker outlives a killed study');

  // without --resume: a clear error, and the log is untouched
  const again = spawnSync(process.execPath, [bin, 'tune', '--config', 'tune.yaml'], { cwd: tmp, env, encoding: 'utf8', timeout: 60_000 });
  assert.equal(again.status, 1);
  assert.match(again.stderr, /graft: error: The study .*study\.jsonl already exists \(\d+ trials\)\. Pass --resume to continue it/);

  const resumed = spawnSync(process.execPath, [bin, '--json', 'tune', '--config', 'tune.yaml', '--resume'], {
    cwd: tmp,
    env,
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(resumed.status, 0, resumed.stderr);
  const doc = JSON.parse(resumed.stdout) as { trials: { trial: number; state: string; attempts: number }[]; rerun: number[] };
  assert.deepEqual(doc.rerun.sort(), open.map((e) => e.trial).sort());

  const evs = events(file);
  const ends = ofType(evs, 'end');
  assert.equal(ends.length, 12, 'every trial ended exactly once');
  assert.deepEqual(
    [...new Set(ends.map((e) => e.trial))].sort((a, b) => a - b),
    [...Array(12).keys()],
  );
  assert.deepEqual(ends.slice(0, endedBefore.length), endedBefore, 'results from before the kill are kept as they were');
  for (const o of open) {
    const starts = ofType(evs, 'start').filter((e) => e.trial === o.trial);
    assert.deepEqual(
      starts.map((e) => e.attempt),
      [1, 2],
    );
    assert.deepEqual(starts[1]!.params, o.params, 'a re-run uses the same parameters');
    assert.equal(ofType(evs, 'interrupted').filter((e) => e.trial === o.trial).length, 1);
    assert.equal(ends.find((e) => e.trial === o.trial)!.attempt, 2);
    assert.equal(doc.trials.find((t) => t.trial === o.trial)!.attempts, 2);
  }
  assert.ok(!fs.existsSync(`${file}.lock`), 'the lock is released');

  const show = spawnSync(process.execPath, [bin, 'tune', 'show', '--study', path.dirname(file)], { cwd: tmp, env, encoding: 'utf8', timeout: 60_000 });
  assert.equal(show.status, 0, show.stderr);
  assert.match(show.stdout, /12 trials \(\d+ complete, \d+ pruned, 0 failed\)/);
  assert.match(show.stdout, /\(re-run: attempt 2\)/);
  assert.match(show.stdout, /best: trial \d+, val_acc/);
  assert.match(show.stdout, /parameter importance/);
});

test('a trial that throws, and one whose worker is killed, are recorded as failed; the study goes on', async () => {
  const raw = {
    study: { name: 'crashes', dir: path.join(tmp, 'runs'), trials: 8, workers: 2, threadsPerWorker: 1 },
    sampler: 'random',
    pruner: 'none',
    space,
    objective: { module: objective, options: { epochs: 4, sleepMs: 20, crash: [2], die: [4] } },
  };
  const cfg = parseTuneConfig(raw, 'crashes.yaml');
  const r = await runTune(cfg, { progress: false });
  const byId = new Map(r.trials.map((t) => [t.id, t]));
  assert.equal(r.trials.length, 8);
  assert.equal(byId.get(2)!.state, 'failed');
  assert.match(byId.get(2)!.error!, /synthetic crash in trial 2/);
  assert.equal(byId.get(4)!.state, 'failed');
  assert.match(byId.get(4)!.error!, /the worker process \d+ was killed by SIGKILL while running trial 4/);
  assert.deepEqual(
    r.trials.filter((t) => t.state === 'complete').map((t) => t.id),
    [0, 1, 3, 5, 6, 7],
  );
  assert.ok(r.best && r.best.state === 'complete');

  // the same study with another search space: one clear error
  const other = parseTuneConfig({ ...raw, space: { ...space, lr: { type: 'log-uniform', low: 1e-3, high: 1 } } }, 'crashes.yaml');
  await assert.rejects(
    runTune(other, { resume: true, progress: false }),
    /was created with a different search space \(lr: log-uniform \[0\.0001, 1\] → log-uniform \[0\.001, 1\]\)\. Restore the original space to resume it, or give the new space its own study\.name/,
  );
});

test('a study locked by a live process cannot be opened twice', () => {
  const file = path.join(tmp, 'locked', 'study.jsonl');
  const identity = { name: 'locked', space: parseSpace(space), direction: 'maximize' as const, metric: 'val_acc', objective: 'x' };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(`${file}.lock`, `${process.ppid}\n`);
  assert.throws(() => StudyLog.open(file, identity, { resume: true }), new RegExp(`is being run by process ${process.ppid}\\. Wait for it to finish`));
  // a lock left by a dead process is taken over, and the takeover is said
  fs.writeFileSync(`${file}.lock`, '999999999\n');
  const warnings: string[] = [];
  const log = StudyLog.open(file, identity, { resume: true, onWarning: (m) => warnings.push(m) });
  log.close();
  assert.ok(!fs.existsSync(`${file}.lock`));
  assert.deepEqual(warnings, [`taking over the lock of the study ${file} left by process 999999999, which is no longer running`]);
});

test('a torn last line (a write cut by a kill) is dropped on resume', () => {
  const file = path.join(tmp, 'torn', 'study.jsonl');
  const identity = { name: 'torn', space: parseSpace(space), direction: 'maximize' as const, metric: 'val_acc', objective: 'x' };
  const log = StudyLog.open(file, identity, { resume: false });
  log.append({ type: 'start', trial: 0, attempt: 1, params: { lr: 0.01, y: 0.5 }, t: 0 }, true);
  log.append({ type: 'end', trial: 0, attempt: 1, state: 'complete', value: 0.5, seconds: 1 }, true);
  log.close();
  fs.appendFileSync(file, '{"type":"start","trial":1,"att');
  const again = StudyLog.open(file, identity, { resume: true });
  again.close();
  const evs = events(file);
  assert.equal(ofType(evs, 'end').length, 1);
  assert.equal(evs.at(-1)!.type, 'session');
});

test('a study whose first trials all fail stops with the error instead of burning its budget', async () => {
  const { runStudy } = await import('../../src/tune/study.js');
  const { InProcessExecutor } = await import('../../src/tune/pool.js');
  const { RandomSampler } = await import('../../src/tune/samplers.js');
  const { NoPruner } = await import('../../src/tune/pruners.js');
  const s = parseSpace(space);
  const file = path.join(tmp, 'broken', 'study.jsonl');
  await assert.rejects(
    runStudy({
      file,
      identity: { name: 'broken', space: s, direction: 'maximize', metric: 'val_acc', objective: 'x' },
      sampler: new RandomSampler(s),
      pruner: new NoPruner(),
      executor: new InProcessExecutor(async () => {
        throw new Error('data folder missing');
      }),
      trials: 20,
      progress: false,
    }),
    /The first 3 trials all failed, so the study stops; the last error: data folder missing.*Fix the objective, then continue with --resume/,
  );
  assert.equal(ofType(events(file), 'end').length, 3);
});

test('workers inherit loaders but not test-runner or inspector flags (and get tsx for TypeScript)', async () => {
  const { workerExecArgv } = await import('../../src/tune/pool.js');
  assert.deepEqual(workerExecArgv(false, ['--import', 'tsx', '--test-name-pattern', 'x', '--inspect-brk', '--max-old-space-size=4096', '--test']), [
    '--import',
    'tsx',
    '--max-old-space-size=4096',
  ]);
  const ts = workerExecArgv(true, []);
  assert.equal(ts[0], '--import');
  assert.match(ts[1]!, /^file:.*tsx/);
});
