/**
 * Text end to end through the CLI, as subprocesses: `graft train --encoder` on a tiny CSV (TF-IDF) and on a
 * folder of .txt files (GloVe from a wink-format fixture), then `graft predict` and `graft eval` on the model;
 * the exported ONNX runs standalone in a fresh onnxruntime session with the tokenizer file beside it; bad text
 * input gives one clear error naming file:line and exit 1.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { makeTokenizer, type TokenizerSpec } from '../../src/data/tokenize.js';
import { bertEncoder } from '../../src/nn/arch/bert.js';
import { loadModel, saveModel } from '../../src/onnx/io.js';
import { runGraft } from '../cli-run.js';
import { twoClassTexts, wordPieceTokenizerJson } from '../text-fixtures.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-text-cli-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const env = { GRAFT_THREADS: '2', GRAFT_CACHE_DIR: path.join(tmp, 'cache'), GRAFT_MODELS_DIR: path.join(tmp, 'models') };
const graft = (args: string[], extra: Record<string, string> = {}) => runGraft(args, tmp, { ...env, ...extra });

const SPAM = ['win', 'free', 'money', 'prize', 'cash', 'offer', 'click', 'cheap'];
const HAM = ['meeting', 'report', 'lunch', 'project', 'office', 'review', 'team', 'schedule'];
const FILLER = ['the', 'a', 'today', 'now', 'please', 'for', 'you', 'and'];

/** A text of 6 words: 3 from its class's words, 3 fillers, from a seeded generator, and its index. */
function makeTexts(n: number, seed: number): { text: string; label: string }[] {
  return twoClassTexts(n, seed, { spam: SPAM, ham: HAM, filler: FILLER }, (i) => ` ${i}`);
}

const csv = path.join(tmp, 'texts.csv');
const heldOut = path.join(tmp, 'held-out.csv');
const folder = path.join(tmp, 'folder');
const vectors = path.join(tmp, 'vectors.json');
const bert = path.join(tmp, 'tiny-bert', 'model.onnx');

before(() => {
  const rows = (r: { text: string; label: string }[]) => `text,label\n${r.map((x) => `"${x.text}",${x.label}`).join('\n')}\n`;
  fs.writeFileSync(csv, rows(makeTexts(60, 1)));
  fs.writeFileSync(heldOut, rows(makeTexts(20, 2)));
  for (const [i, r] of makeTexts(24, 3).entries()) {
    fs.mkdirSync(path.join(folder, r.label), { recursive: true });
    fs.writeFileSync(path.join(folder, r.label, `${i}.txt`), r.text);
  }
  // word vectors in wink's format: spam words point one way, ham words the other, fillers nowhere in particular
  const words = [...FILLER, ...SPAM, ...HAM];
  const vec = (w: string, i: number) => [SPAM.includes(w) ? 1 : HAM.includes(w) ? -1 : 0, Math.sin(i), Math.cos(i)];
  fs.writeFileSync(vectors, JSON.stringify({ dimensions: 3, words, vectors: Object.fromEntries(words.map((w, i) => [w, vec(w, i)])) }));
  // a small BERT built by graft's builder, with a real WordPiece tokenizer.json beside it (the hub layout)
  fs.mkdirSync(path.dirname(bert), { recursive: true });
  saveModel(bertEncoder({ vocabSize: 30522, hidden: 16, heads: 2, layers: 1, seed: 1 }), bert);
  fs.writeFileSync(path.join(path.dirname(bert), 'tokenizer.json'), JSON.stringify(wordPieceTokenizerJson()));
});

const trainFlags = [
  '--head',
  'linear',
  '--optimizer',
  'adam',
  '--lr',
  '0.05',
  '--epochs',
  '8',
  '--batch-size',
  '8',
  '--runs-dir',
  'runs',
  '--no-early-stopping',
];

// the cases are independent (their own run names): they run side by side
describe('text through the CLI', { concurrency: true }, () => {
  test('graft train --encoder tfidf on a CSV, then predict and eval; the exported ONNX runs standalone with its tokenizer', async () => {
    const r = await graft(['train', '--data', csv, '--encoder', 'tfidf', '--name', 'tfidf', ...trainFlags, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const run = path.join(tmp, 'runs', 'tfidf');
    const model = path.join(run, 'model.onnx');
    const spec = JSON.parse(fs.readFileSync(path.join(run, 'model.tokenizer.json'), 'utf8')) as TokenizerSpec;
    assert.equal(spec.kind, 'hashed-words');
    const sidecar = JSON.parse(fs.readFileSync(path.join(run, 'model.json'), 'utf8'));
    assert.deepEqual(sidecar.labels, ['ham', 'spam']);
    assert.deepEqual(sidecar.text, { input: 'input_ids', tokenizer: 'model.tokenizer.json', kind: 'hashed-words' });
    const preds = fs
      .readFileSync(path.join(run, 'predictions.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.match(preds[0].path, /texts\.csv:\d+$/);

    // predict: literal texts and a table
    const p = await graft(['predict', model, 'free cash prize now', 'project meeting with the team', heldOut, '--json']);
    assert.equal(p.code, 0, p.stderr);
    const out = JSON.parse(p.stdout);
    assert.equal(out.count, 22);
    assert.equal(out.results[0].label, 'spam');
    assert.equal(out.results[1].label, 'ham');
    assert.equal(out.results[2].file, `${heldOut}:2`);

    // the same probabilities from a fresh onnxruntime session fed by the tokenizer file alone
    const s = await ort.InferenceSession.create(model);
    const tok = makeTokenizer(spec);
    const b = tok.encodeBatch(['free cash prize now', 'project meeting with the team']);
    const probs = (await s.run({ input_ids: new ort.Tensor('int64', b.ids, b.dims) })).probabilities!.data as Float32Array;
    await s.release();
    for (let i = 0; i < 2; i++)
      for (const t of out.results[i].top) assert.ok(Math.abs(probs[i * 2 + t.index]! - t.probability) < 1e-5, `row ${i} class ${t.label}`);

    // eval on held-out texts the model never saw
    const e = await graft(['eval', model, '--data', heldOut, '--json']);
    assert.equal(e.code, 0, e.stderr);
    const ev = JSON.parse(e.stdout);
    assert.equal(ev.n, 20);
    assert.equal(ev.inputs, 'texts');
    assert.ok(ev.accuracy >= 0.9, `held-out accuracy ${ev.accuracy}`);
  });

  test('graft train on a folder of .txt files with GloVe vectors (a wink-format file), then predict a .txt file', async () => {
    const r = await graft(['train', '--data', folder, '--encoder', 'glove', '--name', 'glove', ...trainFlags, '--json'], { GRAFT_WORD_VECTORS: vectors });
    assert.equal(r.code, 0, r.stderr);
    // built once from the vector file, then kept in the model cache with its tokenizer
    const cached = fs.readdirSync(path.join(tmp, 'models', 'text'));
    assert.ok(cached.some((f) => /^glove-100000-\w+\.onnx$/.test(f)) && cached.some((f) => f.endsWith('.tokenizer.json')), cached.join(', '));
    const model = path.join(tmp, 'runs', 'glove', 'model.onnx');
    const spec = JSON.parse(fs.readFileSync(path.join(tmp, 'runs', 'glove', 'model.tokenizer.json'), 'utf8')) as TokenizerSpec;
    assert.equal(spec.kind, 'vocab-words');
    const one = path.join(tmp, 'one.txt');
    fs.writeFileSync(one, 'cheap prize offer for you');
    const p = await graft(['predict', model, one, 'lunch review schedule', '-k', '1', '--json']);
    assert.equal(p.code, 0, p.stderr);
    const out = JSON.parse(p.stdout);
    assert.deepEqual(
      out.results.map((x: { file: string; label: string }) => [x.file, x.label]),
      [
        [one, 'spam'],
        ['lunch review schedule', 'ham'],
      ],
    );
  });

  test('graft train --encoder <transformer.onnx> (its tokenizer.json beside it): the exported model embeds encoder + head', async () => {
    const r = await graft(['train', '--data', csv, '--encoder', bert, '--pooling', 'cls', '--name', 'bert', ...trainFlags, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const model = path.join(tmp, 'runs', 'bert', 'model.onnx');
    const spec = JSON.parse(fs.readFileSync(path.join(tmp, 'runs', 'bert', 'model.tokenizer.json'), 'utf8')) as TokenizerSpec;
    assert.equal(spec.kind, 'hf');
    const p = await graft(['predict', model, 'free cash prize now', '-k', '2', '--json']);
    assert.equal(p.code, 0, p.stderr);
    const top = JSON.parse(p.stdout).results[0].top as { index: number; probability: number }[];
    const s = await ort.InferenceSession.create(model);
    assert.deepEqual(s.inputNames, ['input_ids']);
    const b = makeTokenizer(spec).encodeBatch(['free cash prize now']);
    const probs = (await s.run({ input_ids: new ort.Tensor('int64', b.ids, b.dims) })).probabilities!.data as Float32Array;
    await s.release();
    for (const t of top) assert.ok(Math.abs(probs[t.index]! - t.probability) < 1e-5);
  });

  test('graft train --encoder <transformer.onnx> --mode last-stages fine-tunes the last block with the head; the export carries the trained encoder', async () => {
    const ft = ['--mode', 'last-stages', '--name', 'bert-ft', ...trainFlags, '--lr', '0.003', '--epochs', '3', '--json'];
    const r = await graft(['train', '--data', csv, '--encoder', bert, ...ft]);
    assert.equal(r.code, 0, r.stderr);
    const model = path.join(tmp, 'runs', 'bert-ft', 'model.onnx');
    const trained = loadModel(model).graph.initializers;
    const original = loadModel(bert).graph.initializers;
    const same = (p: string) => Buffer.from(trained.get(p)!.data.buffer).equals(Buffer.from(original.get(p)!.data.buffer));
    assert.equal(same('encoder.layer.0.attention.self.query.weight'), false, 'the last block (the only one) trained');
    assert.equal(same('embeddings.word_embeddings.weight'), true, 'the embeddings stay frozen');
    const p = await graft(['predict', model, 'free cash prize now', '--json']);
    assert.equal(p.code, 0, p.stderr);
  });

  test('bad text input: a missing column, bytes that are not UTF-8, a mode the text path does not have: one error, exit 1', async () => {
    const nocol = path.join(tmp, 'nocol.csv');
    fs.writeFileSync(nocol, 'body,label\nx,a\ny,b\n');
    const latin = path.join(tmp, 'latin.csv');
    fs.writeFileSync(latin, Buffer.concat([Buffer.from('text,label\nok,a\nfa'), Buffer.from([0xe7]), Buffer.from('ade,b\n')]));
    const [a, b, c] = await Promise.all([
      graft(['train', '--data', nocol, '--encoder', 'tfidf', '--name', 'bad1', ...trainFlags]),
      graft(['train', '--data', latin, '--encoder', 'tfidf', '--name', 'bad2', ...trainFlags]),
      graft(['train', '--data', csv, '--encoder', 'tfidf', '--mode', 'auto', '--name', 'bad3', ...trainFlags]),
    ]);
    assert.equal(a.code, 1);
    assert.match(a.stderr, /nocol\.csv:1: the header \(body,label\) has no "text" column/);
    assert.equal(b.code, 1);
    assert.match(b.stderr, /latin\.csv:3: the bytes at offset 18 are not valid UTF-8/);
    assert.equal(c.code, 1);
    assert.match(c.stderr, /train\.mode.*no auto recipe.*use mode head.*last-stages, full or fine-tune/);
    for (const n of ['bad1', 'bad2', 'bad3']) assert.equal(fs.existsSync(path.join(tmp, 'runs', n, 'model.onnx')), false);
  });
});
