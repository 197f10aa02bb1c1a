/**
 * The built-in objective end to end on a small MNIST subset: head-only trials train on features computed
 * once in the study process, trials that unfreeze a stage load the backbone in their worker, and the best
 * configuration retrained for export (the head grafted back onto the backbone) scores what the trial scored.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { parseTuneConfig } from '../../src/tune/config.js';
import { trainForExport } from '../../src/tune/graft-prepare.js';
import { runTune } from '../../src/tune/run.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-tune-graft-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
// the prepared features go to graft's feature cache (workers inherit the variable)
process.env.GRAFT_CACHE_DIR = path.join(tmp, 'cache');

test('graft objective: cached-feature and unfrozen trials in workers, then export of the best', async () => {
  const cfg = parseTuneConfig(
    {
      study: { name: 'mnist', dir: tmp, trials: 5, workers: 2, threadsPerWorker: 1, seed: 0 },
      sampler: 'random',
      pruner: 'none',
      space: {
        lr: { type: 'log-uniform', low: 1e-3, high: 1e-2 },
        hidden: { type: 'categorical', choices: [[], [16]] },
        epochs: { type: 'int', low: 2, high: 3 },
        unfreeze: { type: 'categorical', choices: [0, 1] },
      },
      objective: {
        config: {
          data: { train: 'mnist', limit: 240, valSplit: 0.25 },
          model: { arch: 'small-cnn', width: 8 },
          train: { mode: 'head', optimizer: { name: 'adam' }, batchSize: 30 },
        },
      },
    },
    'graft-tune.yaml',
    tmp,
  );
  const notes: string[] = [];
  const io = { note: (m: string) => notes.push(m), warn: (m: string) => notes.push(`warning: ${m}`) };
  const r = await runTune(cfg, { progress: false, io });
  assert.equal(r.trials.length, 5);
  for (const t of r.trials) assert.equal(t.state, 'complete', `trial ${t.id}: ${t.error}`);
  const units = new Set(r.trials.map((t) => t.params.unfreeze));
  assert.deepEqual([...units].sort(), [0, 1], 'both kinds of trial ran');
  for (const t of r.trials) assert.equal(t.reports.size, t.params.epochs, 'one report per epoch');
  assert.ok(
    notes.some((n) => /features of \d+ train \/ \d+ val samples computed once/.test(n)),
    notes.join('\n'),
  );
  assert.ok(!fs.existsSync(path.join(tmp, 'mnist', 'features')), 'no feature files of its own in the study folder');
  const stores = fs.readdirSync(path.join(tmp, 'cache', 'features'));
  assert.equal(stores.length, 1, 'train and val MNIST features in one store of the feature cache');

  // retrain the best head-only trial: grafted onto the backbone, it scores exactly what the trial scored
  const head = r.trials.filter((t) => t.params.unfreeze === 0).sort((a, b) => b.value! - a.value!)[0]!;
  const { net, metrics } = await trainForExport(cfg, path.join(tmp, 'mnist'), head.params, io);
  assert.ok(Math.abs(metrics.val.acc - head.value!) < 1e-9, `export ${metrics.val.acc} vs trial ${head.value}`);
  const out = path.join(tmp, 'best.onnx');
  net.save(out, { tune: { trial: head.id } });
  const s = await ort.InferenceSession.create(out);
  const y = await s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', new Float32Array(2 * 784), [2, 1, 28, 28]) });
  assert.deepEqual(y.probabilities!.dims, [2, 10]);
  await s.release();
});
