/**
 * Fine-tuning a transformer text encoder (issue 18): a TextSource yields int64 token-id batches padded per batch
 * with the tokenizer's pad id, and the one training loop (fit → StepRunner → compileTrainStep) trains the tiny BERT
 * built by graft's builder with its head: every encoder weight in `full` mode, only the last block (and the head)
 * in `last-stages` mode, the loss falling from where the head alone leaves it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeTokenizer } from '../../src/data/tokenize.js';
import { TextSource } from '../../src/features/text.js';
import { stages } from '../../src/ir/surgery.js';
import { wrapTransformer } from '../../src/models/transformer.js';
import { bertEncoder } from '../../src/nn/arch/bert.js';
import { mlp } from '../../src/nn/arch/mlp.js';
import { adam } from '../../src/optim/index.js';
import { BatchBuffers, batches } from '../../src/step/batches.js';
import type { Tensor } from '../../src/tensor.js';
import { Network } from '../../src/train/network.js';
import { wordPieceTokenizerJson } from '../text-fixtures.js';

const spec = { kind: 'hf' as const, maxTokens: 32, padId: 0, tokenizer: wordPieceTokenizerJson() };
const tokenizer = makeTokenizer(spec);
const POS = ['good', 'great', 'happy', 'love'];
const NEG = ['bad', 'awful', 'sad', 'hate'];
const FILL = ['the', 'a', 'today', 'is', 'very', 'and'];

/** Texts whose class shows only in a word or two among fillers of varying length (so padding varies per batch). */
function data(n: number): TextSource {
  const texts: string[] = [];
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % 2;
    const words = labels[i] ? NEG : POS;
    const fill = Array.from({ length: 1 + (i % 5) }, (_, k) => FILL[(i + k) % FILL.length]!);
    texts.push([...fill.slice(0, 2), words[(i >> 1) % 4]!, ...fill.slice(2)].join(' '));
  }
  return new TextSource(texts, labels, tokenizer, 2);
}

function textNet(): Network {
  const enc = wrapTransformer(bertEncoder({ vocabSize: 30522, hidden: 16, heads: 2, layers: 2, seed: 5 }), { padId: 0, pooling: 'cls', where: 'test' });
  const net = new Network(enc);
  net.text = spec;
  return net.freeze().replaceHead(mlp([], 2), { seed: 1 });
}

const fitCfg = { epochs: 6, batchSize: 8, optimizer: adam({ lr: 0.003 }), seed: 2 };
const changed = (a: Tensor, b: Tensor) => (a.data as Float32Array).some((v, i) => v !== (b.data as Float32Array)[i]);

test('a TextSource yields int64 token-id batches padded per batch to its longest text, with the pad id', async () => {
  const src = new TextSource(['hi', 'I like strawberries a lot', 'hi there'], Int32Array.of(0, 1, 0), { ...spec, padId: 7 }, 2);
  const ids = ['hi', 'I like strawberries a lot', 'hi there'].map((t) => tokenizer.encode(t));
  const seen: number[] = [];
  for await (const b of batches(src, new BatchBuffers(src.sampleShape), { batchSize: 2, seed: 0, epoch: 0, shuffle: false })) {
    const rows = ids.slice(b.index * 2, b.index * 2 + b.size);
    const T = Math.max(...rows.map((r) => r.length));
    assert.equal(b.x.dtype, 'int64');
    assert.deepEqual(b.x.dims, [b.size, T]);
    const x = b.x.data as BigInt64Array;
    rows.forEach((r, i) => {
      for (let t = 0; t < T; t++) assert.equal(x[i * T + t], BigInt(t < r.length ? r[t]! : 7));
    });
    seen.push(...Array.from(b.y.data as BigInt64Array, Number));
  }
  assert.deepEqual(seen, [0, 1, 0]);
});

test('the stages of a transformer are its blocks: last-stages 2 trains the last block and the head', () => {
  const names = stages(textNet().model).map((s) => s.name);
  assert.deepEqual(names.slice(-3), ['encoder.layer.0', 'encoder.layer.1', names.at(-1)]);
  assert.ok(!names.at(-1)!.startsWith('encoder'), names.join(', '));
});

test('fine-tuning the tiny BERT on token ids: full trains every encoder weight, last-stages only the last block, both below the head-only loss', async () => {
  const train = data(48);
  const head = textNet();
  const init = head.model.graph.initializers;
  const rh = await head.fit(train, fitCfg);
  const headLoss = rh.history.at(-1)!.train_loss!;

  const full = textNet().unfreeze();
  const rf = await full.fit(train, fitCfg);
  const fullLosses = rf.history.map((m) => m.train_loss!);
  const after = full.model.graph.initializers;
  for (const p of ['embeddings.word_embeddings.weight', 'encoder.layer.0.attention.self.query.weight', 'encoder.layer.1.output.dense.weight'])
    assert.ok(changed(init.get(p)!, after.get(p)!), `${p} trained`);
  assert.ok(fullLosses.at(-1)! < headLoss, `full ${fullLosses.join(' ')} vs head ${headLoss}`);

  const last = textNet().unfreeze({ lastStages: 2 });
  const rl = await last.fit(train, { ...fitCfg, epochs: 12 });
  const l = last.model.graph.initializers;
  assert.ok(changed(init.get('encoder.layer.1.attention.self.query.weight')!, l.get('encoder.layer.1.attention.self.query.weight')!));
  for (const p of ['embeddings.word_embeddings.weight', 'encoder.layer.0.attention.self.query.weight'])
    assert.ok(!changed(init.get(p)!, l.get(p)!), `${p} stays frozen`);
  assert.ok(rl.history.at(-1)!.train_loss! < rl.history[0]!.train_loss!);
  // the trained network predicts from token ids (the inference view runs the whole model on int64 batches)
  const p = await full.predict(train);
  assert.equal(p.probabilities.length, train.length * 2);
});
