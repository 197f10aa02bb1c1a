/**
 * Text on the feature path (src/features/text.ts): embeddings come back in text order, go into the feature store
 * keyed by encoder + tokenizer + text hash, and a second call (or one with more texts) embeds only what the
 * store lacks; `sourceFeatures` sends a TextSource there; a TextSource fills int64 token-id batches and refuses a float buffer.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { makeTokenizer } from '../../src/data/tokenize.js';
import { sourceFeatures } from '../../src/features/backbone.js';
import { TextSource, textFeatures } from '../../src/features/text.js';
import { wordVectorEncoder } from '../../src/models/text-encoders.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-textfeat-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const vocab = ['a', 'b', 'c'];
const encoder = wordVectorEncoder(Float32Array.from([1, 0, 0, 1, 1, 1]), 2, 'mean');
const tok = makeTokenizer({ kind: 'vocab-words', maxTokens: 8, vocab });
const want = (t: string): number[] => {
  const ids = tok.encode(t).filter((i) => i >= 2);
  const rows = [
    [1, 0],
    [0, 1],
    [1, 1],
  ];
  const s = [0, 0];
  for (const i of ids) for (let d = 0; d < 2; d++) s[d]! += rows[i - 2]![d]!;
  return s.map((v) => v / Math.max(1, ids.length));
};

test('embeddings in text order, stored; a second call embeds only the texts the store lacks', async () => {
  const cacheDir = path.join(tmp, 'c1');
  const texts = ['a b c', 'c', 'a a a a b', 'a b c', 'zzz'];
  const progress: number[] = [];
  const r1 = await textFeatures(encoder, texts, tok, { cacheDir, batchSize: 2, onTaskProgress: (p) => progress.push(p.total) });
  assert.equal(r1.dims, 2);
  assert.equal(r1.hits, 0);
  assert.deepEqual(
    Array.from(r1.features),
    texts.flatMap(want).map((v) => Math.fround(v)),
  );
  assert.equal(progress.at(-1), 4, 'the repeated text is embedded once');
  const more = [...texts, 'b b'];
  const seen: number[] = [];
  const r2 = await textFeatures(encoder, more, tok, { cacheDir, onTaskProgress: (p) => seen.push(p.total) });
  assert.deepEqual(seen, [1], 'only the new text is embedded');
  assert.deepEqual(
    Array.from(r2.features),
    more.flatMap(want).map((v) => Math.fround(v)),
  );
  // the same graph with other metadata (e.g. the head a run grafted after it) reads the same store
  const tagged = encoder.clone();
  tagged.metadata = { ...tagged.metadata, 'graft.head_params': '["head.0.weight"]' };
  const again: number[] = [];
  const r4 = await textFeatures(tagged, more, tok, { cacheDir, onTaskProgress: (p) => again.push(p.total) });
  assert.equal(r4.store, r2.store);
  assert.deepEqual(again, []);
  assert.equal(r4.hits, more.length);
  // another tokenizer (here: fewer tokens per text) is another store
  const short = makeTokenizer({ kind: 'vocab-words', maxTokens: 1, vocab });
  const r3 = await textFeatures(encoder, ['a b'], short, { cacheDir });
  assert.notEqual(r3.store, r1.store);
  assert.deepEqual(Array.from(r3.features), [1, 0]);
});

test('sourceFeatures turns a TextSource into an in-memory source of embeddings with its labels', async () => {
  const src = new TextSource(['a', 'b', 'c c'], Int32Array.from([1, 0, 1]), tok.spec, 2);
  const { source, stored } = await sourceFeatures(encoder, src, { cacheDir: path.join(tmp, 'c2') });
  assert.deepEqual(Array.from(source.x), [1, 0, 0, 1, 1, 1]);
  assert.deepEqual(Array.from(source.y), [1, 0, 1]);
  assert.deepEqual(source.sampleShape, [2]);
  assert.equal(stored?.keys.length, 3);
  assert.throws(() => src.fill([0], new Float32Array(1), new BigInt64Array(1)), /texts fill int64 token-id batches.*sampleDtype \(int64\)/);
  assert.throws(() => new TextSource(['a'], Int32Array.from([0, 1]), tok), /1 texts but 2 labels/);
});
