import assert from 'node:assert/strict';
import fs from 'node:fs';
import { copyFile, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parsePreprocessConfig } from '../../src/data/preprocess.js';
import { type CachedOptions, cachedFeatures, canonicalJson, featureCacheDir } from '../../src/features/cache.js';
import { FeatureStore } from '../../src/features/store.js';
import { extractSubgraph } from '../../src/ir/surgery.js';
import { Tensor } from '../../src/tensor.js';
import { CFG, countingDecoder, directFeatures, makeImages, maxDiff, tinyModels } from './helpers.js';

const tmp = await mkdtemp(join(tmpdir(), 'graft-cache-'));
after(() => rm(tmp, { recursive: true, force: true }));
const { full, extractor } = tinyModels();
const files = await makeImages(join(tmp, 'imgs'), 9);
const want = await directFeatures(extractor, files);
let cacheN = 0;

/** Runs cachedFeatures with a counting decoder on a given cache dir. */
async function run(cacheDir: string, paths: string[], extra: Partial<CachedOptions> = {}) {
  const { decoder, calls } = countingDecoder();
  const warnings: string[] = [];
  const r = await cachedFeatures({
    model: extractor,
    preprocess: CFG,
    items: paths.map((path) => ({ path })),
    batchSize: 4,
    cacheDir,
    decoder,
    onWarning: (m) => warnings.push(m),
    ...extra,
  });
  return { r, decodes: calls.length, warnings };
}
const freshCache = () => join(tmp, `cache${cacheN++}`);
const shards = (store: string, ext: string) =>
  fs
    .readdirSync(store)
    .filter((f) => f.endsWith(ext))
    .map((f) => join(store, f));

test('the second call is served from the cache with zero decodes and identical rows', async () => {
  const dir = freshCache();
  const a = await run(dir, files);
  assert.equal(a.decodes, files.length);
  assert.deepEqual([a.r.hits, a.r.misses], [0, files.length]);
  assert.ok(maxDiff(a.r.features, want) <= 1e-6);
  assert.ok(a.r.store.startsWith(join(dir, 'features')));
  const b = await run(dir, files);
  assert.equal(b.decodes, 0);
  assert.deepEqual([b.r.hits, b.r.misses], [files.length, 0]);
  assert.deepEqual(b.r.features, a.r.features);
  assert.deepEqual([...b.r.indices], [...a.r.indices]);
  // a subset in another order reads the right rows
  const c = await run(dir, [files[5]!, files[2]!, files[5]!]);
  assert.equal(c.decodes, 0);
  const d = a.r.dims;
  assert.deepEqual(
    c.r.features,
    Float32Array.from([...a.r.features.subarray(5 * d, 6 * d), ...a.r.features.subarray(2 * d, 3 * d), ...a.r.features.subarray(5 * d, 6 * d)]),
  );
  assert.equal(b.warnings.length, 0);
});

test('renamed or moved files still hit (content hash); duplicate contents decode once', async () => {
  const dir = freshCache();
  const copies = join(tmp, 'copies');
  await mkdir(join(copies, 'sub'), { recursive: true });
  const list = files.slice(0, 4).map((_, i) => join(copies, i % 2 ? `sub/moved${i}.bin` : `renamed${i}.jpeg`));
  await Promise.all(files.slice(0, 4).map((f, i) => copyFile(f, list[i]!)));
  const a = await run(dir, files.slice(0, 4));
  assert.equal(a.decodes, 4);
  await rename(list[0]!, `${list[0]}.again`);
  list[0] = `${list[0]}.again`;
  const b = await run(dir, list);
  assert.equal(b.decodes, 0);
  assert.equal(b.r.hits, 4);
  assert.deepEqual(b.r.features, a.r.features);
  const dup = await run(freshCache(), [files[0]!, list[0]!, files[1]!]);
  assert.equal(dup.decodes, 2);
  assert.deepEqual(dup.r.features.subarray(0, a.r.dims), dup.r.features.subarray(a.r.dims, 2 * a.r.dims));
});

test('changing the preprocessing or the cut selects another store (misses)', async () => {
  const dir = freshCache();
  await run(dir, files.slice(0, 3));
  const prep = await run(dir, files.slice(0, 3), { preprocess: parsePreprocessConfig({ size: 32, resize: 'stretch' }) });
  assert.equal(prep.decodes, 3);
  assert.equal(prep.r.hits, 0);
  // the same config written differently (key order, defaults spelled out) is the same store
  const same = await run(dir, files.slice(0, 3), { preprocess: { std: [0.229, 0.224, 0.225], mean: [0.485, 0.456, 0.406], size: [32, 32], layout: 'NCHW' } });
  assert.equal(same.decodes, 0);
  // cut one value earlier: the output of the average pool before Flatten
  const producers = full.graph.producers();
  const flatten = producers.get(extractor.graph.outputs[0]!.name)!;
  const earlier = extractSubgraph(full, flatten.inputs[0]!);
  const cut = await run(dir, files.slice(0, 3), { model: earlier });
  assert.equal(cut.decodes, 3);
  assert.equal(cut.r.hits, 0);
  assert.ok(maxDiff(cut.r.features, want.subarray(0, 3 * 64)) <= 1e-6, 'same numbers, different store');
  assert.equal(fs.readdirSync(join(dir, 'features')).length, 3);
  assert.equal(canonicalJson({ b: 1, a: { d: [1, { z: 0, y: 1 }], c: 2 } }), '{"a":{"c":2,"d":[1,{"y":1,"z":0}]},"b":1}');
});

test("the model's metadata (the head a run grafted, its parameter names) does not split the store; its weights do", async () => {
  const dir = freshCache();
  await run(dir, files.slice(0, 3));
  const relabelled = extractor.clone();
  relabelled.metadata = { ...relabelled.metadata, 'graft.head_params': '["head.fc.weight"]', 'graft.cut': 'x' };
  const same = await run(dir, files.slice(0, 3), { model: relabelled });
  assert.equal(same.decodes, 0, 'metadata only: all hits');
  assert.equal(same.r.hits, 3);
  const changed = extractor.clone();
  const [name, w] = [...changed.graph.initializers.entries()][0]!;
  const data = Float32Array.from(w.data as Float32Array, (v) => v + 1);
  changed.graph.initializers.set(name, new Tensor(w.dtype, w.dims, data));
  const other = await run(dir, files.slice(0, 3), { model: changed });
  assert.equal(other.decodes, 3, 'new weights: another store');
});

test('corrupt and missing files are skipped with a warning and not cached; strict throws', async () => {
  const dir = freshCache();
  const bad = join(tmp, 'bad.png');
  await writeFile(bad, 'not a png at all');
  const missing = join(tmp, 'nope.jpg');
  const a = await run(dir, [files[0]!, bad, missing, files[1]!]);
  assert.deepEqual(
    a.r.failed.map((f) => [f.index, f.path]),
    [
      [1, bad],
      [2, missing],
    ],
  );
  assert.deepEqual([...a.r.indices], [0, 3]);
  assert.ok(a.warnings.some((w) => w.includes(bad)) && a.warnings.some((w) => w.includes(missing)));
  assert.ok(maxDiff(a.r.features, [...want.subarray(0, 64), ...want.subarray(64, 128)]) <= 1e-6);
  const b = await run(dir, [files[0]!, bad, files[1]!]);
  assert.deepEqual([b.decodes, b.r.hits], [1, 2]);
  await assert.rejects(run(dir, [files[0]!, bad], { strict: true }), (e: Error) => e.message.includes(bad));
  await assert.rejects(run(dir, [missing], { strict: true }), (e: Error) => e.message.includes(missing) && /ENOENT/.test(e.message));
});

test('an index truncated mid-line (a crash) loses only the torn entry, never returns wrong rows', async () => {
  const dir = freshCache();
  const a = await run(dir, files);
  const store = a.r.store;
  const [index] = shards(store, '.jsonl');
  const text = fs.readFileSync(index!, 'utf8');
  fs.writeFileSync(index!, text.slice(0, text.length - 12)); // cut inside the last line
  const b = await run(dir, files);
  assert.equal(b.decodes, 1);
  assert.deepEqual([b.r.hits, b.r.misses], [files.length - 1, 1]);
  // a torn last line is what a concurrent writer mid-append looks like too: dropped silently
  assert.deepEqual(b.warnings, []);
  assert.deepEqual(b.r.features, a.r.features);
  // the recomputed row went into a new shard; the next run is all hits again
  const c = await run(dir, files);
  assert.equal(c.decodes, 0);
  assert.deepEqual(c.r.features, a.r.features);
});

test('rows without index lines, index lines past the data, or garbage are ignored', async () => {
  const dir = freshCache();
  const a = await run(dir, files.slice(0, 4));
  const [index] = shards(a.r.store, '.jsonl');
  const [data] = shards(a.r.store, '.f32');
  const d = a.r.dims;
  // crash after the data append, before the index: extra rows nobody names
  fs.appendFileSync(data!, Buffer.alloc(3 * d * 4, 0x41));
  // a line pointing past the end of the data, a garbage line, a zero-filled tail
  const fake = 'f'.repeat(64);
  fs.appendFileSync(index!, `{"h":"${fake}","r":99}\nnot json\n\0\0\0\0\n`);
  const store = FeatureStore.open(a.r.store);
  assert.equal(store.size, 4);
  assert.equal(store.has(fake), false);
  const b = await run(dir, files.slice(0, 4));
  assert.equal(b.decodes, 0);
  assert.deepEqual(b.r.features, a.r.features);
  // the data file cut short: rows beyond its end become misses
  fs.truncateSync(data!, 2 * d * 4 + 5);
  const c = await run(dir, files.slice(0, 4));
  assert.equal(c.decodes, 2);
  assert.ok(
    c.warnings.some((w) => /damaged line/.test(w)),
    c.warnings.join('\n'),
  );
  assert.ok(maxDiff(c.r.features, a.r.features) <= 1e-6);
});

test('two runs sharing a cache at once both succeed; a third is all hits', async () => {
  const dir = freshCache();
  const [a, b] = await Promise.all([run(dir, files.slice(0, 6)), run(dir, files.slice(3))]);
  assert.ok(maxDiff(a.r.features, want.subarray(0, 6 * 64)) <= 1e-6);
  assert.ok(maxDiff(b.r.features, want.subarray(3 * 64)) <= 1e-6);
  const c = await run(dir, files);
  assert.equal(c.decodes, 0);
  assert.ok(maxDiff(c.r.features, want) <= 1e-6);
  assert.equal(shards(a.r.store, '.jsonl').length, 2);
});

test('GRAFT_CACHE_DIR sets the default cache root', async () => {
  const root = join(tmp, 'env-root');
  const old = process.env.GRAFT_CACHE_DIR;
  process.env.GRAFT_CACHE_DIR = root;
  try {
    assert.equal(featureCacheDir(), join(root, 'features'));
    const { r } = await run(undefined as unknown as string, files.slice(0, 1), { cacheDir: undefined });
    assert.ok(r.store.startsWith(join(root, 'features')));
    assert.ok(fs.existsSync(join(r.store, 'meta.json')));
  } finally {
    if (old === undefined) delete process.env.GRAFT_CACHE_DIR;
    else process.env.GRAFT_CACHE_DIR = old;
  }
  assert.equal(featureCacheDir('/x/y'), '/x/y/features');
});

test('two processes filling the same cache at once never see partial rows', async () => {
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const child = join(import.meta.dirname, 'child-cache.ts');
  const dir = freshCache();
  const spawn = (paths: string[]) =>
    promisify(execFile)(process.execPath, ['--import', 'tsx', child, dir, ...paths], { cwd: process.cwd() }).then(
      (o) => JSON.parse(o.stdout) as { hits: number; misses: number; features: number[] },
    );
  const [a, b] = await Promise.all([spawn(files), spawn([...files].reverse())]);
  assert.ok(maxDiff(a.features, want) <= 1e-6);
  const rev = files.map((_, i) => want.subarray((files.length - 1 - i) * 64, (files.length - i) * 64));
  assert.ok(maxDiff(b.features, Float32Array.from(rev.flatMap((r) => [...r]))) <= 1e-6);
  const c = await run(dir, files);
  assert.equal(c.decodes, 0, 'both processes wrote complete shards');
  assert.ok(maxDiff(c.r.features, want) <= 1e-6);
});
