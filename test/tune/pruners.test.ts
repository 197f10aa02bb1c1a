/**
 * Median and ASHA pruning on a synthetic learning-curve objective (quality peaks at lr = 1e-2): the bad
 * trials stop early, the good ones run to the end; and a sequential study that is stopped and resumed ends
 * exactly like an uninterrupted one.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { InProcessExecutor } from '../../src/tune/pool.js';
import { AshaPruner, MedianPruner, type Pruner } from '../../src/tune/pruners.js';
import { RandomSampler } from '../../src/tune/samplers.js';
import { parseSpace } from '../../src/tune/space.js';
import { readStudy } from '../../src/tune/storage.js';
import { runStudy } from '../../src/tune/study.js';
import { TpeSampler } from '../../src/tune/tpe.js';
import { lastStep, type StudyIdentity } from '../../src/tune/types.js';
import { createObjective, quality } from './fixtures/curve-objective.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-tune-pruners-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const space = parseSpace({ lr: { type: 'log-uniform', low: 1e-4, high: 1 } });
const identity: StudyIdentity = { name: 'curves', space, direction: 'maximize', metric: 'val_acc', objective: 'curve' };

async function study(name: string, pruner: Pruner, seed: number) {
  const r = await runStudy({
    file: path.join(tmp, `${name}-${seed}.jsonl`),
    identity,
    sampler: new RandomSampler(space, seed),
    pruner,
    executor: new InProcessExecutor(createObjective({ epochs: 9 })),
    trials: 40,
    progress: false,
  });
  return r.trials.map((t) => ({ q: quality(t.params.lr as number), state: t.state, epochs: lastStep(t), id: t.id }));
}

for (const [name, make] of [
  ['median', () => new MedianPruner('maximize', { startup: 5 })],
  ['asha', () => new AshaPruner('maximize', { minResource: 1, reductionFactor: 3 })],
] as const) {
  test(`${name} pruning stops the bad trials early and runs the best to the end`, async () => {
    for (const seed of [0, 1, 2]) {
      const rows = await study(name, make(), seed);
      assert.equal(rows.length, 40);
      const bad = rows.filter((r) => r.q < 0.3);
      const prunedBad = bad.filter((r) => r.state === 'pruned');
      assert.ok(bad.length >= 5, `seed ${seed}: enough bad trials to judge (${rows.length} rows, ${bad.length} bad)`);
      // only trials before the pruner had anything to compare with may escape
      for (const r of bad) if (r.state !== 'pruned') assert.ok(r.id < 6, `seed ${seed}: bad trial ${r.id} (quality ${r.q.toFixed(2)}) ran to the end`);
      assert.ok(prunedBad.length >= 0.85 * bad.length, `seed ${seed}: ${prunedBad.length}/${bad.length} bad trials pruned`);
      const best = rows.reduce((a, b) => (b.q > a.q ? b : a));
      assert.equal(best.state, 'complete', `seed ${seed}: the best trial (quality ${best.q.toFixed(3)}) must not be pruned`);
      for (const r of rows) if (r.state === 'pruned') assert.ok(r.epochs < 9, `trial ${r.id} pruned after its last epoch`);
      const epochs = rows.reduce((a, r) => a + r.epochs, 0);
      assert.ok(epochs < 0.65 * 9 * rows.length, `seed ${seed}: pruning saved work (${epochs} of ${9 * rows.length} epochs)`);
      if (name === 'median') {
        for (const r of rows) if (r.q > 0.9) assert.equal(r.state, 'complete', `seed ${seed}: good trial ${r.id} (quality ${r.q.toFixed(3)}) was pruned`);
      } else {
        // ASHA stops trials only at its rungs (1, 3, 9 epochs), and everything that survived every rung is good
        for (const r of rows) if (r.state === 'pruned') assert.ok([1, 3].includes(r.epochs), `pruned at epoch ${r.epochs}`);
        for (const r of rows)
          if (r.state === 'complete' && r.id >= 3) assert.ok(r.q > 0.5, `seed ${seed}: trial ${r.id} of quality ${r.q.toFixed(2)} survived every rung`);
      }
    }
  });
}

test('ASHA keeps the top 1/η at each rung', () => {
  const p = new AshaPruner('maximize', { minResource: 1, reductionFactor: 3 });
  const rec = (id: number, v: number) => ({ id, attempt: 1, params: {}, state: 'complete' as const, value: v, reports: new Map([[1, v]]), started: 0 });
  const others = [0.9, 0.8, 0.7, 0.6, 0.5].map((v, i) => rec(i, v));
  // 6 values at rung 1: the top floor(6/3) = 2 continue
  assert.equal(p.shouldPrune({ ...rec(9, 0.85), state: 'running' }, 1, [...others, rec(9, 0.85)]), false);
  assert.equal(p.shouldPrune({ ...rec(9, 0.75), state: 'running' }, 1, [...others, rec(9, 0.75)]), true);
  assert.equal(p.rung(0), 1);
  assert.equal(p.rung(2), 9);
});

test('a sequential study stopped mid-trial and resumed ends exactly like an uninterrupted one', async () => {
  const run = async (file: string, opts: { stopAt?: number; resume?: boolean }) => {
    const ac = new AbortController();
    return runStudy({
      file,
      identity,
      sampler: new TpeSampler(space, 'maximize', { seed: 3, startup: 5 }),
      pruner: new AshaPruner('maximize'),
      executor: new InProcessExecutor(createObjective({ epochs: 9, sleepMs: opts.stopAt ? 1 : 0 })),
      trials: 25,
      progress: false,
      resume: opts.resume,
      signal: ac.signal,
      onTrialStart: (job) => {
        if (job.id === opts.stopAt) ac.abort();
      },
    });
  };
  const full = await run(path.join(tmp, 'full.jsonl'), {});
  const file = path.join(tmp, 'stopped.jsonl');
  const first = await run(file, { stopAt: 12 });
  assert.ok(first.stopped);
  assert.equal(readStudy(file).trials.get(12)!.state, 'running');
  const resumed = await run(file, { resume: true });
  assert.deepEqual(resumed.rerun, [12]);
  const view = (ts: typeof full.trials) => ts.map((t) => ({ id: t.id, params: t.params, state: t.state, value: t.value, reports: [...t.reports] }));
  assert.deepEqual(view(resumed.trials), view(full.trials));
  const s = readStudy(file);
  assert.equal(s.trials.get(12)!.attempt, 2);
  assert.equal(s.interruptions.get(12), 1);
  assert.equal(s.sessions, 2);
});
