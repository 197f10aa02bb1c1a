/**
 * npm run bench:text-speed — embedding throughput (texts/s) and head training time of graft's TF-IDF encoder
 * against scikit-learn (bench/text_speed_peer.py: HashingVectorizer 8192 + TfidfTransformer + LogisticRegression)
 * on the same SpamAssassin texts (bench/text-data.ts), in the same run, and the ratios.
 * graft: the `tfidf` encoder (IDF fitted on the training texts), the texts embedded by its ONNX graph into a fresh
 * feature store, then a linear head (logistic regression) trained on the embeddings with Adam (lr 0.01, batch 64,
 * --epochs, as bench:text's linear rows). Accuracy on the in-domain test shows both heads learned the task.
 * Usage: npm run bench:text-speed [-- --epochs 20 --runs 3]
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { scoreModel } from '../src/adapt/select.js';
import { makeTokenizer } from '../src/data/tokenize.js';
import { textFeatures } from '../src/features/text.js';
import { resolveTextEncoder } from '../src/models/text-registry.js';
import { mlp, paramNames } from '../src/nn/index.js';
import { adam } from '../src/optim/index.js';
import { ArraySource } from '../src/step/batches.js';
import { compileTrainStep } from '../src/step/compile.js';
import { StepRunner } from '../src/step/runner.js';
import { fit } from '../src/train/fit.js';
import { spamAssassin } from './text-data.js';

const { values } = parseArgs({ options: { epochs: { type: 'string', default: '20' }, runs: { type: 'string', default: '3' } } });
const epochs = Number(values.epochs);
const runs = Number(values.runs);
const { train, test } = spamAssassin();
const y = Int32Array.from(train, (r) => (r.label === 'spam' ? 1 : 0));
const yTest = Int32Array.from(test, (r) => (r.label === 'spam' ? 1 : 0));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-bench-text-speed-'));
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;

const g = { idf: [] as number[], embed: [] as number[], head: [] as number[], acc: 0 };
for (let r = 0; r < runs; r++) {
  let t0 = performance.now();
  const enc = await resolveTextEncoder('tfidf', { trainTexts: train.map((x) => x.text) });
  g.idf.push((performance.now() - t0) / 1000);
  const tok = makeTokenizer(enc.tokenizer);
  const cacheDir = path.join(dir, `cache-${r}`); // a fresh store: every text is embedded
  t0 = performance.now();
  const f = await textFeatures(
    enc.model,
    train.map((x) => x.text),
    tok,
    { cacheDir },
  );
  g.embed.push(train.length / ((performance.now() - t0) / 1000));
  const ft = await textFeatures(
    enc.model,
    test.map((x) => x.text),
    tok,
    { cacheDir },
  );
  const model = mlp([], 2, { inFeatures: f.dims }).build({ inputShape: ['N', f.dims], seed: r });
  const step = compileTrainStep({ model, trainable: paramNames(model), optimizer: adam({ lr: 0.01 }) });
  const runner = await StepRunner.create(step);
  t0 = performance.now();
  await fit(runner, new ArraySource(f.features, y, [f.dims], 2), { epochs, batchSize: 64, lr: 0.01, seed: r });
  g.head.push((performance.now() - t0) / 1000);
  const testSet = new ArraySource(ft.features, yTest, [ft.dims], 2);
  g.acc = (await scoreModel(runner.exportForward(model), { targetSample: testSet, targetEval: testSet })).target_acc!;
  await runner.release();
}
const data = path.join(dir, 'texts.json');
fs.writeFileSync(
  data,
  JSON.stringify({ train: train.map((x) => x.text), train_labels: Array.from(y), test: test.map((x) => x.text), test_labels: Array.from(yTest) }),
);
const peer: { idf_fit_s: number; embed_texts_per_s: number; head_train_s: number; test_acc: number }[] = [];
for (let r = 0; r < runs; r++) {
  const p = spawnSync('/usr/bin/python3', ['bench/text_speed_peer.py', data], {
    encoding: 'utf8',
    env: { ...process.env, OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: '1' },
  });
  if (p.status !== 0) throw new Error(`bench/text_speed_peer.py failed: ${p.stderr.trim().split('\n').at(-1)}`);
  peer.push(JSON.parse(p.stdout.trim().split('\n').at(-1)!));
}
fs.rmSync(dir, { recursive: true, force: true });
const s = {
  idf: median(peer.map((p) => p.idf_fit_s)),
  embed: median(peer.map((p) => p.embed_texts_per_s)),
  head: median(peer.map((p) => p.head_train_s)),
  acc: peer[0]!.test_acc,
};
const out = {
  bench: 'text-speed',
  texts: train.length,
  runs,
  threads: Number(process.env.GRAFT_THREADS) || 2,
  graft: {
    idf_fit_s: median(g.idf),
    embed_texts_per_s: median(g.embed),
    head_train_s: median(g.head),
    head: `linear, Adam, ${epochs} epochs`,
    test_acc: g.acc,
  },
  sklearn: { idf_fit_s: s.idf, embed_texts_per_s: s.embed, head_train_s: s.head, head: 'LogisticRegression (lbfgs)', test_acc: s.acc },
  ratio: { embed_throughput_graft_over_sklearn: median(g.embed) / s.embed, head_time_graft_over_sklearn: median(g.head) / s.head },
};
console.log('| | IDF fit s | embedding texts/s | head training s | in-domain test acc |');
console.log('|---|---|---|---|---|');
for (const [k, v] of [
  ['graft', out.graft],
  ['scikit-learn', out.sklearn],
] as const)
  console.log(`| ${k} | ${v.idf_fit_s.toFixed(2)} | ${v.embed_texts_per_s.toFixed(0)} | ${v.head_train_s.toFixed(2)} (${v.head}) | ${v.test_acc.toFixed(4)} |`);
console.log(JSON.stringify(out));
