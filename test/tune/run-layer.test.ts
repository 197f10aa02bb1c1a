/**
 * Tune trials are config overrides trained by the run layer's phase loop: `graft tune` runs a fine-tune-mode
 * study (both phases, the pruner's epochs counted across them), and a trial with settings S trains exactly
 * what `graft train` with config S trains at the same seed (head mode and fine-tune mode).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { stringify } from 'yaml';
import { parseConfig, setPath } from '../../src/run/config.js';
import { runTraining } from '../../src/run/train.js';
import { loadTuneConfig, parseTuneConfig, studyFile } from '../../src/tune/config.js';
import { GraftTrials } from '../../src/tune/graft-objective.js';
import { prepareGraftObjective, trainForExport } from '../../src/tune/graft-prepare.js';
import { readStudy } from '../../src/tune/storage.js';
import { runGraft } from '../cli-run.js';
import { writeColourImages } from '../image-fixtures.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-tune-run-layer-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
process.env.GRAFT_CACHE_DIR = path.join(tmp, 'cache');
const imgs = path.join(tmp, 'imgs');

before(async () => {
  const colours: [string, number[]][] = [
    ['red', [220, 40, 40]],
    ['green', [40, 200, 60]],
    ['blue', [40, 60, 220]],
  ];
  await writeColourImages(imgs, { colours, perClass: 6, size: 16, seed: 3 });
});

/** The base graft config of the studies: a tiny image folder, a small built-in CNN, the default fine-tune recipe. */
const base = () => ({
  data: { train: imgs, valSplit: 0.34 },
  model: { arch: 'small-cnn', width: 4, preprocess: { size: [16, 16] }, head: { hidden: [8] } },
  train: { freezeEpochs: 1, epochs: 2, batchSize: 4, optimizer: { name: 'adam' } },
  run: { seed: 5 },
});

test('graft tune runs a fine-tune-mode study: both phases in a worker, the epoch reported to the pruner counts across phases', async () => {
  const dir = path.join(tmp, 'cli');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'tune.yaml');
  fs.writeFileSync(
    file,
    stringify({
      study: { name: 'ft', dir: path.join(dir, 'runs'), trials: 2, workers: 1, threadsPerWorker: 1, seed: 0 },
      sampler: 'random',
      pruner: 'none',
      space: { lr: { type: 'log-uniform', low: 1e-3, high: 1e-2 }, 'train.freezeEpochs': { type: 'categorical', choices: [1, 2] } },
      objective: { config: base() },
    }),
  );
  const r = await runGraft(['tune', '--config', file], dir, { GRAFT_CACHE_DIR: path.join(tmp, 'cache') });
  assert.equal(r.code, 0, r.stderr);
  const cfg = loadTuneConfig(file);
  const study = readStudy(studyFile(cfg));
  assert.equal(study.trials.size, 2);
  for (const t of study.trials.values()) {
    assert.equal(t.state, 'complete', `trial ${t.id}: ${t.error}`);
    // fine-tune: freezeEpochs head epochs, then train.epochs (2) fine-tune epochs, reported as steps 1, 2, …
    const total = (t.params['train.freezeEpochs'] as number) + 2;
    assert.deepEqual(
      [...t.reports.keys()],
      Array.from({ length: total }, (_, i) => i + 1),
    );
    assert.equal(t.value, t.reports.get(total));
  }
});

/** A trial's per-epoch metrics and the same run's, without timings. */
const metricsOf = (h: Record<string, number | string>[]) => h.map((m) => Object.fromEntries(Object.entries(m).filter(([k]) => !/seconds|time/i.test(k))));

for (const mode of ['head', 'fine-tune'] as const) {
  test(`parity (${mode}): a tune trial with settings S gives the history of graft train with config S at the same seed`, async () => {
    const S = { lr: 0.004, dropout: 0.1, 'train.mode': mode, 'train.optimizer.weightDecay': 1e-4 };
    const tune = parseTuneConfig(
      {
        study: { name: `parity-${mode}`, dir: path.join(tmp, 'runs'), trials: 1, workers: 0, seed: 0 },
        space: { lr: { type: 'log-uniform', low: 1e-3, high: 1e-2 }, dropout: 0.1, 'train.mode': mode, 'train.optimizer.weightDecay': 1e-4 },
        objective: { config: base() },
      },
      'tune.yaml',
      tmp,
    );
    const io = { note: () => {}, warn: (m: string) => assert.fail(m) };
    const prep = await prepareGraftObjective(tune, path.join(tmp, 'runs', `parity-${mode}`), io);
    const trial = await new GraftTrials(prep.options).run(S);
    assert.equal(trial.headOnly, mode === 'head', 'head-mode trials train on the prepared features');

    // graft train with config S: the base config with S written at its config keys
    const raw = base() as Record<string, unknown>;
    setPath(raw, 'train.optimizer.lr', S.lr);
    setPath(raw, 'model.head.dropout', S.dropout);
    setPath(raw, 'train.mode', S['train.mode']);
    setPath(raw, 'train.optimizer.weightDecay', S['train.optimizer.weightDecay']);
    setPath(raw, 'run.dir', path.join(tmp, 'train-runs'));
    setPath(raw, 'run.name', `parity-${mode}`);
    const run = await runTraining(parseConfig(raw, 'parity'), { source: 'parity' });

    assert.equal(run.history.length, mode === 'head' ? 2 : 3);
    assert.deepEqual(metricsOf(trial.history), metricsOf(run.history));
    assert.equal(trial.value, run.history.at(-1)!.val_acc);
  });
}

test('graft tune best --export retrains a fine-tune configuration through the same loop: it scores what its trial scored', async () => {
  const tune = parseTuneConfig(
    {
      study: { name: 'export-ft', dir: path.join(tmp, 'runs'), trials: 1, workers: 0, seed: 0 },
      space: { lr: { type: 'log-uniform', low: 1e-3, high: 1e-2 } },
      objective: { config: { ...base(), train: { ...base().train, earlyStopping: false } } },
    },
    'tune.yaml',
    tmp,
  );
  const io = { note: () => {}, warn: () => {} };
  const prep = await prepareGraftObjective(tune, path.join(tmp, 'runs', 'export-ft'), io);
  const trial = await new GraftTrials(prep.options).run({ lr: 0.005 });
  assert.deepEqual(
    trial.history.map((m) => m.phase),
    ['head', 'fine-tune', 'fine-tune'],
    'both phases of the fine-tune recipe',
  );
  const { net, metrics } = await trainForExport(tune, path.join(tmp, 'runs', 'export-ft'), { lr: 0.005 }, io);
  assert.equal(metrics.val.acc, trial.value);
  assert.ok(net.trainable.size > 0);
});
