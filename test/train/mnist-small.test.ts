/** The small version of bench:mnist: a LeNet-style CNN from the builder, trained from scratch on real MNIST. */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadMnist } from '../../src/data/idx.js';
import { lenet5, paramNames } from '../../src/nn/index.js';
import { sgd } from '../../src/optim/index.js';
import { ArraySource } from '../../src/step/batches.js';
import { compileTrainStep } from '../../src/step/compile.js';
import { compileEvalStep } from '../../src/step/eval-graph.js';
import { StepRunner } from '../../src/step/runner.js';
import { evaluateSource, fit } from '../../src/train/fit.js';

test('LeNet on 2,000 MNIST images, 3 epochs: test accuracy clearly above chance', async () => {
  const ds = await loadMnist();
  const all = new ArraySource(ds.train.x, ds.train.y, [1, 28, 28], 10);
  const train = all.subset(Int32Array.from({ length: 2000 }, (_, i) => i));
  const test = new ArraySource(ds.test.x, ds.test.y, [1, 28, 28], 10).subset(Int32Array.from({ length: 1000 }, (_, i) => i));
  const model = lenet5({ classes: 10 }).build({ inputShape: ['N', 1, 28, 28], seed: 0 });
  const step = compileTrainStep({ model, trainable: paramNames(model), optimizer: sgd({ lr: 0.05, momentum: 0.9 }) });
  const runner = await StepRunner.create(step, compileEvalStep(model, step));
  const before = await evaluateSource(runner, test);
  const r = await fit(runner, train, { epochs: 3, batchSize: 32, lr: 0.05, seed: 0 });
  const after = await evaluateSource(runner, test);
  assert.ok(before.acc < 0.3, `untrained accuracy ${before.acc} should be near chance`);
  assert.ok(after.acc > 0.8, `accuracy after 3 epochs on 2k images: ${after.acc}`);
  assert.ok(r.history[0]!.train_loss! < 2.3);
});
