/**
 * Distributed feature extraction through S3-compatible storage (a loopback S3 stand-in, a real redis-server):
 * byte-identical to a local extraction, a worker killed between a shard's rows and its index leaves nothing read
 * as complete, and a missing bucket, denied access and an unreachable endpoint are each one clear error.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type cachedFeatures, hashFile } from '../../src/features/cache.js';
import { distributedFeatures } from '../../src/scale/extract.js';
import { S3FeatureStorage } from '../../src/scale/s3-storage.js';
import { queueStatus } from '../../src/scale/status.js';
import { openFeatureStorage } from '../../src/scale/storage.js';
import { startWorker } from '../../src/scale/worker.js';
import { CFG, localFeatures, makeImages, tinyModels } from '../features/helpers.js';
import { freePort, startRedis, type TestRedis } from '../redis.js';
import { type S3StandIn, startS3StandIn } from './s3-standin.js';

let redis: TestRedis;
let s3: S3StandIn;
let tmp: string;
let files: string[];
const { extractor } = tinyModels();
let reference: Awaited<ReturnType<typeof cachedFeatures>>;
const env = { AWS_ACCESS_KEY_ID: 'graft-test', AWS_SECRET_ACCESS_KEY: 'graft-test-secret', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };

before(async () => {
  Object.assign(process.env, env); // the standard credential chain, as on a real machine
  redis = await startRedis();
  s3 = await startS3StandIn(['feats', 'locked']);
  s3.denied.add('locked');
  tmp = await mkdtemp(path.join(tmpdir(), 'graft-s3-'));
  files = await makeImages(path.join(tmp, 'images'), 10);
  reference = await localFeatures(extractor, files, path.join(tmp, 'local'));
});
after(async () => {
  s3?.close();
  await redis?.stop();
  await rm(tmp, { recursive: true, force: true });
});

const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const shardObjects = (prefix: string) => s3.keys('feats', prefix).filter((k) => /\.(f32|jsonl)$/.test(k));

test('two workers (separate machines: own caches) fill an S3 store; the result is byte-identical to a local extraction', { timeout: 60_000 }, async () => {
  const url = `${redis.url}/1`;
  const workers = await Promise.all(
    ['a', 'b'].map((name) =>
      startWorker({ queue: url, name, threads: 1, store: 's3://feats/run1', s3Endpoint: s3.endpoint, cacheDir: path.join(tmp, `machine-${name}`) }),
    ),
  );
  try {
    const opts = {
      queue: url,
      model: extractor,
      preprocess: CFG,
      items: files.map((p) => ({ path: p })),
      batchSize: 2,
      storage: 's3://feats/run1',
      s3Endpoint: s3.endpoint,
      cacheDir: path.join(tmp, 'coordinator'),
    };
    const r = await distributedFeatures({ ...opts, shardSize: 3 });
    assert.equal(r.hits, files.length, 'every row was computed by the workers and read back from S3');
    assert.deepEqual(bytes(r.features), bytes(reference.features));
    assert.deepEqual(Array.from(r.indices), Array.from(reference.indices));
    assert.deepEqual(r.keys, reference.keys);
    assert.ok(r.store.startsWith(path.join(tmp, 'coordinator', 's3')), `the rows are in the coordinator's local mirror (${r.store})`);
    const shards = shardObjects('run1/features/');
    const indexes = shards.filter((k) => k.endsWith('.jsonl'));
    assert.ok(indexes.length >= 1 && indexes.length <= 4, `one shard object pair per shard job that computed rows (${indexes.length})`);
    for (const i of indexes) assert.ok(shards.includes(i.replace(/\.jsonl$/, '.f32')), `${i} has its rows`);
    assert.ok(s3.keys('feats', 'run1/features/').some((k) => k.endsWith('/extractor.onnx')));
    assert.equal((await queueStatus(url)).failed, 0);

    // again, cut differently: every row is found in S3, nothing is computed or uploaded twice
    const again = await distributedFeatures({ ...opts, shardSize: 4 });
    assert.deepEqual(bytes(again.features), bytes(reference.features));
    assert.deepEqual(shardObjects('run1/features/'), shards);
  } finally {
    await Promise.all(workers.map((w) => w.close()));
  }
});

test('a worker killed -9 between a shard’s rows and its index leaves no shard read as complete; the retry gives the same bytes', {
  timeout: 60_000,
}, async () => {
  const url = `${redis.url}/2`;
  const script = fileURLToPath(new URL('./child-worker.ts', import.meta.url));
  s3.hold = (key) => key.startsWith('run2/') && key.endsWith('.jsonl');
  const held = new Promise<void>((resolve) => s3.events.once('held', () => resolve()));
  const child = spawn(process.execPath, ['--import', 'tsx', script, url, '1000', '0', s3.endpoint], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...env, GRAFT_CACHE_DIR: path.join(tmp, 'machine-killed') },
  });
  const exited = new Promise((r) => child.once('exit', r));
  let survivor: Awaited<ReturnType<typeof startWorker>> | undefined;
  const startSurvivor = () =>
    startWorker({
      queue: url,
      name: 'survivor',
      threads: 1,
      lockDuration: 1000,
      stalledInterval: 300,
      s3Endpoint: s3.endpoint,
      cacheDir: path.join(tmp, 'machine-survivor'),
    });
  let run: Promise<unknown> | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d) => (out += d).includes('ready') && resolve());
      child.once('exit', (code) => reject(new Error(`child worker exited (${code}) before it was ready: ${out}`)));
    });
    const extraction = distributedFeatures({
      queue: url,
      model: extractor,
      preprocess: CFG,
      items: files.map((p) => ({ path: p })),
      shardSize: 10,
      batchSize: 2,
      storage: 's3://feats/run2',
      s3Endpoint: s3.endpoint,
      cacheDir: path.join(tmp, 'coordinator-2'),
    });
    run = extraction.catch(() => {});
    await held; // the shard's rows are uploaded, its index is on the wire
    child.kill('SIGKILL');
    await exited;
    const left = shardObjects('run2/features/');
    assert.ok(
      left.some((k) => k.endsWith('.f32')),
      'the rows object of the killed upload is there',
    );
    assert.ok(!left.some((k) => k.endsWith('.jsonl')), 'its index is not');
    // another machine sees no row of it
    const fresh = new S3FeatureStorage({ url: 's3://feats/run2', endpoint: s3.endpoint, cacheDir: path.join(tmp, 'observer') });
    const store = left[0]!.split('/')[2]!;
    const hashes = await Promise.all(files.map(hashFile));
    assert.deepEqual(await fresh.missing(store, hashes), hashes, 'an orphan rows object is never read as a complete shard');

    s3.hold = undefined;
    survivor = await startSurvivor();
    const r = await extraction;
    assert.deepEqual(bytes(r.features), bytes(reference.features));
    assert.deepEqual(Array.from(r.indices), Array.from(reference.indices));
    assert.equal(r.hits, files.length);
    assert.deepEqual(await fresh.missing(store, hashes), [], 'the retried shard is complete in S3');
    const st = await queueStatus(url);
    assert.ok(st.retried >= 1, `the killed worker's shard was taken back (retried: ${st.retried})`);
    assert.equal(st.failed, 0);
  } finally {
    s3.hold = undefined;
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    survivor ??= await startSurvivor(); // a failed assertion must not leave the extraction waiting forever
    await run;
    await survivor.close();
  }
});

test('S3FeatureStorage.features on one machine uploads its new rows; another machine reads them all as hits', async () => {
  const items = files.map((p) => ({ path: p }));
  const one = new S3FeatureStorage({ url: 's3://feats/solo', endpoint: s3.endpoint, cacheDir: path.join(tmp, 'solo-1') });
  const a = await one.features({ model: extractor, preprocess: CFG, items, batchSize: 4, threads: 1 });
  assert.equal(a.hits, 0);
  assert.deepEqual(bytes(a.features), bytes(reference.features));
  const two = new S3FeatureStorage({ url: 's3://feats/solo', endpoint: s3.endpoint, cacheDir: path.join(tmp, 'solo-2') });
  // scratch left by a process of this host killed mid-shard is removed; another host's (a shared cache folder) is not
  const host = hostname().replace(/[^A-Za-z0-9-]/g, '_');
  const dead = path.join(two.mirror, '.scratch', `${host}.${spawnSync('true').pid}.abc`);
  const other = path.join(two.mirror, '.scratch', `not-${host}.${spawnSync('true').pid}.abc`);
  for (const d of [dead, other]) mkdirSync(d, { recursive: true });
  const b = await two.features({ model: extractor, preprocess: CFG, items, batchSize: 4, threads: 1 });
  assert.equal(b.hits, files.length, 'every row came from the bucket');
  assert.deepEqual(bytes(b.features), bytes(reference.features));
  assert.ok(!existsSync(dead) && existsSync(other), 'only the dead local process’s scratch was removed');
  assert.equal(shardObjects('solo/features/').length, 2, 'one shard (rows and index); the second machine uploaded nothing');
});

test('a missing bucket, denied access and an unreachable endpoint are each one clear error, before any job is queued', { timeout: 30_000 }, async () => {
  const url = `${redis.url}/3`;
  const extract = (storage: string, s3Endpoint: string) =>
    distributedFeatures({
      queue: url,
      model: extractor,
      preprocess: CFG,
      items: files.map((p) => ({ path: p })),
      storage,
      s3Endpoint,
      cacheDir: path.join(tmp, 'err'),
    });
  await assert.rejects(extract('s3://nope/x', s3.endpoint), /S3 bucket "nope" does not exist at http:\/\/127\.0\.0\.1:\d+ .*Create it .*or fix --store/);
  await assert.rejects(
    extract('s3://locked/x', s3.endpoint),
    /S3 access denied to s3:\/\/locked .*AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE/,
  );
  const dead = `http://127.0.0.1:${await freePort()}`;
  await assert.rejects(
    extract('s3://feats/x', dead),
    /cannot reach the S3 endpoint http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\).*fix --s3-endpoint \/ AWS_ENDPOINT_URL_S3/,
  );
  const st = await queueStatus(url);
  assert.equal(st.waiting + st.waitingChildren + st.completed + st.failed, 0, 'nothing was queued');
  // a worker checks its --store at start
  await assert.rejects(startWorker({ queue: url, store: 's3://nope', s3Endpoint: s3.endpoint }), /S3 bucket "nope" does not exist/);
  await assert.rejects(startWorker({ queue: url, store: 's3://locked', s3Endpoint: s3.endpoint }), /S3 access denied/);
  // and a job that names a storage it cannot reach fails with the same message (the store's objects included)
  const storage = new S3FeatureStorage({ url: 's3://locked/p', endpoint: s3.endpoint });
  await assert.rejects(storage.getObject('a'.repeat(64), 'extractor.onnx'), /S3 access denied to s3:\/\/locked\/p\/features\/a{64}\/extractor\.onnx/);
  // bad --store values
  await assert.rejects(openFeatureStorage('s3://Bad_Bucket/x'), /"Bad_Bucket" in s3:\/\/Bad_Bucket\/x is not an S3 bucket name/);
  await assert.rejects(openFeatureStorage('s3://feats/a/../b'), /has an empty, "\." or "\.\." part/);
  await assert.rejects(openFeatureStorage('gs://feats/x'), /gs:\/\/ is not supported/);
  await assert.rejects(openFeatureStorage('/mnt/shared', { s3Endpoint: s3.endpoint }), /--s3-endpoint .* but --store is not an s3:\/\/ URL/);
  await assert.rejects(openFeatureStorage('s3://feats', { s3Endpoint: 'localhost:9000' }), /is not an http\(s\) URL/);
});
