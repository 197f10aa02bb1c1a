import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { mlp, paramNames } from '../../src/nn/index.js';
import { cosineSchedule, sgd } from '../../src/optim/index.js';
import { setDefaultThreads } from '../../src/runtime/threads.js';
import { ArraySource } from '../../src/step/batches.js';
import { compileTrainStep } from '../../src/step/compile.js';
import { compileEvalStep } from '../../src/step/eval-graph.js';
import { StepRunner } from '../../src/step/runner.js';
import { Rng } from '../../src/tensor.js';
import type { Callback } from '../../src/train/callbacks.js';
import { type FitOptions, fit, HEAD_PARALLEL_BATCH, HEAD_STEPS_PER_RUN, headStepsPerRun, headThreads } from '../../src/train/fit.js';
import { Network } from '../../src/train/network.js';

const B = 8;
// 11 full batches and a partial one per epoch: groups of 4 leave 3 single steps and the partial batch
const rng = new Rng(4);
const N = 11 * B + 5;
const x = Float32Array.from({ length: N * 6 }, () => rng.normal());
const y = Int32Array.from({ length: N }, () => rng.int(3));
const train = new ArraySource(x, y, [6], 3);
const val = new ArraySource(x.slice(0, 20 * 6), y.slice(0, 20), [6], 3);

async function runner(stepsPerRun: number): Promise<StepRunner> {
  const model = mlp([9], 3, { inFeatures: 6, dropout: 0.2 }).build({ inputShape: ['N', 6], seed: 3 });
  const step = compileTrainStep({ model, trainable: paramNames(model), optimizer: sgd({ lr: 0.05, momentum: 0.9, weightDecay: 0.001 }) });
  return StepRunner.create(step, compileEvalStep(model, step), { threads: 1, stepsPerRun });
}

/** Records every step the callbacks see, every checkpoint, and aborts at `abortAt` (a step number). */
function recorder(abortAt?: number) {
  const steps: string[] = [];
  const checkpoints: number[] = [];
  const cb: Callback = {
    name: 'record',
    onStepEnd(s, r) {
      steps.push(`${s.epoch}:${s.step}:${r.loss}:${r.lr}:${r.metrics.correct}`);
      if (s.step === abortAt) s.abort = true;
    },
    onCheckpoint(s) {
      checkpoints.push(s.step);
    },
  };
  return { cb, steps, checkpoints };
}

const bits = (r: StepRunner) => [...r.state()].map(([k, t]) => `${k}:${[...new Uint32Array((t.data as Float32Array).slice().buffer)].join(',')}`);

async function fitWith(stepsPerRun: number, opts: Partial<FitOptions> & { abortAt?: number } = {}) {
  const r = await runner(stepsPerRun);
  const rec = recorder(opts.abortAt);
  let groups = 0;
  const trainSteps = r.trainSteps.bind(r);
  r.trainSteps = (...args) => {
    groups++;
    return trainSteps(...args);
  };
  const res = await fit(r, train, {
    epochs: 3,
    batchSize: B,
    lr: 0.05,
    schedule: cosineSchedule(),
    seed: 2,
    val,
    dropLast: false,
    ...opts,
    callbacks: [rec.cb],
  });
  const state = bits(r);
  const stepCount = r.stepCount;
  await r.release();
  return { res, state, stepCount, groups, ...rec };
}

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'graft-fit-k-'));

test('fit with K steps per run is fit with single steps: every step, the epoch history and the final state bit for bit, checkpoints at the same steps', async () => {
  const a = await fitWith(1, { checkpointDir: tmp(), checkpointEvery: 6 });
  const b = await fitWith(4, { checkpointDir: tmp(), checkpointEvery: 6 });
  assert.equal(b.res.steps, 36);
  assert.equal(a.groups, 0);
  assert.ok(b.groups >= 4, `${b.groups} K-step runs`);
  assert.deepEqual(b.steps, a.steps);
  assert.deepEqual(b.res.history, a.res.history);
  assert.deepEqual(b.checkpoints, a.checkpoints);
  assert.deepEqual(b.state, a.state);
});

test('a run cancelled inside a K-step group stops at that step (state, position) and resumes bit-identical to an uninterrupted run', async () => {
  const full = await fitWith(1);
  for (const k of [1, 4]) {
    const dir = tmp();
    const cut = await fitWith(k, { checkpointDir: dir, abortAt: 18 }); // epoch 2, step 6 of its first group of 4
    assert.equal(cut.res.cancelled, true);
    assert.equal(cut.stepCount, 18, `K=${k}: the runner stopped at the aborting step`);
    if (k > 1) assert.ok(cut.groups > 0);
    const resumed = await fitWith(4, { checkpointDir: dir, resume: true });
    assert.deepEqual(resumed.state, full.state, `K=${k} cut, resumed with K=4`);
    assert.deepEqual(resumed.res.history, full.res.history);
    assert.deepEqual([...cut.steps, ...resumed.steps], full.steps);
  }
});

test('maxSteps inside a group: the K-step fit stops at exactly that step, as single steps do', async () => {
  const a = await fitWith(1, { maxSteps: 14 });
  const b = await fitWith(4, { maxSteps: 14 });
  assert.equal(b.stepCount, 14);
  assert.deepEqual(b.steps, a.steps);
  assert.deepEqual(b.state, a.state);
});

test('Network.fit({ stepsPerRun }) trains K steps per run and ends with the same model as single steps', async () => {
  const calls = { n: 0 };
  const original = StepRunner.prototype.trainSteps;
  StepRunner.prototype.trainSteps = function (this: StepRunner, ...args: Parameters<StepRunner['trainSteps']>) {
    calls.n++;
    return original.apply(this, args);
  };
  try {
    const models: string[] = [];
    for (const stepsPerRun of [1, 4]) {
      const net = new Network(mlp([9], 3, { inFeatures: 6 }).build({ inputShape: ['N', 6], seed: 3 }));
      await net.fit(train, { epochs: 2, batchSize: B, optimizer: sgd({ lr: 0.05, momentum: 0.9 }), seed: 1, stepsPerRun, threads: 1 });
      models.push(
        paramNames(net.model)
          .map((p) => [...(net.model.graph.initializers.get(p)!.data as Float32Array)].join())
          .join(';'),
      );
      assert.equal(calls.n > 0, stepsPerRun > 1, `K=${stepsPerRun}: ${calls.n} K-step runs`);
    }
    assert.equal(models[1], models[0]);
  } finally {
    StepRunner.prototype.trainSteps = original;
  }
});

test('the default K: 16 for long head fits, 1 for short ones', () => {
  assert.equal(headStepsPerRun(3130), HEAD_STEPS_PER_RUN);
  assert.equal(HEAD_STEPS_PER_RUN, 16);
  assert.equal(headStepsPerRun(400), 1);
});

test("the default K divides an epoch's full batches where a K from 16 down to 8 can, so fewer steps run singly", () => {
  // 10,000 samples: batch 256 has 39 full batches an epoch (16 would leave 7 single steps), batch 32 has 312
  assert.equal(headStepsPerRun(3900, 39), 13);
  assert.equal(headStepsPerRun(3130, 312), 13);
  assert.equal(headStepsPerRun(3200, 320), 16);
  // 37 is prime: 12 and 9 both leave one over; the larger K wins
  assert.equal(headStepsPerRun(3700, 37), 12);
  // fewer full batches than 16: one group of all of them
  assert.equal(headStepsPerRun(2000, 9), 9);
  assert.equal(headStepsPerRun(2000, 5), 5);
  assert.equal(headStepsPerRun(2000, 1), 1);
  assert.equal(headStepsPerRun(400, 39), 1);
  for (const full of [2, 3, 7, 16, 17, 31, 39, 64, 100, 312, 1000]) {
    const k = headStepsPerRun(5000, full);
    const left = (kk: number) => full % kk;
    for (let kk = Math.min(8, full); kk <= Math.min(16, full); kk++)
      assert.ok(left(k) <= left(kk), `full ${full}: K ${k} leaves ${left(k)}, K ${kk} leaves ${left(kk)}`);
  }
});

test('a small-batch head fit runs on 1 thread on a quiet machine, on every core when loaded or at large batches; an explicit count wins', () => {
  const saved = { threads: process.env.GRAFT_THREADS, spin: process.env.GRAFT_ORT_SPIN };
  const cores = Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
  try {
    delete process.env.GRAFT_THREADS;
    process.env.GRAFT_ORT_SPIN = '1'; // what a quiet machine decides
    assert.equal(headThreads(32), 1);
    assert.equal(headThreads(HEAD_PARALLEL_BATCH - 1), 1);
    assert.equal(headThreads(HEAD_PARALLEL_BATCH), undefined, 'from HEAD_PARALLEL_BATCH up: the session default');
    process.env.GRAFT_ORT_SPIN = '0'; // what a loaded machine decides: blocking threads, all of them
    assert.equal(headThreads(32), cores);
    process.env.GRAFT_THREADS = '3';
    process.env.GRAFT_ORT_SPIN = '1';
    assert.equal(headThreads(32), 3);
    setDefaultThreads(2);
    assert.equal(headThreads(32), 2);
  } finally {
    setDefaultThreads(undefined);
    for (const [key, v] of [
      ['GRAFT_THREADS', saved.threads],
      ['GRAFT_ORT_SPIN', saved.spin],
    ] as const)
      if (v === undefined) delete process.env[key];
      else process.env[key] = v;
  }
});
