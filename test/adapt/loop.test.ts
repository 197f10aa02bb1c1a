/**
 * Adaptation runs through the one training loop (`fit`) and the one step compiler: source-only adaptation equals
 * plain `fit`, an interrupted run resumes bit-identically (target order, augmentation stream, GRL λ, selection), and
 * evaluation needs no training step.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { type AdaptResult, adapt, type MethodName, unlabelled } from '../../src/adapt/index.js';
import { paramNames } from '../../src/ir/params.js';
import { mlp } from '../../src/nn/index.js';
import { invSchedule } from '../../src/optim/schedule.js';
import { sgd } from '../../src/optim/sgd.js';
import { compileTrainStep } from '../../src/step/compile.js';
import { compileEvalStep } from '../../src/step/eval-graph.js';
import { EvalRunner, StepRunner } from '../../src/step/runner.js';
import { evaluateSource, fit } from '../../src/train/fit.js';
import { Network } from '../../src/train/network.js';
import { blobs } from './toy.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-adapt-loop-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const source = blobs(200, 1, 0);
const target = blobs(160, 2, 30);
const sourceVal = blobs(64, 4, 0);
const targetEval = blobs(64, 3, 30);
const net = () => mlp([16, 8], 2, { batchNorm: true, inFeatures: 2 }).build({ seed: 3 });

test('source-only adaptation gives exactly what fit gives: same per-step losses and final weights', async () => {
  const steps: number[] = [];
  const r = await adapt({
    model: net(),
    method: 'source-only',
    source,
    target: unlabelled(target),
    epochs: 3,
    batchSize: 16,
    lr: 0.05,
    seed: 4,
    select: 'last',
    onStep: (_s, _t, x) => steps.push(x.loss),
  });
  const model = net();
  const step = compileTrainStep({ model, trainable: paramNames(model), optimizer: sgd({ lr: 0.05, momentum: 0.9, weightDecay: 5e-4 }) });
  const runner = await StepRunner.create(step);
  const fitLosses: number[] = [];
  const f = await fit(runner, source, {
    epochs: 3,
    batchSize: 16,
    lr: 0.05,
    schedule: invSchedule(),
    seed: 4,
    dropLast: true,
    callbacks: [{ name: 'losses', onStepEnd: (_s, x) => void fitLosses.push(x.loss) }],
  });
  assert.equal(r.steps, f.steps);
  assert.equal(steps.length, 36);
  assert.deepEqual(steps, fitLosses, 'per-step losses identical');
  const state = runner.state(['param', 'bn']);
  for (const [k, v] of state) assert.deepEqual(r.model.graph.initializers.get(k)!.data, v.data, `${k} identical`);
  await runner.release();
});

/** A run of `method` with checkpoints every 3 steps; `maxSteps` stops it early ("killed"). */
function run(method: MethodName, dir: string | undefined, o: { maxSteps?: number; resume?: boolean } = {}): Promise<AdaptResult> {
  return adapt({
    model: net(),
    method,
    source,
    target: unlabelled(target),
    sourceVal,
    targetEval,
    epochs: 3,
    batchSize: 16,
    targetBatchSize: 24, // 160 target images: the target permutation is redrawn every 6 steps, mid-epoch
    lr: 0.05,
    seed: 2,
    evalEvery: 5,
    checkpointDir: dir,
    checkpointEvery: 3,
    ...o,
  });
}

for (const method of ['fixmatch', 'dann'] as const)
  test(`${method}: a run interrupted mid-epoch and resumed equals an uninterrupted one (weights, history, selection, losses)`, async () => {
    const full = await run(method, undefined);
    const dir = path.join(tmp, method);
    await run(method, dir, { maxSteps: 17 }); // last checkpoint at step 15, in epoch 2, after 2 target permutations
    assert.ok(fs.existsSync(path.join(dir, 'last.ckpt')));
    const resumed = await run(method, dir, { resume: true });
    assert.equal(resumed.steps, full.steps);
    assert.deepEqual(resumed.history, full.history);
    assert.deepEqual(resumed.selected, full.selected);
    assert.deepEqual(resumed.train, full.train);
    for (const [k, v] of full.model.graph.initializers) assert.deepEqual(resumed.model.graph.initializers.get(k)!.data, v.data, `${k} identical`);
    for (const [k, v] of full.lastModel.graph.initializers) assert.deepEqual(resumed.lastModel.graph.initializers.get(k)!.data, v.data, `last ${k} identical`);
    // resuming a finished run trains no further and gives the same result
    const again = await run(method, dir, { resume: true });
    assert.deepEqual(again.history, full.history);
    assert.deepEqual(again.train, full.train);
  });

test('evaluation compiles no training step: compileEvalStep(model) runs on an EvalRunner and agrees with a step runner', async () => {
  const model = net();
  const ev = compileEvalStep(model);
  assert.deepEqual(ev.stateInputs, []);
  assert.ok(!ev.model.graph.nodes.some((n) => n.op === 'Sub' && n.name?.startsWith('optim/')));
  const er = await EvalRunner.create(ev);
  const a = await evaluateSource(er, sourceVal);
  await er.release();
  const step = compileTrainStep({ model, trainable: paramNames(model), optimizer: sgd({ lr: 0.1 }) });
  const sr = await StepRunner.create(step, compileEvalStep(model, step));
  const b = await evaluateSource(sr, sourceVal);
  await sr.release();
  assert.deepEqual(a, b);
  assert.deepEqual(await new Network(model).evaluate(sourceVal), a);
  // an eval graph that reads a training step's state needs that step's runner
  await assert.rejects(EvalRunner.create(compileEvalStep(model, step)), /reads training state .* use StepRunner\.create/);
});
