import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { decodeBatch, ImageDecodeError } from '../../src/data/image.js';
import { parsePreprocessConfig } from '../../src/data/preprocess.js';
import { extractFeatures } from '../../src/features/extract.js';
import { Graph } from '../../src/ir/graph.js';
import { Model } from '../../src/ir/model.js';
import { extractSubgraph, findCut } from '../../src/ir/surgery.js';
import { resnet18 } from '../../src/nn/index.js';
import { Tensor } from '../../src/tensor.js';
import { CFG, countingDecoder, directFeatures, makeImages, maxDiff, tinyModels } from './helpers.js';

const tmp = await mkdtemp(join(tmpdir(), 'graft-fx-'));
after(() => rm(tmp, { recursive: true, force: true }));
const files = await makeImages(join(tmp, 'imgs'), 11);
const { extractor } = tinyModels();

test('features equal one direct session.run on the same preprocessed input (partial last batch)', async () => {
  const want = await directFeatures(extractor, files);
  const progress: number[][] = [];
  const r = await extractFeatures({
    model: extractor,
    preprocess: CFG,
    items: files.map((path) => ({ path })),
    batchSize: 4,
    onProgress: (done, total, ips) => progress.push([done, total, ips]),
  });
  assert.equal(r.dims, 8 * 8);
  assert.equal(r.features.length, files.length * r.dims);
  assert.deepEqual(
    [...r.indices],
    files.map((_, i) => i),
  );
  assert.deepEqual(r.failed, []);
  assert.ok(maxDiff(r.features, want) <= 1e-6, `max diff ${maxDiff(r.features, want)}`);
  // the rows are image-specific (a permutation would be caught)
  assert.ok(maxDiff(r.features.subarray(0, r.dims), r.features.subarray(r.dims, 2 * r.dims)) > 1e-3);
  assert.deepEqual(
    progress.map((p) => p.slice(0, 2)),
    [
      [4, 11],
      [8, 11],
      [11, 11],
    ],
  );
  assert.ok(progress.every((p) => p[2]! > 0 && Number.isFinite(p[2])));
});

test('a single batch larger than the data, and decode concurrency 1, give the same rows', async () => {
  const want = await directFeatures(extractor, files);
  const r = await extractFeatures({ model: extractor, preprocess: CFG, items: files.map((path) => ({ path })), batchSize: 64, concurrency: 1 });
  assert.ok(maxDiff(r.features, want) <= 1e-6);
});

test('a model with a fixed batch size is fed padded batches; only real rows come back', async () => {
  const full = resnet18({ classes: 10, width: 8 }).build({ inputShape: [4, 3, 32, 32], seed: 1 });
  const fixed = extractSubgraph(full, findCut(full).value);
  const want = await directFeatures(extractor, files.slice(0, 6));
  const r = await extractFeatures({ model: fixed, preprocess: CFG, items: files.slice(0, 6).map((path) => ({ path })), batchSize: 32 });
  assert.equal(r.features.length, 6 * r.dims);
  assert.ok(maxDiff(r.features, want) <= 1e-6);
});

test('a corrupt image is skipped with a warning naming it; strict makes it an error', async () => {
  const bad = join(tmp, 'corrupt.jpg');
  await writeFile(bad, Buffer.from('\xff\xd8\xff\xe0 definitely not a jpeg', 'latin1'));
  const list = [files[0]!, bad, files[1]!, files[2]!];
  const warnings: string[] = [];
  const { decoder, calls } = countingDecoder();
  const r = await extractFeatures({
    model: extractor,
    preprocess: CFG,
    items: list.map((path) => ({ path })),
    batchSize: 2,
    onWarning: (m) => warnings.push(m),
    decoder,
  });
  assert.equal(calls.length, 4);
  assert.equal(r.failed.length, 1);
  assert.equal(r.failed[0]!.path, bad);
  assert.equal(r.failed[0]!.index, 1);
  assert.ok(r.failed[0]!.error instanceof ImageDecodeError);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /corrupt\.jpg/);
  assert.deepEqual([...r.indices], [0, 2, 3]);
  const want = await directFeatures(extractor, [files[0]!, files[1]!, files[2]!]);
  assert.ok(maxDiff(r.features, want) <= 1e-6);

  await assert.rejects(
    extractFeatures({ model: extractor, preprocess: CFG, items: list.map((path) => ({ path })), batchSize: 2, strict: true }),
    (e: Error) => e instanceof ImageDecodeError && e.message.includes(bad) && /Re-encode or remove/.test(e.message),
  );
});

test('all images failing gives an empty result, not a crash', async () => {
  const bad = join(tmp, 'empty.png');
  await writeFile(bad, '');
  const r = await extractFeatures({ model: extractor, preprocess: CFG, items: [{ path: bad }, { path: join(tmp, 'missing.jpg') }], onWarning: () => {} });
  assert.equal(r.features.length, 0);
  assert.equal(r.indices.length, 0);
  assert.deepEqual(
    r.failed.map((f) => f.index),
    [0, 1],
  );
});

test('a preprocessing config that does not fit the model input is rejected before decoding', async () => {
  const { decoder, calls } = countingDecoder();
  await assert.rejects(
    extractFeatures({ model: extractor, preprocess: parsePreprocessConfig({ size: 48 }), items: [{ path: files[0]! }], decoder }),
    /has shape \[N, 3, 32, 32\] but the preprocessing config produces \[N, 3, 48, 48\]/,
  );
  await assert.rejects(extractFeatures({ model: tinyModels().full.clone(), preprocess: CFG, items: [], batchSize: 0 }), /batchSize must be a positive integer/);
  assert.equal(calls.length, 0);
});

/** input [N,3,32,32] -> Reshape(shape) -> output, without shape inference (so bad shapes reach onnxruntime). */
function reshapeModel(shape: number[], op = 'Reshape'): Model {
  const g = new Graph();
  g.inputs.push({ name: 'x', dtype: 'float32', shape: ['N', 3, 32, 32] });
  g.initializers.set('shape', Tensor.i64([shape.length], shape));
  g.addNode(op, ['x', 'shape'], ['y']);
  g.outputs.push({ name: 'y', dtype: 'float32' });
  return new Model(g);
}

test('onnxruntime load and run failures say which model or batch failed', async () => {
  const items = files.slice(0, 4).map((path) => ({ path }));
  await assert.rejects(extractFeatures({ model: reshapeModel([4, -1], 'NoSuchOp'), preprocess: CFG, items }), (e: Error) => {
    assert.match(e.message, /^onnxruntime could not load the feature extractor: .*NoSuchOp/);
    return true;
  });
  await assert.rejects(
    extractFeatures({ model: reshapeModel([7, -1]), preprocess: CFG, items, batchSize: 4 }),
    /onnxruntime failed on batch 1\/1 \(items 0–3, first file .*img0\.jpg\)/,
  );
  await assert.rejects(
    extractFeatures({ model: reshapeModel([1, -1]), preprocess: CFG, items, batchSize: 4 }),
    /returned shape \[1, 12288\] for a batch of 4; a feature extractor must return one row per image/,
  );
  // a whole-batch flatten is fine when it keeps one row per image
  const r = await extractFeatures({ model: reshapeModel([0, -1]), preprocess: CFG, items, batchSize: 3 });
  assert.equal(r.dims, 3 * 32 * 32);
  const { data } = await decodeBatch(
    items.map((i) => i.path),
    CFG,
  );
  assert.deepEqual(r.features, data);
});
