/**
 * Distributed tuning against a real redis-server on loopback: the coordinator keeps the sampler (TPE), the pruner
 * (ASHA) and the study log; workers run the trials. Each case checks that the study equals a local run with one
 * worker (same parameters, values, states and rungs) and that the log holds every rung and every end exactly once:
 * with one worker, after a worker is killed -9 mid-trial, after Redis restarts empty mid-study, after a graceful
 * SIGTERM mid-trial (`graft worker` and `graft tune --queue` as a user runs them), and when a job runs twice at
 * once (a worker frozen past its lock while another takes the job).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { queueStatus } from '../../src/scale/status.js';
import { localSpec } from '../../src/scale/trial-runner.js';
import { distributedTune } from '../../src/scale/tune.js';
import { type GraftWorker, startWorker } from '../../src/scale/worker.js';
import { parseTuneConfig, type TuneConfig } from '../../src/tune/config.js';
import { runTune } from '../../src/tune/run.js';
import { readStudy } from '../../src/tune/storage.js';
import type { TrialRecord } from '../../src/tune/types.js';
import { GRAFT_BIN, runGraft } from '../cli-run.js';
import { startRedis, type TestRedis } from '../redis.js';

const OBJECTIVE = fileURLToPath(new URL('../tune/fixtures/curve-objective.ts', import.meta.url));
const CHILD = fileURLToPath(new URL('./child-worker.ts', import.meta.url));

let redis: TestRedis;
let tmp: string;
let reference: TrialRecord[];

/** A small TPE + ASHA study of the synthetic learning curve (4 rungs per trial, `sleepMs` per rung), as a tune config file's content. */
function rawConfig(name: string, sleepMs = 60) {
  return {
    study: { name, dir: tmp, trials: 6, workers: 1, threadsPerWorker: 1, seed: 3 },
    sampler: { name: 'tpe', startup: 3 },
    pruner: { name: 'asha', minResource: 1, reductionFactor: 2 },
    space: { lr: { type: 'log-uniform', low: 1e-4, high: 1 } },
    objective: { module: OBJECTIVE, options: { epochs: 4, sleepMs } },
  };
}
function config(name: string, sleepMs = 60): TuneConfig {
  return parseTuneConfig(rawConfig(name, sleepMs), `${name}.yaml`, tmp);
}

/** What must match between runs: parameters, outcome and every rung of every trial. */
const shape = (trials: TrialRecord[]) => trials.map((t) => ({ id: t.id, params: t.params, state: t.state, value: t.value, reports: [...t.reports] }));

/** Every rung and every end of the log is recorded once. */
function assertOnce(file: string): void {
  const seen = new Set<string>();
  for (const line of fs.readFileSync(file, 'utf8').split('\n').filter(Boolean)) {
    const e = JSON.parse(line);
    if (e.type !== 'report' && e.type !== 'end') continue;
    const key = `${e.type} ${e.trial} ${e.attempt} ${e.step ?? ''}`;
    assert.ok(!seen.has(key), `${key} is in ${file} twice`);
    seen.add(key);
  }
}

const quiet = (warnings: string[]) => ({ note: () => {}, warn: (m: string) => warnings.push(m) });

/** Resolves once the study log has a report (some trial is past its first rung). */
async function firstReport(file: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (fs.existsSync(file) && fs.readFileSync(file, 'utf8').includes('"type":"report"')) return;
    await sleep(25);
  }
  throw new Error(`no report in ${file} after 15 s`);
}

/** A `child-worker.ts` process (lock `lockMs`) and a promise of each line it prints. */
function childWorker(url: string, lockMs: number): { child: ChildProcess; said: (word: string) => Promise<void>; exited: Promise<unknown> } {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, url, String(lockMs), '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  const exited = new Promise((r) => child.once('exit', r));
  const said = async (word: string) => {
    while (!out.includes(word)) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`child worker exited before "${word}": ${out}`);
      await sleep(20);
    }
  };
  return { child, said, exited };
}

before(async () => {
  redis = await startRedis();
  tmp = await mkdtemp(path.join(tmpdir(), 'graft-scale-tune-'));
  const r = await runTune(config('local'), { progress: false, io: quiet([]) });
  reference = r.trials;
  assert.ok(
    reference.some((t) => t.state === 'pruned'),
    'the reference study prunes some trials (so the pruner is exercised)',
  );
  assert.ok(
    reference.some((t) => t.state === 'complete'),
    'the reference study completes some trials',
  );
});
after(async () => {
  await redis?.stop();
  await rm(tmp, { recursive: true, force: true });
});

test('with one worker the distributed study equals the local one (params, values, prunes, rungs)', { timeout: 60_000 }, async () => {
  const url = `${redis.url}/1`;
  const jobs: string[] = [];
  const w = await startWorker({ queue: url, name: 'one', threads: 1, onJob: (e) => jobs.push(`${e.name}:${e.ok}`) });
  try {
    const cfg = config('one');
    const r = await distributedTune(cfg, { queue: url, progress: false, io: quiet([]) });
    assert.deepEqual(shape(r.trials), shape(reference));
    assertOnce(r.file);
    assert.deepEqual(jobs, Array(6).fill('trial:true'), 'one job per trial');
    const st = await queueStatus(url, 'tune');
    assert.equal(st.completed, 6);
    assert.equal(st.retried, 0);
    assert.deepEqual(st.workers, ['one']);
  } finally {
    await w.close();
  }
});

test('a worker killed -9 mid-trial: the trial is retried elsewhere, nothing lost or counted twice', { timeout: 60_000 }, async () => {
  const url = `${redis.url}/2`;
  const cfg = config('kill', 150);
  const { child, said, exited } = childWorker(url, 1000);
  let survivor: GraftWorker | undefined;
  try {
    await said('ready');
    const run = distributedTune(cfg, { queue: url, progress: false, io: quiet([]) });
    run.catch(() => {});
    await said('trial');
    await firstReport(path.join(tmp, 'kill', 'study.jsonl'));
    child.kill('SIGKILL');
    await exited;
    survivor = await startWorker({ queue: url, name: 'survivor', threads: 1, lockDuration: 1000, stalledInterval: 300 });
    const r = await run;
    assert.deepEqual(shape(r.trials), shape(reference));
    assertOnce(r.file);
    const st = await queueStatus(url, 'tune');
    assert.ok(st.retried >= 1, `the killed worker's trial was taken back (retried: ${st.retried})`);
    assert.equal(st.failed, 0);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await survivor?.close();
  }
});

test('a job run twice at once (a worker frozen past its lock) is recorded once', { timeout: 60_000 }, async () => {
  const url = `${redis.url}/3`;
  const cfg = config('twice', 150);
  const { child, said, exited } = childWorker(url, 1000);
  let other: GraftWorker | undefined;
  try {
    await said('ready');
    const run = distributedTune(cfg, { queue: url, progress: false, io: quiet([]) });
    run.catch(() => {});
    await said('trial');
    await firstReport(path.join(tmp, 'twice', 'study.jsonl'));
    child.kill('SIGSTOP'); // its lock expires; the other worker takes the job back and runs it from the start
    other = await startWorker({ queue: url, name: 'other', threads: 1, lockDuration: 1000, stalledInterval: 300 });
    await sleep(2500);
    child.kill('SIGCONT'); // the frozen run goes on, reporting rungs the study already has, and ends too
    const r = await run;
    assert.deepEqual(shape(r.trials), shape(reference));
    assertOnce(r.file);
    const st = await queueStatus(url, 'tune');
    assert.ok(st.retried >= 1, `the frozen worker's trial was taken back and run again (retried: ${st.retried})`);
  } finally {
    child.kill('SIGKILL');
    await exited;
    await other?.close();
  }
});

test('Redis restarted (empty) mid-study: both sides say so, reconnect, and the study equals the local one', { timeout: 60_000 }, async () => {
  const own = await startRedis();
  const cfg = config('restart', 150);
  const workerSaid: string[] = [];
  const w = await startWorker({ queue: own.url, name: 'w', threads: 1, lockDuration: 1000, stalledInterval: 300, onWarning: (m) => workerSaid.push(m) });
  let again: TestRedis | undefined;
  try {
    const coordinatorSaid: string[] = [];
    const run = distributedTune(cfg, { queue: own.url, progress: false, io: quiet(coordinatorSaid) });
    run.catch(() => {});
    await firstReport(path.join(tmp, 'restart', 'study.jsonl'));
    await own.stop();
    await sleep(500);
    again = await startRedis(own.port);
    const r = await run;
    assert.deepEqual(shape(r.trials), shape(reference));
    assertOnce(r.file);
    const all = [...coordinatorSaid, ...workerSaid].join('\n');
    assert.match(all, /graft tune \(coordinator\): lost the connection to Redis at redis:\/\/127\.0\.0\.1:\d+ \([^)]+\); reconnecting/);
    assert.match(all, /graft tune \(coordinator\): reconnected/);
    assert.match(all, /graft worker w: lost the connection/);
    assert.match(all, /graft worker w: reconnected/);
    assert.match(all, /is no longer in Redis .* queued it again/);
  } finally {
    await w.close();
    await again?.stop();
  }
});

test('graft tune --queue with a graft worker that gets SIGTERM mid-trial: it finishes the trial and exits 0; nothing is lost or retried', {
  timeout: 90_000,
}, async () => {
  const url = `${redis.url}/4`;
  const configFile = path.join(tmp, 'term.json');
  fs.writeFileSync(configFile, JSON.stringify(rawConfig('term', 150)));
  const env = { ...process.env, GRAFT_FROM_SOURCE: '1', GRAFT_DEBUG: '', NODE_OPTIONS: '' };
  const cli = spawn(process.execPath, [GRAFT_BIN, 'worker', '--queue', url, '--name', 'cli', '--threads', '1'], { cwd: tmp, env });
  let err = '';
  cli.stderr.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => cli.once('exit', (code) => r(code)));
  let rest: GraftWorker | undefined;
  try {
    while (!err.includes('waiting for jobs')) {
      assert.ok(cli.exitCode === null, `the worker exited early: ${err}`);
      await sleep(50);
    }
    const run = runGraft(['tune', '--config', configFile, '--queue', url, '--json'], tmp);
    await firstReport(path.join(tmp, 'term', 'study.jsonl'));
    cli.kill('SIGTERM');
    assert.equal(await exited, 0, err);
    assert.match(err, /finishing the running job/);
    assert.match(err, /trial \S+ done/, 'the trial it had was finished, not abandoned');
    rest = await startWorker({ queue: url, name: 'rest', threads: 1 });
    const r = await run;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).trials.length, 6);
    const file = path.join(tmp, 'term', 'study.jsonl');
    const head = JSON.parse(fs.readFileSync(file, 'utf8').split('\n')[0]!);
    assert.match(head.settings.where, /^1 trial at once on the queue redis:\/\/127\.0\.0\.1:\d+\/4 \(1 worker connected now\)$/);
    assert.deepEqual(shape([...readStudy(file).trials.values()].sort((a, b) => a.id - b.id)), shape(reference));
    assertOnce(file);
    const st = await queueStatus(url, 'tune');
    assert.equal(st.retried, 0, 'no trial had to be taken back');
    assert.equal(st.failed, 0);
  } finally {
    if (cli.exitCode === null) cli.kill('SIGKILL');
    await rest?.close();
  }
});

test("a worker runs graft's built-in objective from its own install when the coordinator's path is not on this machine", () => {
  const elsewhere = { module: '/opt/elsewhere/graft/dist/src/tune/graft-objective.js', options: { a: 1 } };
  const own = localSpec(elsewhere);
  assert.ok(fs.existsSync(own.module), own.module);
  assert.match(own.module, /[\\/]src[\\/]tune[\\/]graft-objective\.(ts|js)$/);
  assert.deepEqual(own.options, { a: 1 });
  const user = { module: '/opt/elsewhere/my-objective.ts' };
  assert.deepEqual(localSpec(user), user, "a user's module is taken as given (it must be on a shared path)");
});
