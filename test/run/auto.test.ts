/**
 * `train.mode: auto`, graft train's default: a head search on features computed once, then the last stages when
 * the budget allows. It picks by validation, it respects a tiny budget (skips the fine-tune and says why), the
 * same seed gives the same trials, and it can be cancelled in the middle of its search.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { AUTO_HEAD_SEARCH } from '../../src/run/auto.js';
import { parseConfig, parseDuration } from '../../src/run/config.js';
import { type AutoTrial, RunCancelled, type RunEvent, type TrainSummary } from '../../src/run/events.js';
import { runTraining, startRun } from '../../src/run/train.js';
import { trialConfig } from '../../src/tune/params.js';
import { writeColourImages } from '../image-fixtures.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-auto-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
process.env.GRAFT_CACHE_DIR = path.join(tmp, 'cache');
const imgs = path.join(tmp, 'imgs');

before(async () => {
  const colours: [string, number[]][] = [
    ['red', [220, 40, 40]],
    ['green', [40, 200, 60]],
    ['blue', [40, 60, 220]],
  ];
  await writeColourImages(imgs, { colours, perClass: 10, size: 16, seed: 3, noise: 60 });
});

/** A config with no recipe flags: the default mode. */
const raw = (name: string, train: Record<string, unknown> = {}, seed = 0) => ({
  data: { train: imgs, valSplit: 0.34 },
  model: { arch: 'small-cnn', width: 4, preprocess: { size: [16, 16] }, head: { hidden: [8] } },
  train: { batchSize: 8, optimizer: { name: 'adam' }, ...train },
  run: { dir: path.join(tmp, 'runs'), name, seed },
});

async function run(name: string, train: Record<string, unknown> = {}, seed = 0): Promise<{ s: TrainSummary; events: RunEvent[] }> {
  const events: RunEvent[] = [];
  const s = await runTraining(parseConfig(raw(name, train, seed)), { source: 'test', onEvent: (e) => events.push(e) });
  return { s, events };
}

const score = (t: Pick<AutoTrial, 'val_acc' | 'val_loss'>) => [t.val_acc, -t.val_loss] as const;
const beats = (a: Pick<AutoTrial, 'val_acc' | 'val_loss'>, b: Pick<AutoTrial, 'val_acc' | 'val_loss'>) =>
  score(a)[0] > score(b)[0] || (score(a)[0] === score(b)[0] && score(a)[1] > score(b)[1]);
const withoutTime = (ts: AutoTrial[]) => ts.map(({ seconds: _, ...t }) => t);

let first: TrainSummary;

test('auto is the default; it runs the fixed head search in order and saves the best by validation', async () => {
  assert.equal(parseConfig(raw('x')).train.mode, 'auto');
  assert.equal(parseConfig(raw('x')).train.budget, 60);
  const { s, events } = await run('a');
  first = s;
  const a = s.auto!;
  assert.ok(a, 'the summary says what auto did');
  assert.equal(a.search.planned, AUTO_HEAD_SEARCH.length, 'a 60 s budget covers every trial on this tiny set');
  assert.equal(a.search.trials.length, AUTO_HEAD_SEARCH.length);
  // the trials are the fixed list, in order: LR = adam's 0.001 × lrMul, its weight decay
  a.search.trials.forEach((t, i) => {
    assert.equal(t.trial, i + 1);
    assert.ok(Math.abs(t.lr - 0.001 * AUTO_HEAD_SEARCH[i]!.lrMul) < 1e-12, `trial ${i + 1} lr ${t.lr}`);
    assert.equal(t.weightDecay, AUTO_HEAD_SEARCH[i]!.weightDecay);
  });
  // the best is the first trial no other beats (accuracy, then loss)
  const best = a.search.trials[a.search.best - 1]!;
  for (const t of a.search.trials) assert.ok(!beats(t, best), `trial ${t.trial} beats the chosen trial ${best.trial}`);
  for (const t of a.search.trials.slice(0, best.trial - 1)) assert.ok(beats(best, t), `the chosen trial ${best.trial} must beat the earlier ${t.trial}`);
  assert.ok(new Set(a.search.trials.map((t) => t.val_acc)).size > 1, 'the search saw different accuracies (the test can tell a wrong pick)');
  // the saved model is the better stage by validation
  const ft = a.fineTune;
  if (a.chosen === 'head') {
    assert.ok(!ft.ran || !ft.kept);
    assert.equal(s.metrics.val!.acc, best.val_acc, "the saved model's val accuracy is the best trial's");
  } else {
    assert.ok(ft.kept && ft.val_acc !== undefined && ft.val_loss !== undefined);
    assert.ok(beats({ val_acc: ft.val_acc, val_loss: ft.val_loss }, best), 'a kept fine-tune beats the best head');
    assert.equal(s.metrics.val!.acc, ft.val_acc);
  }
  const trialEvents = events.filter((e) => e.type === 'trial');
  assert.equal(trialEvents.length, a.search.trials.length, 'one trial event per trial');
  assert.ok(
    events.some((e) => e.type === 'note' && /^auto: budget 60 s/.test(e.message)),
    'the run states its budget',
  );
  // recorded in the run folder and the model's sidecar
  const side = JSON.parse(fs.readFileSync(path.join(s.run, 'model.json'), 'utf8'));
  assert.equal(side.auto.search.best, a.search.best);
  assert.equal(side.config.train.budget, 60);
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(s.run, 'auto.json'), 'utf8')).search.trials.length, a.search.trials.length);
});

test('the same seed gives the same trials and the same pick', async () => {
  const { s } = await run('b');
  assert.deepEqual(withoutTime(s.auto!.search.trials), withoutTime(first.auto!.search.trials));
  assert.equal(s.auto!.search.best, first.auto!.search.best);
  assert.deepEqual(s.metrics.val, first.metrics.val);
});

test('a tiny budget runs one trial, skips the last-stages fine-tune and says why', async () => {
  const { s, events } = await run('tiny', { budget: 0.01 });
  const a = s.auto!;
  assert.equal(a.budget, 0.01);
  assert.equal(a.search.trials.length, 1, 'the first trial always completes; no other fits');
  assert.equal(a.fineTune.ran, false);
  assert.match(a.fineTune.reason!, /^the head search takes the budget \(~\d+ s for 11 more trials, 0 s left\)$/);
  assert.equal(a.fineTune.estimate, undefined, 'no time spent estimating a fine-tune that cannot run');
  assert.equal(a.chosen, 'head');
  assert.ok(
    events.some(
      (e) =>
        e.type === 'note' &&
        /head search: 1 of 12 trials planned .*; last-stages fine-tune skipped: the head search takes the budget .*\(raise --budget to run it\)/.test(
          e.message,
        ),
    ),
    'the plan says why',
  );
  assert.ok(!events.some((e) => e.type === 'phase' && e.phase === 'last-stages'), 'no fine-tune phase started');
});

test('a large budget fine-tunes the last stages from the best head and keeps the better by validation', async () => {
  const { s, events } = await run('large', { budget: 600 });
  const ft = s.auto!.fineTune;
  assert.equal(ft.ran, true, ft.reason);
  assert.equal(ft.epochs, 3);
  assert.ok(events.some((e) => e.type === 'phase' && e.phase === 'last-stages'));
  assert.ok(fs.existsSync(path.join(s.run, 'checkpoints', 'last-stages', 'final.ckpt')), 'the fine-tune checkpoints like any phase');
  assert.equal(s.auto!.chosen, ft.kept ? 'last-stages' : 'head');
});

test('cancel() in the middle of the search stops the run: RunCancelled, no model', async () => {
  const h = startRun(parseConfig(raw('cut')), { source: 'test' });
  let trials = 0;
  h.on((e) => {
    if (e.type === 'trial' && ++trials === 2) h.cancel();
  });
  await assert.rejects(h.done, RunCancelled);
  assert.equal(trials, 2, 'no trial ends after the cancel');
  assert.ok(!fs.existsSync(path.join(tmp, 'runs', 'cut', 'model.onnx')));
});

test('without validation data auto trains the head and warns; auto cannot resume; both say how to fix it', async () => {
  const events: RunEvent[] = [];
  const s = await runTraining(parseConfig({ ...raw('noval', { epochs: 2 }), data: { train: imgs, valSplit: 0 } }), {
    source: 'test',
    onEvent: (e) => events.push(e),
  });
  assert.equal(s.auto, undefined);
  assert.deepEqual(
    s.phases.map((p) => [p.name, p.epochs]),
    [['head', 2]],
  );
  assert.ok(events.some((e) => e.type === 'warning' && /auto picks by validation accuracy, but there is no validation data.*--val-split > 0/.test(e.message)));
  assert.equal(JSON.parse(fs.readFileSync(path.join(s.run, 'config.json'), 'utf8')).train.mode, 'head', 'config.json records what ran');
  await assert.rejects(
    runTraining(parseConfig({ ...raw('a'), run: { ...raw('a').run, resume: true } }), { source: 'test' }),
    /auto cannot --resume.*--overwrite/,
  );
});

test('train.budget takes seconds or a duration; a bad one is one error naming the key', () => {
  assert.equal(parseDuration('1m30s'), 90);
  assert.equal(parseDuration('90s'), 90);
  assert.equal(parseDuration('2m'), 120);
  assert.equal(parseDuration('45'), 45);
  assert.equal(parseConfig(raw('x', { budget: '1m' })).train.budget, 60);
  assert.throws(() => parseConfig(raw('x', { budget: 'soon' })), /train\.budget: must be a number of seconds or a duration such as 90s/);
  assert.throws(() => parseConfig(raw('x', { budget: 0 })), /train\.budget/);
});

test('graft tune: a trial of a config without train.mode trains fine-tune as before; auto is no trial recipe', () => {
  assert.equal(trialConfig(raw('t'), {}).train.mode, 'fine-tune');
  assert.equal(trialConfig(raw('t'), { 'train.mode': 'head' }).train.mode, 'head');
  assert.throws(() => trialConfig(raw('t', { mode: 'auto' }), {}), /train\.mode auto is graft train's own search/);
});
