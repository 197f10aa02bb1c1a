/**
 * Every long part of the feature path reports progress through a callback, and prints nothing itself:
 * cachedFeatures over N files reports hashing up to N and extraction up to the misses; Network.fit reports
 * one step per optimizer step, one epoch per epoch, and the frozen backbone's feature tasks; the CLI's
 * renderer (taskProgressBars) turns task reports into JSON lines when not on a terminal.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, test } from 'node:test';
import { ImageSource } from '../../src/data/image-source.js';
import { cachedFeatures } from '../../src/features/cache.js';
import { linear } from '../../src/nn/index.js';
import { sgd } from '../../src/optim/index.js';
import { Network } from '../../src/train/network.js';
import type { FitProgress } from '../../src/train/progress.js';
import { type TaskProgress, taskProgressBars } from '../../src/util/progress.js';
import { CFG, makeImages, tinyModels } from './helpers.js';

const tmp = await mkdtemp(join(tmpdir(), 'graft-progress-'));
after(() => rm(tmp, { recursive: true, force: true }));
const N = 11;
const files = await makeImages(join(tmp, 'imgs'), N);

const last = (ps: TaskProgress[], task: string) => ps.filter((p) => p.task === task).at(-1);

test('cachedFeatures over N files reports hashing and extraction progress up to N; a cached rerun only hashes', async () => {
  const { extractor } = tinyModels();
  const cacheDir = join(tmp, 'cache');
  const seen: TaskProgress[] = [];
  const opts = {
    model: extractor,
    preprocess: CFG,
    items: files.map((path) => ({ path })),
    batchSize: 4,
    cacheDir,
    onTaskProgress: (p: TaskProgress) => seen.push(p),
  };
  await cachedFeatures(opts);
  assert.deepEqual(last(seen, 'hashing images'), { task: 'hashing images', done: N, total: N, unit: 'img' });
  assert.deepEqual(last(seen, 'extracting features'), { task: 'extracting features', done: N, total: N, unit: 'img' });
  assert.equal(seen.filter((p) => p.task === 'hashing images').length, N, 'one report per file hashed');
  const hashing = seen.filter((p) => p.task === 'hashing images').map((p) => p.done);
  assert.deepEqual(
    hashing,
    [...hashing].sort((a, b) => a - b),
    'done only grows',
  );

  seen.length = 0;
  await cachedFeatures(opts);
  assert.equal(last(seen, 'hashing images')?.done, N);
  assert.equal(last(seen, 'extracting features'), undefined, 'every row came from the cache');
});

test('Network.fit onProgress: one step report per optimizer step, one epoch report per epoch, and the feature tasks', async () => {
  const { full, cut } = tinyModels();
  const labels = files.map((_, i) => i % 2);
  const { source } = await ImageSource.create(files, labels, { preprocess: CFG, numClasses: 2 });
  const net = new Network(full, { cut, preprocess: CFG });
  const dims = net.model.graph.info(cut)?.shape?.at(-1) as number;
  net.freeze().replaceHead(linear(dims, 2), { seed: 0 });
  const reports: FitProgress[] = [];
  process.env.GRAFT_CACHE_DIR = join(tmp, 'fit-cache'); // the feature path's cache, kept out of the working folder
  const r = await net.fit(source, { epochs: 3, batchSize: 4, optimizer: sgd({ lr: 0.01 }), seed: 0, onProgress: (p) => reports.push(p) });
  const steps = reports.filter((p) => p.type === 'step');
  assert.equal(steps.length, r.steps, 'one step report per optimizer step');
  assert.deepEqual(
    steps.map((p) => (p.type === 'step' ? p.step : 0)),
    Array.from({ length: r.steps }, (_, i) => i + 1),
  );
  assert.equal(reports.filter((p) => p.type === 'epoch').length, 3);
  const tasks = reports.filter((p): p is Extract<FitProgress, { type: 'task' }> => p.type === 'task');
  assert.equal(tasks.filter((t) => t.task === 'hashing images').at(-1)?.done, N, 'the frozen backbone hashed every image');
  assert.ok(reports.findIndex((p) => p.type === 'task') < reports.findIndex((p) => p.type === 'step'), 'feature tasks come before training');
});

test('taskProgressBars renders task reports as JSON lines off a terminal, one final line per task', () => {
  let out = '';
  const stream = new Writable({
    write(chunk, _enc, cb) {
      out += chunk;
      cb();
    },
  });
  const draw = taskProgressBars({ stream, mode: 'jsonl', intervalMs: 0 });
  for (let i = 1; i <= 3; i++) draw({ task: 'hashing images', done: i, total: 3, unit: 'img' });
  for (let i = 2; i <= 4; i += 2) draw({ task: 'extracting features', done: i, total: 4, unit: 'img' });
  const lines = out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  const finals = lines.filter((l) => l.final);
  assert.deepEqual(
    finals.map((l) => [l.label, l.done, l.total]),
    [
      ['hashing images', 3, 3],
      ['extracting features', 4, 4],
    ],
  );
  assert.ok(lines.every((l) => l.event === 'progress' && 'rate' in l && 'eta_s' in l));
});
