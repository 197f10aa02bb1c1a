/**
 * Choosing for text: `rank({ encoders })` / `graft rank --encoders` score text encoders on a labelled text table
 * (TF-IDF separates the two classes' words; a word-vector encoder that maps every word to the same vector sees
 * nothing, and ranks below it by every score), and `graft shift --encoder` measures how far two text domains are
 * apart (a vocabulary drift is a shift; one table against itself is none).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { rank } from '../../src/choose/rank.js';
import { SCORE_NAMES } from '../../src/choose/scores.js';
import { buildProgram } from '../../src/cli/index.js';
import { writeTokenizerFile } from '../../src/data/tokenize.js';
import { wordVectorEncoder } from '../../src/models/text-encoders.js';
import { saveModel } from '../../src/onnx/io.js';
import { twoClassTexts } from '../text-fixtures.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-choose-text-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const cacheDir = path.join(tmp, 'cache');

const SPAM = ['win', 'free', 'money', 'prize', 'cash', 'offer'];
const HAM = ['meeting', 'report', 'lunch', 'project', 'office', 'review'];
const NEW = ['crypto', 'bonus', 'standup', 'sprint', 'deploy', 'asap'];
const FILLER = ['the', 'a', 'today', 'please', 'for', 'you'];

function texts(n: number, seed: number, drift = false): { text: string; label: string }[] {
  return twoClassTexts(n, seed, { spam: SPAM, ham: HAM, filler: drift ? NEW : FILLER });
}
const csv = (r: { text: string; label: string }[]) => `text,label\n${r.map((x) => `"${x.text}",${x.label}`).join('\n')}\n`;
const data = path.join(tmp, 'texts.csv');
const drifted = path.join(tmp, 'drifted.csv');
const blind = path.join(tmp, 'blind', 'encoder.onnx');

before(() => {
  fs.writeFileSync(data, csv(texts(60, 1)));
  fs.writeFileSync(drifted, csv(texts(60, 2, true)));
  // every class word the same vector, filler words their own: the embeddings vary, but not with the class
  const vocab = [...SPAM, ...HAM, ...NEW, ...FILLER];
  const vectors = new Float32Array(vocab.length * 4).map((_, i) => {
    const w = Math.floor(i / 4);
    return w < SPAM.length + HAM.length ? [0.5, -1, 2, 0.25][i % 4]! : Math.sin(7 * i + 1);
  });
  fs.mkdirSync(path.dirname(blind), { recursive: true });
  saveModel(wordVectorEncoder(vectors, 4, 'mean'), blind);
  writeTokenizerFile(blind, { kind: 'vocab-words', maxTokens: 64, vocab });
});

test('rank({ encoders }) scores text encoders on a text table: the informative one first by every score', async () => {
  const warnings: string[] = [];
  const r = await rank({ encoders: [blind, 'tfidf'], data, cacheDir, onWarning: (m) => warnings.push(m) });
  assert.equal(r.unit, 'texts');
  assert.equal(r.n, 60);
  assert.deepEqual(r.classes, ['ham', 'spam']);
  const [b, t] = r.backbones;
  assert.equal(b!.dims, 4);
  assert.equal(t!.dims, 8192);
  assert.equal(b!.error, undefined, b!.error);
  assert.ok(t!.scores!.knn > 0.9, `tfidf kNN ${t!.scores!.knn}`);
  // SFDA's d×d system is skipped for 8192 dimensions (n/a, with a warning); every other score ranks tfidf first
  assert.ok(Number.isNaN(t!.scores!.sfda) && Number.isFinite(b!.scores!.sfda));
  assert.ok(warnings.some((w) => /backbone tfidf: no SFDA for 8192 feature dimensions/.test(w)));
  for (const s of SCORE_NAMES.filter((x) => x !== 'sfda')) assert.equal(r.ranking[s][0], 'tfidf', `${s}: ${r.ranking[s].join(' > ')}`);
  // 60 texts for 8192 dimensions: LogME/SFDA are flagged for tfidf, in texts
  assert.ok(warnings.some((w) => /backbone tfidf: 60 texts for 8192 feature dimensions/.test(w)));
  await assert.rejects(rank({ encoders: ['tfidf'], backbones: ['arch:lenet5'], data }), /backbones .* or encoders .*not both/);
});

async function graft(args: string[]): Promise<void> {
  await buildProgram().parseAsync(['node', 'graft', '--quiet', ...args]);
}

test('graft rank --encoders writes the ranking of text encoders; --backbones with --encoders is a clear error', async () => {
  const out = path.join(tmp, 'rank');
  await graft(['rank', '--encoders', 'tfidf', blind, '--data', data, '--out', out]);
  const doc = JSON.parse(fs.readFileSync(path.join(out, 'rank.json'), 'utf8'));
  assert.equal(doc.unit, 'texts');
  assert.match(fs.readFileSync(path.join(out, 'rank.svg'), 'utf8'), /Text encoders ranked on texts\.csv \(60 texts/);
  assert.equal(doc.ranking.knn[0], 'tfidf');
  await assert.rejects(graft(['rank', '--encoders', 'tfidf', '--backbones', 'arch:lenet5', '--data', data]), /--backbones and --encoders exclude each other/);
  await assert.rejects(graft(['rank', '--data', data]), /needs the candidates: --backbones .* or --encoders/);
});

test('graft shift --encoder: a vocabulary drift is a shift, one table against itself is none', async () => {
  const out = path.join(tmp, 'shift.json');
  const common = ['--encoder', 'tfidf', '--permutations', '50'];
  await graft(['shift', '--source', data, '--target', drifted, ...common, '--out', out]);
  const r = JSON.parse(fs.readFileSync(out, 'utf8'));
  assert.equal(r.encoder, 'tfidf');
  assert.equal(r.features.dims, 8192);
  assert.deepEqual(r.samples, { source: 60, target: 60 });
  assert.notEqual(r.level, 'none', `A-distance ${r.aDistance.aDistance}, p ${r.mmd.pValue}`);
  assert.ok(!r.methods.includes('adabn'), 'a text encoder has no BatchNorm');
  await graft(['shift', '--source', data, '--target', data, ...common, '--out', out]);
  const same = JSON.parse(fs.readFileSync(out, 'utf8'));
  assert.deepEqual(same.samples, { source: 30, target: 30 });
  assert.ok(same.aDistance.aDistance < r.aDistance.aDistance, `same ${same.aDistance.aDistance} vs drifted ${r.aDistance.aDistance}`);
  await assert.rejects(graft(['shift', '--source', data, '--target', drifted, '--encoder', 'tfidf', '--image-size', '8']), /--encoder compares texts/);
});
