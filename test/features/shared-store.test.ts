/**
 * One feature path: `graft tune`'s prepared features and a `Network.fit` head-only run go through the same
 * store of the feature cache, so whichever runs second computes nothing; tune workers read the rows back by key.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { readStoredFeatures, sourceFeatures } from '../../src/features/backbone.js';
import { FeatureStore } from '../../src/features/store.js';
import { sgd } from '../../src/optim/index.js';
import { parseTuneConfig } from '../../src/tune/config.js';
import { networkFor, prepareGraftObjective } from '../../src/tune/graft-prepare.js';
import { makeImages } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-shared-store-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
process.env.GRAFT_CACHE_DIR = path.join(tmp, 'cache');

const shards = (dir: string) => fs.readdirSync(dir).filter((f) => f.endsWith('.jsonl')).length;

test("tune's prepared features and Network.fit (head only) read the same store entries; the second computes nothing", async () => {
  const imgs = path.join(tmp, 'imgs');
  for (const c of ['cat', 'dog']) await makeImages(path.join(imgs, c), 8, c === 'cat' ? 1 : 2);
  const tune = parseTuneConfig(
    {
      study: { name: 's', dir: tmp, trials: 1, workers: 0, seed: 0 },
      space: { lr: { type: 'log-uniform', low: 1e-3, high: 1e-2 } },
      objective: {
        config: {
          data: { train: imgs, valSplit: 0.25 },
          model: { arch: 'small-cnn', width: 4, preprocess: { size: [16, 16] } },
          train: { mode: 'head', batchSize: 4, epochs: 1 },
        },
      },
    },
    'tune.yaml',
    tmp,
  );
  const io = { note: () => {}, warn: (m: string) => assert.fail(m) };
  const prep = await prepareGraftObjective(tune, path.join(tmp, 's'), io);
  const refs = prep.options.features!;
  const setup = prep.setup!;
  assert.equal(refs.train.store, refs.val.store, 'train and val in one store');
  assert.ok(refs.train.store.startsWith(path.join(tmp, 'cache', 'features')), refs.train.store);
  assert.equal(refs.train.keys.length, setup.train.length);
  assert.equal(refs.val.keys.length, setup.val.length);
  assert.ok(!fs.existsSync(path.join(tmp, 's', 'features')), 'no feature file format of its own');
  const store = FeatureStore.open(refs.train.store);
  assert.equal(store.size, 16);
  const shardsBefore = shards(refs.train.store);

  // a head-only fit of the same network on the same images: every row comes from the store
  const net = networkFor(setup, setup.cfg);
  assert.ok(net.headOnly());
  await net.fit(setup.train, { epochs: 1, batchSize: 4, optimizer: sgd({ lr: 0.01 }), val: setup.val });
  assert.equal(shards(refs.train.store), shardsBefore, 'Network.fit wrote no new shard: it decoded and ran nothing');
  assert.equal(FeatureStore.open(refs.train.store).size, 16);

  // what a tune worker reads by key is what the feature path computes, bit for bit
  const backbone = (await import('../../src/ir/surgery.js')).extractSubgraph(net.model, net.cut!);
  for (const [ref, src] of [
    [refs.train, setup.train],
    [refs.val, setup.val],
  ] as const) {
    const read = readStoredFeatures(ref);
    const now = (await sourceFeatures(backbone, src)).source;
    assert.deepEqual(read.sampleShape, now.sampleShape);
    assert.deepEqual(Buffer.from(read.x.buffer), Buffer.from(now.x.buffer));
    assert.deepEqual([...read.y], [...now.y]);
    assert.equal(read.numClasses, 2);
  }
  assert.equal(shards(refs.train.store), shardsBefore);
});

test('in-memory arrays shared through the store are read back exactly; a deleted cache is a clear error', async () => {
  const { ArraySource } = await import('../../src/step/batches.js');
  const { tinyModels } = await import('./helpers.js');
  const { extractor } = tinyModels();
  const x = new Float32Array(5 * 3 * 32 * 32).map((_, i) => Math.sin(i));
  x.copyWithin(4 * 3072, 0, 3072); // sample 4 repeats sample 0: one stored row
  const src = new ArraySource(x, [0, 1, 0, 1, 0], [3, 32, 32], 2);
  const cacheDir = path.join(tmp, 'arrays-cache');
  const plain = await sourceFeatures(extractor, src, { cacheDir });
  assert.equal(plain.stored, undefined, 'arrays stay in memory unless shared');
  assert.ok(!fs.existsSync(cacheDir));
  const r = await sourceFeatures(extractor, src, { cacheDir, share: true });
  assert.deepEqual(Buffer.from(r.source.x.buffer), Buffer.from(plain.source.x.buffer));
  assert.equal(r.stored!.keys[4], r.stored!.keys[0]);
  assert.equal(FeatureStore.open(r.stored!.store).size, 4);
  const back = readStoredFeatures(JSON.parse(JSON.stringify(r.stored)));
  assert.deepEqual(Buffer.from(back.x.buffer), Buffer.from(plain.source.x.buffer));
  assert.deepEqual([...back.y], [0, 1, 0, 1, 0]);
  fs.rmSync(cacheDir, { recursive: true });
  assert.throws(() => readStoredFeatures(r.stored!), /feature cache .* is gone; run again/);
});
