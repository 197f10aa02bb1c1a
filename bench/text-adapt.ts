/**
 * npm run bench:text-adapt — unsupervised adaptation on SpamAssassin's temporal shift (bench/text-data.ts): the
 * labelled source is the older groups' training part, the unlabelled target the newer groups' texts (their labels
 * only evaluate: never trained on, never used to select). Each encoder is frozen and a bottleneck head
 * (mlp [256]) adapts on its cached embeddings through the library's one adaptation path (`loadTextDomains`,
 * `textAdaptModel`, `compareMethods` → `adapt` → `fit`), the same as `graft adapt --encoder`. For every method ×
 * seed: the in-domain test accuracy (older groups, held out) and the shifted accuracy (newer groups), of the
 * checkpoint picked by source-validation accuracy and of the last one.
 * Usage: npm run bench:text-adapt [-- --encoders tfidf,glove,tiny-bert --methods source-only,coral,dan,mcc --seeds 0,1 --epochs 10]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { compareMethods } from '../src/adapt/compare.js';
import type { MethodName } from '../src/adapt/methods.js';
import { scoreModel } from '../src/adapt/select.js';
import { loadTextDomains, textAdaptModel } from '../src/adapt/text.js';
import { computeFeatures, headOnlySplit } from '../src/features/backbone.js';
import { TextSource } from '../src/features/text.js';
import { paramNames } from '../src/ir/params.js';
import { adam } from '../src/optim/index.js';
import { spamAssassin, tinyBert, toCsv } from './text-data.js';

const { values } = parseArgs({
  options: {
    encoders: { type: 'string', default: 'tfidf,glove,tiny-bert' },
    methods: { type: 'string', default: 'source-only,coral,dan,mcc,dann,self-training' },
    seeds: { type: 'string', default: '0' },
    epochs: { type: 'string', default: '10' },
    // Adam, as bench:text trains these heads (SGD at graft adapt's defaults leaves the head predicting the majority class)
    lr: { type: 'string', default: '0.003' },
  },
});

const { train, test, shifted } = spamAssassin();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-bench-text-adapt-'));
const file = (name: string, text: string) => {
  const f = path.join(dir, name);
  fs.writeFileSync(f, text);
  return f;
};
const srcCsv = file('source.csv', toCsv(train));
const tgtCsv = file('target.csv', toCsv(shifted, false));
const evalCsv = file('target-eval.csv', toCsv(shifted));
console.log(`source ${train.length} (older groups), in-domain test ${test.length}, target ${shifted.length} (newer groups, unlabelled); in ${dir}`);

const methods = values.methods!.split(',') as MethodName[];
const seeds = values.seeds!.split(',').map(Number);
const rows: Record<string, string | number>[] = [];
for (const name of values.encoders!.split(',')) {
  const t0 = performance.now();
  const d = await loadTextDomains({
    source: srcCsv,
    target: tgtCsv,
    targetEval: evalCsv,
    encoder: name === 'tiny-bert' ? tinyBert(dir) : name,
    valSplit: 0.1,
    seed: 0,
    warn: () => {},
    onNote: (m) => console.log(`  ${m}`),
  });
  const inDomain = new TextSource(
    test.map((r) => r.text),
    Int32Array.from(test, (r) => d.classes.indexOf(r.label)),
    d.encoder.tokenizer,
    2,
  );
  // the in-domain test set's embeddings, once: each run's head is scored on them
  const inDomainFeatures = await computeFeatures(d.encoder.model, inDomain);
  console.log(`${name}: encoder and embeddings ready in ${((performance.now() - t0) / 1000).toFixed(0)} s (then cached for every run)`);
  const lr = Number(values.lr);
  const first = textAdaptModel(d.encoder.model, 2, { bottleneck: 256, seed: seeds[0]! });
  const inDomainAcc = new Map<string, number>();
  const { rows: summary, runs } = await compareMethods({
    methods,
    seeds,
    model: (seed) => textAdaptModel(d.encoder.model, 2, { bottleneck: 256, seed }).model,
    trainable: first.trainable,
    source: d.train,
    sourceVal: d.val,
    target: d.target,
    targetEval: d.targetEval,
    epochs: Number(values.epochs),
    batchSize: 64,
    optimizer: adam({ lr }),
    select: 'source-val',
    onStart: (m, s) => process.stdout.write(`  ${name} ${m} seed ${s} … `),
    onRun: async (r) => {
      const split = headOnlySplit({
        model: r.model,
        cut: r.model.metadata['graft.cut'],
        trainable: paramNames(r.model).filter((p) => first.trainable.includes(p)),
      });
      const acc = (await scoreModel(split!.head, { targetSample: inDomainFeatures, targetEval: inDomainFeatures })).target_acc!;
      inDomainAcc.set(`${r.method}/${r.seed}`, acc);
      console.log(
        `in-domain ${(100 * acc).toFixed(2)} %, shifted ${(100 * r.selected.target_acc!).toFixed(2)} % (last ${(100 * r.last.target_acc!).toFixed(2)} %), ${r.seconds.toFixed(0)} s`,
      );
    },
  });
  for (const s of summary) {
    const ids = runs.filter((r) => r.method === s.method).map((r) => inDomainAcc.get(`${r.method}/${r.seed}`)!);
    const mean = ids.reduce((a, b) => a + b, 0) / ids.length;
    rows.push({
      encoder: name,
      method: s.method,
      lr,
      in_domain: 100 * mean,
      shifted: s.target_acc!.mean,
      shifted_std: s.target_acc!.std,
      shifted_last: s.target_acc_last!.mean,
      seconds: s.seconds.mean,
    });
  }
}
console.log('\n| encoder | method | in-domain acc % | shifted acc % (source-val pick) | shifted acc % (last) | s/run |');
console.log('|---|---|---|---|---|---|');
for (const r of rows)
  console.log(
    `| ${r.encoder} | ${r.method} | ${(r.in_domain as number).toFixed(2)} | ${(r.shifted as number).toFixed(2)}${seeds.length > 1 ? ` ± ${(r.shifted_std as number).toFixed(2)}` : ''} | ${(r.shifted_last as number).toFixed(2)} | ${(r.seconds as number).toFixed(0)} |`,
  );
console.log(JSON.stringify(rows));
fs.rmSync(dir, { recursive: true, force: true });
