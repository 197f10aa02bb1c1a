/**
 * Distributed feature extraction against a real redis-server on loopback: the features equal a local
 * cachedFeatures run byte for byte, with two workers, and after a worker is killed (-9) in the middle of a shard.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { cachedFeatures } from '../../src/features/cache.js';
import { FeatureStore } from '../../src/features/store.js';
import { distributedFeatures } from '../../src/scale/extract.js';
import { queueStatus } from '../../src/scale/status.js';
import { startWorker } from '../../src/scale/worker.js';
import { CFG, localFeatures, makeImages, tinyModels } from '../features/helpers.js';
import { startRedis, type TestRedis } from '../redis.js';

let redis: TestRedis;
let tmp: string;
let files: string[];
const { extractor } = tinyModels();
let reference: Awaited<ReturnType<typeof cachedFeatures>>;

before(async () => {
  redis = await startRedis();
  tmp = await mkdtemp(path.join(tmpdir(), 'graft-scale-'));
  files = await makeImages(path.join(tmp, 'images'), 10);
  reference = await localFeatures(extractor, files, path.join(tmp, 'local'));
});
after(async () => {
  await redis?.stop();
  await rm(tmp, { recursive: true, force: true });
});

const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

test('two workers fill the shared store; the result is byte-identical to a local extraction', { timeout: 60_000 }, async () => {
  const url = `${redis.url}/1`;
  const cacheDir = path.join(tmp, 'shared-1');
  const seen: string[] = [];
  const workers = await Promise.all(
    ['a', 'b'].map((name) => startWorker({ queue: url, name, threads: 1, onJob: (e) => seen.push(`${name}:${e.name}:${e.ok}`) })),
  );
  try {
    const progress: number[] = [];
    const r = await distributedFeatures({
      queue: url,
      model: extractor,
      preprocess: CFG,
      items: files.map((p) => ({ path: p })),
      shardSize: 3,
      batchSize: 2,
      cacheDir,
      onTaskProgress: (p) => p.task === 'extracting shards' && progress.push(p.done),
    });
    assert.equal(r.hits, files.length, 'every row was computed by the workers');
    assert.deepEqual(bytes(r.features), bytes(reference.features));
    assert.deepEqual(Array.from(r.indices), Array.from(reference.indices));
    assert.deepEqual(r.keys, reference.keys);
    assert.equal(Math.max(...progress), 4, 'four shards of 3, 3, 3 and 1 files');
    assert.equal(seen.filter((s) => s.includes(':shard:true')).length, 4);
    const st = await queueStatus(url);
    assert.equal(st.completed, 5, 'four shards and their parent');
    assert.equal(st.failed, 0);
    assert.deepEqual(st.workers.sort(), ['a', 'b']);

    // the same shards again, cut differently (every job a duplicate of work done): same bytes, no row twice
    const again = await distributedFeatures({ queue: url, model: extractor, preprocess: CFG, items: files.map((p) => ({ path: p })), shardSize: 4, cacheDir });
    assert.deepEqual(bytes(again.features), bytes(reference.features));
    assert.equal(FeatureStore.open(r.store).size, files.length);
  } finally {
    await Promise.all(workers.map((w) => w.close()));
  }
});

test('a worker killed -9 mid-shard loses nothing: the job is retried and the result is byte-identical', { timeout: 60_000 }, async () => {
  const url = `${redis.url}/2`;
  const cacheDir = path.join(tmp, 'shared-2');
  const script = fileURLToPath(new URL('./child-worker.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script, url, '1000', '1000'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((r) => child.once('exit', r));
  let out = '';
  const said = (word: string) =>
    new Promise<void>((resolve, reject) => {
      const check = () => out.includes(word) && resolve();
      child.stdout!.on('data', (d) => {
        out += d;
        check();
      });
      child.once('exit', (code) => reject(new Error(`child worker exited (${code}) before "${word}": ${out}`)));
      check();
    });
  let survivor: Awaited<ReturnType<typeof startWorker>> | undefined;
  try {
    await said('ready');
    const run = distributedFeatures({
      queue: url,
      model: extractor,
      preprocess: CFG,
      items: files.map((p) => ({ path: p })),
      shardSize: 10,
      batchSize: 2,
      cacheDir,
    });
    run.catch(() => {});
    await said('active');
    child.kill('SIGKILL');
    await exited;
    survivor = await startWorker({ queue: url, name: 'survivor', threads: 1, lockDuration: 1000, stalledInterval: 300 });
    const r = await run;
    assert.deepEqual(bytes(r.features), bytes(reference.features));
    assert.deepEqual(Array.from(r.indices), Array.from(reference.indices));
    assert.equal(r.hits, files.length);
    const st = await queueStatus(url);
    assert.ok(st.retried >= 1, `the killed worker's shard was taken back (retried: ${st.retried})`);
    assert.equal(st.failed, 0);
    assert.deepEqual(st.workers, ['survivor']);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await survivor?.close();
  }
});

test('an unreachable Redis is one clear error, not a hang', async () => {
  const { freePort } = await import('../redis.js');
  const url = `redis://127.0.0.1:${await freePort()}`;
  await assert.rejects(queueStatus(url), /cannot reach the Redis server of --queue redis:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\); start redis-server/);
  await assert.rejects(startWorker({ queue: url }), /cannot reach the Redis server/);
  await assert.rejects(distributedFeatures({ queue: url, model: extractor, preprocess: CFG, items: [], cacheDir: path.join(tmp, 'none') }), /cannot reach/);
});
