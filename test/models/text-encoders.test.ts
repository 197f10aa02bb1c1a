/**
 * The word tokenizers (src/data/tokenize.ts) and the text encoder graphs (src/models/text-encoders.ts,
 * text-registry.ts), run in onnxruntime and compared with the same computation written out in JS: hashed
 * TF-IDF, mean- and SIF-pooled word vectors, and the GloVe encoder built from a word-vector file in wink's
 * format (a tiny fixture written here; the real package takes seconds to parse) and cached for the next run.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { fnv1a, makeTokenizer, readTokenizerFile, type TextTokenizer, wordTokens, writeTokenizerFile } from '../../src/data/tokenize.js';
import { fitIdf, SIF_A, tfidfEncoder, wordVectorEncoder } from '../../src/models/text-encoders.js';
import { readWordVectors, resolveTextEncoder, zipfFrequencies } from '../../src/models/text-registry.js';
import { encodeModel } from '../../src/onnx/io.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-textenc-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function embed(model: Parameters<typeof encodeModel>[0], tok: TextTokenizer, texts: string[]): Promise<{ data: Float32Array; dims: readonly number[] }> {
  const s = await ort.InferenceSession.create(encodeModel(model));
  const b = tok.encodeBatch(texts);
  const r = await s.run({ input_ids: new ort.Tensor('int64', b.ids, b.dims) });
  await s.release();
  return { data: r.embedding!.data as Float32Array, dims: r.embedding!.dims };
}

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-5): void {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= tol, `element ${i}: ${a[i]} vs ${b[i]}`);
}

test('the word rule: NFKC, lower case, runs of letters, digits and marks; at most maxTokens words', () => {
  assert.deepEqual(wordTokens("Hello, WORLD! It's 2024 — ﬁne café"), ['hello', 'world', 'it', 's', '2024', 'fine', 'café']);
  assert.deepEqual(wordTokens('a b c d', 2), ['a', 'b']);
  // FNV-1a 32-bit reference values
  assert.equal(fnv1a(''), 0x811c9dc5);
  assert.equal(fnv1a('a'), 0xe40c292c);
  assert.equal(fnv1a('foobar'), 0xbf9cf968);
});

test('tokenizers pad batches with 0 to the longest text; vocabulary words are 2 + index, unknown words 1', () => {
  const v = makeTokenizer({ kind: 'vocab-words', maxTokens: 3, vocab: ['the', 'cat'] });
  const b = v.encodeBatch(['The cat sat here', 'cat', '']);
  assert.deepEqual(b.dims, [3, 3]);
  assert.deepEqual(Array.from(b.ids, Number), [2, 3, 1, 3, 0, 0, 0, 0, 0]);
  const h = makeTokenizer({ kind: 'hashed-words', buckets: 16, maxTokens: 10 });
  assert.deepEqual(h.encode('Foobar foobar'), [1 + (0xbf9cf968 % 15), 1 + (0xbf9cf968 % 15)]);
  assert.deepEqual(h.encodeBatch(['', '']).dims, [2, 1]);
  assert.throws(() => makeTokenizer({ kind: 'hashed-words', buckets: 1, maxTokens: 4 }), /"buckets" must be an integer >= 2/);
  assert.throws(() => makeTokenizer({ kind: 'nope', maxTokens: 4 } as never, 'm.tokenizer.json'), /m\.tokenizer\.json: unknown tokenizer kind "nope"/);
});

test('the tokenizer file beside a model round-trips and a damaged one is an error naming it', () => {
  const model = path.join(tmp, 'm.onnx');
  const spec = { kind: 'vocab-words' as const, maxTokens: 5, vocab: ['a'] };
  writeTokenizerFile(model, spec);
  assert.deepEqual(readTokenizerFile(model), spec);
  assert.equal(readTokenizerFile(path.join(tmp, 'none.onnx')), undefined);
  fs.writeFileSync(path.join(tmp, 'bad.tokenizer.json'), '{"kind": "vocab-words", "maxTokens": 0, "vocab": []}');
  assert.throws(() => readTokenizerFile(path.join(tmp, 'bad.onnx')), /bad\.tokenizer\.json: "maxTokens" must be a positive integer/);
});

test('the TF-IDF graph gives L2-normalised log(1 + count) × smoothed IDF per hashed bucket, as computed in JS', async () => {
  const B = 32;
  const tok = makeTokenizer({ kind: 'hashed-words', buckets: B, maxTokens: 50 });
  const train = ['free money free', 'meeting at noon', 'money for the meeting', 'win win win free'];
  const idf = fitIdf(train, tok, B);
  const texts = ['free free money now', 'noon', ''];
  const got = await embed(tfidfEncoder(idf), tok, texts);
  assert.deepEqual(got.dims, [3, B]);
  const want = texts.flatMap((t) => {
    const counts = new Array<number>(B).fill(0);
    for (const b of tok.encode(t)) counts[b]!++;
    const df = new Array<number>(B).fill(0);
    for (const d of train) for (const b of new Set(tok.encode(d))) df[b]!++;
    const x = counts.map((c, b) => (b === 0 ? 0 : Math.log(1 + c) * (Math.log((1 + train.length) / (1 + df[b]!)) + 1)));
    const n = Math.sqrt(
      Math.max(
        x.reduce((a, v) => a + v * v, 0),
        1e-12,
      ),
    );
    return x.map((v) => v / n);
  });
  close(got.data, want);
});

test('the word-vector graph pools the known words: mean, or SIF a/(a+p(w)); unknown words and padding count for nothing', async () => {
  const vocab = ['good', 'bad', 'film'];
  const D = 3;
  const vectors = Float32Array.from([1, 0, 0, 0, 1, 0, 0.5, 0.5, 2]);
  const freq = Float32Array.from([0.01, 0.002, 0.0005]);
  const tok = makeTokenizer({ kind: 'vocab-words', maxTokens: 10, vocab });
  const texts = ['good film', 'bad bad unknown', 'nothing known', 'film'];
  for (const pooling of ['mean', 'sif'] as const) {
    const got = await embed(wordVectorEncoder(vectors, D, pooling, freq), tok, texts);
    const want = texts.flatMap((t) => {
      const ids = tok.encode(t).filter((i) => i >= 2);
      const s = [0, 0, 0];
      for (const i of ids) {
        const w = pooling === 'sif' ? SIF_A / (SIF_A + freq[i - 2]!) : 1;
        for (let d = 0; d < D; d++) s[d]! += w * vectors[(i - 2) * D + d]!;
      }
      return s.map((v) => v / Math.max(ids.length, 1));
    });
    close(got.data, want);
  }
});

test('a word-vector file in wink format becomes a cached GloVe encoder: words the tokenizer can produce, Zipf frequencies', async () => {
  const words = ['the', ',', 'Capital', 'film', 'good', 'new-york', 'bad'];
  const vectors = Object.fromEntries(words.map((w, i) => [w, [i, i + 0.5, -i, 1, i * 2]]));
  const file = path.join(tmp, 'vectors.json');
  fs.writeFileSync(file, JSON.stringify({ precision: 8, dimensions: 4, size: words.length, words, vectors }));
  const t = readWordVectors(file, 3);
  assert.deepEqual(t.words, ['the', 'film', 'good']); // punctuation, capitals and compounds are never produced
  assert.deepEqual(Array.from(t.ranks), [1, 4, 5]);
  assert.deepEqual(Array.from(t.vectors), [0, 0.5, 0, 1, 3, 3.5, -3, 1, 4, 4.5, -4, 1]);
  const H = 1 + 1 / 2 + 1 / 3;
  close(zipfFrequencies(Int32Array.from([1, 2, 3]), 3), [1 / H, 1 / (2 * H), 1 / (3 * H)]);

  const dir = path.join(tmp, 'models');
  const notes: string[] = [];
  const enc = await resolveTextEncoder('glove-sif', { wordVectors: file, dir, onNote: (m) => notes.push(m) });
  assert.equal(notes.length, 1);
  assert.match(notes[0]!, /building the glove-sif encoder/);
  const got = await embed(enc.model, makeTokenizer(enc.tokenizer), ['bad', 'Capital unknown']);
  assert.equal(got.dims[1], 4);
  // 'bad' is word 7 of 7 by frequency: p = 1 / (7 · H_7), weight a / (a + p); words it never produces embed as zeros
  const H7 = [1, 2, 3, 4, 5, 6, 7].reduce((a, r) => a + 1 / r, 0);
  const w = SIF_A / (SIF_A + 1 / (7 * H7));
  close(got.data, [6 * w, 6.5 * w, -6 * w, 1 * w, 0, 0, 0, 0], 1e-6);
  const again = await resolveTextEncoder('GLOVE-SIF', { wordVectors: file, dir, onNote: (m) => notes.push(m) });
  assert.equal(notes.length, 1, 'the second use loads the cached encoder');
  close((await embed(again.model, makeTokenizer(again.tokenizer), ['bad', 'Capital unknown'])).data, got.data);
});

test('an unknown encoder name lists the known ones and guesses the closest', async () => {
  await assert.rejects(
    resolveTextEncoder('tfidff'),
    /Text encoder "tfidff" is neither a known name \(tfidf, glove, glove-mean, glove-sif, all-minilm-l6-v2, minilm\); did you mean "tfidf"\?/,
  );
  await assert.rejects(resolveTextEncoder('tfidf'), /fits its IDF on the training texts/);
});
