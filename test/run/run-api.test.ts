/**
 * The run layer's API, as a UI or a server uses it: `startRun` streams typed events, `cancel()` stops a run
 * mid-epoch after checkpointing its position, and starting it again with `run.resume` ends with exactly the
 * model an uninterrupted run writes. Also `Network.fineTune`, the library's one-call recipe.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { conv2d, flatten, globalAvgPool, linear, mlp, relu, sequential } from '../../src/nn/index.js';
import { sgd } from '../../src/optim/sgd.js';
import { parseConfig } from '../../src/run/config.js';
import { RunCancelled, type RunEvent } from '../../src/run/events.js';
import { runTraining, startRun } from '../../src/run/train.js';
import { ArraySource } from '../../src/step/batches.js';
import { Rng } from '../../src/tensor.js';
import { Network } from '../../src/train/network.js';
import { writeColourImages } from '../image-fixtures.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-run-api-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const makeImages = (root: string, perClass: number) =>
  writeColourImages(root, {
    colours: [
      ['red', [220, 40, 40]],
      ['green', [40, 200, 60]],
    ],
    perClass,
    size: 12,
    seed: 5,
    noise: 160,
  });

const config = (name: string, extra: { resume?: boolean } = {}) =>
  parseConfig({
    data: { train: path.join(tmp, 'data'), valSplit: 0.25 },
    model: { arch: 'small-cnn', width: 4, preprocess: { size: [12, 12] }, head: { hidden: [8] } },
    train: { mode: 'full', epochs: 3, batchSize: 4, earlyStopping: false },
    run: { dir: path.join(tmp, 'runs'), name, seed: 3, ...extra },
  });

test('startRun streams typed events; cancel() checkpoints mid-epoch; resume ends with the uninterrupted model, byte for byte', async () => {
  await makeImages(path.join(tmp, 'data'), 16);

  // uninterrupted
  const events: RunEvent[] = [];
  const whole = await runTraining(config('whole'), { source: 'test', onEvent: (e) => events.push(e) });
  const types = new Set(events.map((e) => e.type));
  for (const t of ['start', 'phase', 'step', 'epoch', 'checkpoint', 'finished'] as const) assert.ok(types.has(t), `a ${t} event`);
  // image validation reports progress (the pipeline prints nothing; surfaces draw these), up to every train and val image
  const validating = events.filter((e) => e.type === 'progress' && e.task === 'validating images');
  assert.deepEqual(
    validating.filter((e) => e.type === 'progress' && e.done === e.total).map((e) => (e.type === 'progress' ? e.total : 0)),
    [24, 8],
  );
  const steps = events.filter((e) => e.type === 'step');
  assert.equal(steps.length, 3 * 6, '3 epochs of 24 / 4 = 6 batches');
  assert.deepEqual(
    steps.slice(0, 7).map((e) => [e.epoch, e.batch, e.step]),
    [
      [1, 1, 1],
      [1, 2, 2],
      [1, 3, 3],
      [1, 4, 4],
      [1, 5, 5],
      [1, 6, 6],
      [2, 1, 7],
    ],
  );
  const epochs = events.filter((e) => e.type === 'epoch');
  assert.deepEqual(
    epochs.map((e) => (e.type === 'epoch' ? e.metrics.epoch : 0)),
    [1, 2, 3],
  );
  const fin = events.at(-1);
  assert.equal(fin?.type, 'finished');

  // cancelled in the middle of epoch 2, then resumed
  const run = startRun(config('cut'), { source: 'test' });
  const seen: RunEvent[] = [];
  run.on((e) => {
    seen.push(e);
    if (e.type === 'step' && e.step === 8) run.cancel();
  });
  await assert.rejects(run.done, RunCancelled);
  assert.equal(seen.at(-1)?.type, 'cancelled');
  assert.equal(seen.filter((e) => e.type === 'step').length, 8, 'the run stops at the step it was cancelled in');
  assert.ok(!fs.existsSync(path.join(tmp, 'runs', 'cut', 'model.onnx')), 'a cancelled run writes no model');
  const resumed = await runTraining(config('cut', { resume: true }), { source: 'test' });
  assert.deepEqual(resumed.history, whole.history);
  assert.deepEqual(fs.readFileSync(resumed.model), fs.readFileSync(whole.model));
});

test('Network.fineTune trains the head alone, then everything at half the LR over discriminative groups', async () => {
  const rng = new Rng(1);
  const n = 32;
  const x = new Float32Array(n * 2 * 4 * 4).map(() => rng.normal());
  const y = Int32Array.from({ length: n }, (_, i) => i % 2);
  for (let i = 0; i < n; i++) x[i * 32] += y[i]! * 3;
  const data = new ArraySource(x, y, [2, 4, 4], 2);
  const model = sequential(conv2d(2, 4, 3, { padding: 1 }), relu(), globalAvgPool(), flatten(), linear(4, 3)).build({ inputShape: ['N', 2, 4, 4], seed: 0 });
  const net = new Network(model);
  net.freeze().replaceHead(mlp([], 2, { inFeatures: 4 }), { seed: 0 });
  const backbone = net.parameters.filter((p) => !net.headParameters.includes(p));
  const before = new Map(backbone.map((p) => [p, net.model.graph.initializers.get(p)!.data.slice()]));
  const phases = await net.fineTune(data, { epochs: 1, freezeEpochs: 1, batchSize: 8, optimizer: sgd({ lr: 0.05, momentum: 0.9 }), seed: 0 });
  assert.deepEqual(
    phases.map((p) => p.phase),
    ['head', 'fine-tune'],
  );
  assert.deepEqual(
    phases.map((p) => p.result.history.length),
    [1, 1],
  );
  // the second phase unfroze the backbone: its weights moved
  const moved = backbone.filter((p) => {
    const a = before.get(p)!;
    const b = net.model.graph.initializers.get(p)!.data;
    return a.some((v, i) => v !== b[i]);
  });
  assert.deepEqual(moved.sort(), [...backbone].sort());
  assert.equal(net.trainable.size, net.parameters.length);
});
