/**
 * `graft tune show|best` as a user runs them: the subcommand's own --config decides the study, even in a
 * folder whose ./tune.yaml belongs to another study (graft's end-of-study hint prints exactly this form).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { stringify } from 'yaml';
import { loadTuneConfig } from '../../src/tune/config.js';
import { runTune } from '../../src/tune/run.js';
import { runGraft } from '../cli-run.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-tune-cli-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
// head-only trials' features go to graft's feature cache: keep it out of the repository
process.env.GRAFT_CACHE_DIR = path.join(tmp, 'cache');

/** A one-trial study on a small MNIST subset, named `name`, written to `file`. */
function writeStudyConfig(file: string, name: string): void {
  const cfg = {
    study: { name, dir: path.join(tmp, 'runs'), trials: 1, workers: 0, threadsPerWorker: 1, seed: 0 },
    sampler: 'random',
    pruner: 'none',
    space: { lr: { type: 'log-uniform', low: 1e-3, high: 1e-2 }, epochs: 1 },
    objective: {
      config: {
        data: { train: 'mnist', limit: 60, valSplit: 0.25 },
        model: { arch: 'small-cnn', width: 4, head: { hidden: [] } },
        train: { mode: 'head', optimizer: { name: 'adam' }, batchSize: 15 },
      },
    },
  };
  fs.writeFileSync(file, stringify(cfg));
}

const cwd = path.join(tmp, 'a');
const configB = path.join(tmp, 'b', 'tune.yaml');

before(async () => {
  fs.mkdirSync(cwd, { recursive: true });
  fs.mkdirSync(path.dirname(configB), { recursive: true });
  writeStudyConfig(path.join(cwd, 'tune.yaml'), 'study-a');
  writeStudyConfig(configB, 'study-b');
  const io = { note: () => {}, warn: () => {} };
  for (const f of [path.join(cwd, 'tune.yaml'), configB]) await runTune(loadTuneConfig(f), { progress: false, io });
});

const studyB = path.join(tmp, 'runs', 'study-b', 'study.jsonl');

test('graft tune show --config B in a folder holding study A shows study B', async () => {
  const r = await runGraft(['tune', 'show', '--config', configB, '--json'], cwd);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).study, studyB);
  // given before the subcommand, --config still counts
  const r2 = await runGraft(['tune', '--config', configB, 'show', '--json'], cwd);
  assert.equal(r2.code, 0, r2.stderr);
  assert.equal(JSON.parse(r2.stdout).study, studyB);
});

test('graft tune best --config B in a folder holding study A exports study B', async () => {
  const out = path.join(tmp, 'best.onnx');
  const r = await runGraft(['tune', 'best', '--config', configB, '--export', out, '--json'], cwd);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).study, studyB);
  const sidecar = JSON.parse(fs.readFileSync(path.join(tmp, 'best.json'), 'utf8'));
  assert.equal(sidecar.tune.study, studyB);
});
