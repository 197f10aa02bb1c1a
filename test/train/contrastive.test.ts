/**
 * SetFit's contrastive phase: the cosine-similarity loss is gradient-checked by finite differences through graft's
 * rules; pairs are sampled as SetFit does and batched side by side, padded per batch; fine-tuning the tiny BERT on
 * pairs through the one training loop lowers the loss and pulls same-label texts together, and the tuned weights
 * fold back into the encoder graph.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gradCheck, randn } from '../../src/autodiff/gradcheck.js';
import { makeTokenizer } from '../../src/data/tokenize.js';
import type { Emitter } from '../../src/ir/emit.js';
import { wrapTransformer } from '../../src/models/transformer.js';
import { bertEncoder } from '../../src/nn/arch/bert.js';
import { adam } from '../../src/optim/index.js';
import { createSession, ort } from '../../src/runtime/session.js';
import { BatchBuffers, batches } from '../../src/step/batches.js';
import { Tensor } from '../../src/tensor.js';
import { contrastiveTune, cosineSimilarityLoss, PairSource, samplePairs } from '../../src/train/contrastive.js';
import { sentimentTexts, wordPieceTokenizerJson } from '../text-fixtures.js';

test('the cosine-similarity loss: value as SetFit computes it, gradient by finite differences', async () => {
  const D = 3;
  const pairs = randn([4, 2 * D], 5);
  const target = Tensor.i64([4], [1, 0, 1, 0]);
  const r = await gradCheck({
    inputs: { pairs, target },
    wrt: ['pairs'],
    build: (e: Emitter) => cosineSimilarityLoss(e, 'pairs', 'target', D),
    eps: 1e-3,
  });
  assert.ok(r.ok && r.checked > 0, JSON.stringify(r.worst));
  // the value: mean over pairs of (cos(u, v) − y)²
  const p = pairs.data as Float32Array;
  let want = 0;
  for (let i = 0; i < 4; i++) {
    const u = p.subarray(i * 2 * D, i * 2 * D + D);
    const v = p.subarray(i * 2 * D + D, (i + 1) * 2 * D);
    const dot = u.reduce((s, x, k) => s + x * v[k]!, 0);
    const cos = dot / (Math.hypot(...u) * Math.hypot(...v));
    want += (cos - (i % 2 ? 0 : 1)) ** 2 / 4;
  }
  const { Graph } = await import('../../src/ir/graph.js');
  const { Model } = await import('../../src/ir/model.js');
  const { Emitter: E } = await import('../../src/ir/emit.js');
  const g = new Graph();
  g.inputs.push({ name: 'pairs', dtype: 'float32', shape: [4, 2 * D] }, { name: 'target', dtype: 'int64', shape: [4] });
  const m = new Model(g);
  const loss = cosineSimilarityLoss(new E(g, m.opset), 'pairs', 'target', D);
  g.outputs.push({ name: loss, dtype: 'float32', shape: [] });
  const s = await createSession(m);
  const out = await s.run({ pairs: new ort.Tensor('float32', p, [4, 2 * D]), target: new ort.Tensor('int64', target.data as BigInt64Array, [4]) });
  assert.ok(Math.abs((out[loss]!.data as Float32Array)[0]! - want) < 1e-6);
});

test('SetFit pairs: per round one positive and one negative partner per text; batches side by side, padded to the batch', async () => {
  const labels = Int32Array.of(0, 0, 0, 1, 1, 2);
  const pairs = samplePairs(labels, 3, 1);
  assert.equal(pairs.length, 3 * (6 + 5)); // text 5 (the only label 2) has no positive partner
  for (const p of pairs) {
    assert.equal(p.same, labels[p.a] === labels[p.b]);
    if (p.same) assert.notEqual(p.a, p.b);
  }
  assert.deepEqual(samplePairs(labels, 3, 1), pairs, 'seeded');
  const spec = { kind: 'hf' as const, maxTokens: 16, padId: 7, tokenizer: wordPieceTokenizerJson() };
  const tok = makeTokenizer(spec);
  const texts = ['hi', 'a much longer text here', 'hello there'];
  const src = new PairSource(
    texts,
    [
      { a: 0, b: 1, same: true },
      { a: 2, b: 0, same: false },
    ],
    tok,
  );
  for await (const b of batches(src, new BatchBuffers(src.sampleShape), { batchSize: 2, seed: 0, epoch: 0, shuffle: false })) {
    const ids = texts.map((t) => tok.encode(t));
    const T = Math.max(...ids.map((r) => r.length));
    assert.deepEqual(b.x.dims, [2, 2 * T]);
    const x = Array.from(b.x.data as BigInt64Array, Number);
    const row = (a: number[], c: number[]) => [...a, ...Array(T - a.length).fill(7), ...c, ...Array(T - c.length).fill(7)];
    assert.deepEqual(x, [...row(ids[0]!, ids[1]!), ...row(ids[2]!, ids[0]!)]);
    assert.deepEqual(Array.from(b.y.data as BigInt64Array, Number), [1, 0]);
  }
});

test('contrastive fine-tuning of the tiny BERT lowers the loss, separates the labels and folds back into the encoder', async () => {
  const spec = { kind: 'hf' as const, maxTokens: 32, padId: 0, tokenizer: wordPieceTokenizerJson() };
  const tok = makeTokenizer(spec);
  const enc = wrapTransformer(bertEncoder({ vocabSize: 30522, hidden: 16, heads: 2, layers: 1, seed: 4 }), { padId: 0, pooling: 'mean', where: 'test' });
  const { texts, labels } = sentimentTexts(16);
  const r = await contrastiveTune(enc, texts, labels, tok, { iterations: 4, epochs: 3, batchSize: 16, optimizer: adam({ lr: 3e-3 }), seed: 1 });
  assert.ok(r.losses.at(-1)! < r.losses[0]!, `losses ${r.losses.join(' ')}`);
  assert.deepEqual([...r.encoder.graph.initializers.keys()], [...enc.graph.initializers.keys()]);
  // same-label minus different-label mean cosine similarity, before and after, on texts not trained on
  const held = sentimentTexts(40).texts.slice(16);
  const heldLabels = sentimentTexts(40).labels.slice(16);
  const gap = async (m: typeof enc) => {
    const s = await createSession(m);
    const b = tok.encodeBatch(held);
    const e = (await s.run({ input_ids: new ort.Tensor('int64', b.ids, b.dims) })).embedding!.data as Float32Array;
    const D = e.length / held.length;
    const cos = (i: number, j: number) => {
      let d = 0;
      let a = 0;
      let c = 0;
      for (let k = 0; k < D; k++) {
        d += e[i * D + k]! * e[j * D + k]!;
        a += e[i * D + k]! ** 2;
        c += e[j * D + k]! ** 2;
      }
      return d / Math.sqrt(a * c);
    };
    const [same, diff] = [
      [0, 0],
      [0, 0],
    ] as [number, number][];
    for (let i = 0; i < held.length; i++)
      for (let j = i + 1; j < held.length; j++) {
        const t = heldLabels[i] === heldLabels[j] ? same : diff;
        t[0] += cos(i, j);
        t[1]++;
      }
    await s.release();
    return same[0] / same[1] - diff[0] / diff[1];
  };
  const before = await gap(enc);
  const after = await gap(r.encoder);
  assert.ok(after > before + 0.05, `same − different cosine: ${before.toFixed(3)} before, ${after.toFixed(3)} after`);
});

test('train.contrastive through runTraining: the note reports the phase and the exported model holds the tuned encoder', async () => {
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const { parseConfig } = await import('../../src/run/config.js');
  const { runTraining } = await import('../../src/run/train.js');
  const { loadModel, saveModel } = await import('../../src/onnx/io.js');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-contrastive-'));
  const cacheDir = process.env.GRAFT_CACHE_DIR;
  process.env.GRAFT_CACHE_DIR = path.join(tmp, 'cache');
  try {
    const encoder = path.join(tmp, 'bert', 'model.onnx');
    fs.mkdirSync(path.dirname(encoder), { recursive: true });
    saveModel(bertEncoder({ vocabSize: 30522, hidden: 16, heads: 2, layers: 1, seed: 2 }), encoder);
    fs.writeFileSync(path.join(tmp, 'bert', 'tokenizer.json'), JSON.stringify(wordPieceTokenizerJson()));
    const { texts, labels } = sentimentTexts(16);
    const csv = path.join(tmp, 'train.csv');
    fs.writeFileSync(csv, `text,label\n${texts.map((t, i) => `${t},${labels[i] ? 'pos' : 'neg'}`).join('\n')}\n`);
    const cfg = (contrastive?: object) =>
      parseConfig({
        data: { train: csv, valSplit: 0 },
        model: { encoder },
        train: { epochs: 1, batchSize: 8, ...(contrastive ? { contrastive } : {}) },
        run: { dir: path.join(tmp, 'runs'), name: contrastive ? 'c' : 'h', seed: 0, threads: 1 },
      });
    const notes: string[] = [];
    const withPhase = await runTraining(cfg({ iterations: 2, lr: 1e-3 }), { source: 'test', onEvent: (e) => e.type === 'note' && notes.push(e.message) });
    assert.ok(
      notes.some((n) => /^contrastive phase: 64 pairs \(2 iteration\(s\)\), 1 epoch\(s\)/.test(n)),
      notes.join('\n'),
    );
    const plain = await runTraining(cfg(), { source: 'test' });
    const w = 'encoder.layer.0.attention.self.query.weight';
    const a = loadModel(withPhase.model).graph.initializers.get(w)!.data as Float32Array;
    const b = loadModel(plain.model).graph.initializers.get(w)!.data as Float32Array;
    assert.ok(
      a.some((v, i) => v !== b[i]),
      'the contrastive run exported a tuned encoder',
    );
    assert.throws(
      () => parseConfig({ data: { train: 'x' }, model: { arch: 'small-cnn' }, train: { contrastive: 3 } }),
      /train\.contrastive: .*needs a text model\.encoder/,
    );
  } finally {
    if (cacheDir === undefined) delete process.env.GRAFT_CACHE_DIR;
    else process.env.GRAFT_CACHE_DIR = cacheDir;
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
