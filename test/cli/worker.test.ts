/**
 * `graft worker` and `graft queue status` as a user runs them, against a real redis-server: the worker process
 * fills the store for a distributed extraction, `queue status` counts the jobs and the worker, and SIGTERM stops
 * the worker cleanly.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { cachedFeatures } from '../../src/features/cache.js';
import { distributedFeatures } from '../../src/scale/extract.js';
import { GRAFT_BIN, runGraft } from '../cli-run.js';
import { CFG, makeImages, tinyModels } from '../features/helpers.js';
import { startRedis, type TestRedis } from '../redis.js';

let redis: TestRedis;
let tmp: string;

before(async () => {
  redis = await startRedis();
  tmp = await mkdtemp(path.join(tmpdir(), 'graft-worker-cli-'));
});
after(async () => {
  await redis?.stop();
  await rm(tmp, { recursive: true, force: true });
});

test('graft worker extracts shards, graft queue status counts them, SIGTERM stops the worker', { timeout: 90_000 }, async () => {
  const files = await makeImages(path.join(tmp, 'images'), 5);
  const { extractor } = tinyModels();
  const env = { ...process.env, GRAFT_FROM_SOURCE: '1', GRAFT_DEBUG: '', NODE_OPTIONS: '' };
  const w = spawn(process.execPath, [GRAFT_BIN, 'worker', '--queue', redis.url, '--name', 'cli-worker', '--threads', '1'], { cwd: tmp, env });
  let err = '';
  w.stderr.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => w.once('exit', (code) => r(code)));
  try {
    const t0 = Date.now();
    while (!err.includes('waiting for jobs')) {
      assert.ok(w.exitCode === null, `the worker exited early: ${err}`);
      assert.ok(Date.now() - t0 < 60_000, `the worker did not start: ${err}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const items = files.map((p) => ({ path: p }));
    const r = await distributedFeatures({ queue: redis.url, model: extractor, preprocess: CFG, items, shardSize: 2, cacheDir: path.join(tmp, 'shared') });
    const local = await cachedFeatures({ model: extractor, preprocess: CFG, items, cacheDir: path.join(tmp, 'local'), threads: 1 });
    assert.deepEqual(Buffer.from(r.features.buffer), Buffer.from(local.features.buffer));
    assert.equal(r.hits, files.length);
    const st = await runGraft(['queue', 'status', '--queue', redis.url, '--json'], tmp);
    assert.equal(st.code, 0, st.stderr);
    const s = JSON.parse(st.stdout);
    assert.equal(s.completed, 4, 'three shards and the parent');
    assert.equal(s.failed, 0);
    assert.deepEqual(s.workers, ['cli-worker']);
    w.kill('SIGTERM');
    assert.equal(await exited, 0, err);
    assert.match(err, /shard \S+ done \(2 files\)/);
    const bad = await runGraft(['queue', 'status', '--queue', 'http://x'], tmp);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /redis:\/\/host:port/);
  } finally {
    if (w.exitCode === null) w.kill('SIGKILL');
  }
});

test('graft extract --queue writes the same bytes as graft extract on one machine', { timeout: 120_000 }, async () => {
  const { saveModel } = await import('../../src/onnx/io.js');
  const dir = path.join(tmp, 'extract');
  await makeImages(path.join(dir, 'data', 'cats'), 3, 11);
  await makeImages(path.join(dir, 'data', 'dogs'), 3, 12);
  saveModel(tinyModels().full, path.join(dir, 'backbone.onnx'));
  const { writeFile } = await import('node:fs/promises');
  await writeFile(path.join(dir, 'backbone.json'), JSON.stringify({ preprocess: CFG }));
  const url = `${redis.url}/3`;
  const env = { ...process.env, GRAFT_FROM_SOURCE: '1', GRAFT_DEBUG: '', NODE_OPTIONS: '' };
  const w = spawn(process.execPath, [GRAFT_BIN, 'worker', '--queue', url, '--threads', '1'], { cwd: dir, env });
  let err = '';
  w.stderr.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => w.once('exit', (code) => r(code)));
  try {
    const base = ['extract', '--data', 'data', '--backbone', 'backbone.onnx', '--threads', '1', '--quiet'];
    const local = await runGraft([...base, '--out', 'local', '--cache-dir', 'cache-local'], dir);
    assert.equal(local.code, 0, local.stderr);
    const dist = await runGraft([...base, '--out', 'dist', '--cache-dir', path.join(dir, 'cache-shared'), '--queue', url, '--shard-size', '2'], dir);
    assert.equal(dist.code, 0, dist.stderr);
    const { readFile } = await import('node:fs/promises');
    const a = await readFile(path.join(dir, 'local', 'features.f32'));
    assert.equal(a.length, 6 * 4 * JSON.parse(await readFile(path.join(dir, 'local', 'index.json'), 'utf8')).dims);
    assert.deepEqual(await readFile(path.join(dir, 'dist', 'features.f32')), a);
    assert.deepEqual(await readFile(path.join(dir, 'dist', 'index.json'), 'utf8'), await readFile(path.join(dir, 'local', 'index.json'), 'utf8'));
    assert.match(err, /shard \S+ done \(2 files\)/, 'the worker computed the shards');
    w.kill('SIGTERM');
    assert.equal(await exited, 0, err);
  } finally {
    if (w.exitCode === null) w.kill('SIGKILL');
  }
});

test('graft extract --queue --store s3://… through graft worker --store s3://… writes the same bytes; a missing bucket stops the worker at start', {
  timeout: 120_000,
}, async () => {
  const { startS3StandIn } = await import('../scale/s3-standin.js');
  const { saveModel } = await import('../../src/onnx/io.js');
  const { readFile, writeFile } = await import('node:fs/promises');
  const s3 = await startS3StandIn(['feats']);
  const dir = path.join(tmp, 'extract-s3');
  await makeImages(path.join(dir, 'data', 'cats'), 3, 11);
  await makeImages(path.join(dir, 'data', 'dogs'), 3, 12);
  saveModel(tinyModels().full, path.join(dir, 'backbone.onnx'));
  await writeFile(path.join(dir, 'backbone.json'), JSON.stringify({ preprocess: CFG }));
  const url = `${redis.url}/4`;
  const creds = { AWS_ACCESS_KEY_ID: 'k', AWS_SECRET_ACCESS_KEY: 's', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
  const env = { ...process.env, ...creds, GRAFT_FROM_SOURCE: '1', GRAFT_DEBUG: '', NODE_OPTIONS: '', GRAFT_CACHE_DIR: path.join(dir, 'worker-cache') };
  const store = ['--store', 's3://feats/cli', '--s3-endpoint', s3.endpoint];
  const w = spawn(process.execPath, [GRAFT_BIN, 'worker', '--queue', url, '--threads', '1', ...store], { cwd: dir, env });
  let err = '';
  w.stderr.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => w.once('exit', (code) => r(code)));
  try {
    const base = ['extract', '--data', 'data', '--backbone', 'backbone.onnx', '--threads', '1', '--quiet'];
    const local = await runGraft([...base, '--out', 'local', '--cache-dir', 'cache-local'], dir);
    assert.equal(local.code, 0, local.stderr);
    const dist = await runGraft([...base, '--out', 'dist', '--cache-dir', 'cache-coordinator', '--queue', url, '--shard-size', '2', ...store], dir, creds);
    assert.equal(dist.code, 0, dist.stderr);
    assert.deepEqual(await readFile(path.join(dir, 'dist', 'features.f32')), await readFile(path.join(dir, 'local', 'features.f32')));
    assert.deepEqual(await readFile(path.join(dir, 'dist', 'index.json'), 'utf8'), await readFile(path.join(dir, 'local', 'index.json'), 'utf8'));
    assert.match(err, /shard \S+ done \(2 files\)/, 'the worker computed the shards');
    assert.ok(
      s3.keys('feats', 'cli/features/').some((k) => k.endsWith('.jsonl')),
      'into the bucket',
    );
    w.kill('SIGTERM');
    assert.equal(await exited, 0, err);
    const bad = await runGraft(['worker', '--queue', url, '--store', 's3://nope/x', '--s3-endpoint', s3.endpoint], dir, creds);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /S3 bucket "nope" does not exist at http:\/\/127\.0\.0\.1:\d+/);
  } finally {
    if (w.exitCode === null) w.kill('SIGKILL');
    s3.close();
  }
});
