/**
 * Adaptation on text: labelled source texts + unlabelled target texts whose vocabulary drifted, on a frozen
 * TF-IDF encoder with a new bottleneck head trained on cached embeddings. The library path (`loadTextDomains`,
 * `textAdaptModel`, `adapt`) and `graft adapt --encoder` in-process: a comparison table, a saved text model that
 * classifies texts, --method auto, and the clear errors (image-only flags, FixMatch, AdaBN).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { adapt } from '../../src/adapt/run.js';
import { loadTextDomains, TEXT_METHODS, textAdaptModel } from '../../src/adapt/text.js';
import { buildProgram } from '../../src/cli/index.js';
import { classifyTexts, loadTextClassifier } from '../../src/train/classify-text.js';
import { twoClassTexts } from '../text-fixtures.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-adapt-text-'));
const saved = { cache: process.env.GRAFT_CACHE_DIR, models: process.env.GRAFT_MODELS_DIR };
before(() => {
  process.env.GRAFT_CACHE_DIR = path.join(tmp, 'cache');
  process.env.GRAFT_MODELS_DIR = path.join(tmp, 'models');
});
after(() => {
  for (const [k, v] of [
    ['GRAFT_CACHE_DIR', saved.cache],
    ['GRAFT_MODELS_DIR', saved.models],
  ] as const)
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  fs.rmSync(tmp, { recursive: true, force: true });
});

// the source speaks of spam with some words, the target (newer mail) with others too, and other filler words
const SPAM = { old: ['win', 'free', 'money', 'prize'], new: ['crypto', 'bonus', 'free', 'money'] };
const HAM = { old: ['meeting', 'report', 'lunch', 'project'], new: ['standup', 'meeting', 'report', 'deploy'] };
const FILLER = { old: ['the', 'a', 'today', 'please'], new: ['hey', 'guys', 'asap', 'thanks'] };

function texts(n: number, seed: number, era: 'old' | 'new'): { text: string; label: string }[] {
  return twoClassTexts(n, seed, { spam: SPAM[era], ham: HAM[era], filler: FILLER[era] }, (i) => ` ${era}${i}`);
}
const table = (r: { text: string; label: string }[], labels = true) =>
  `${labels ? 'text,label' : 'text'}\n${r.map((x) => (labels ? `"${x.text}",${x.label}` : `"${x.text}"`)).join('\n')}\n`;

const src = path.join(tmp, 'source.csv');
const tgt = path.join(tmp, 'target.csv');
const tgtEval = path.join(tmp, 'target-eval.csv');
fs.writeFileSync(src, table(texts(48, 1, 'old')));
fs.writeFileSync(tgt, table(texts(40, 2, 'new'), false));
fs.writeFileSync(tgtEval, table(texts(24, 3, 'new')));

const warnings: string[] = [];
const domains = () =>
  loadTextDomains({ source: src, target: tgt, targetEval: tgtEval, encoder: 'tfidf', valSplit: 0.25, seed: 0, warn: (m) => warnings.push(m) });

test('adapt() on text: each method trains the head on cached embeddings, its term is active, the target is scored', async () => {
  const d = await domains();
  assert.deepEqual(d.classes, ['ham', 'spam']);
  assert.equal(d.train.length + (d.val?.length ?? 0), 48);
  assert.equal(d.target.length, 40);
  assert.ok(d.target.unlabelled);
  const runs: Record<string, Awaited<ReturnType<typeof adapt>>> = {};
  for (const method of ['source-only', 'coral', 'dan', 'mcc'] as const) {
    const { model, trainable } = textAdaptModel(d.encoder.model, 2, { bottleneck: 16, seed: 0 });
    runs[method] = await adapt({
      model,
      trainable,
      source: d.train,
      sourceVal: d.val,
      target: d.target,
      targetEval: d.targetEval,
      method,
      epochs: 4,
      batchSize: 8,
      lr: 0.5,
      select: 'source-val',
    });
  }
  for (const [m, r] of Object.entries(runs)) {
    assert.equal(r.featureCache, true, `${m}: the frozen encoder's embeddings were computed once`);
    assert.ok(r.selected.target_acc !== undefined && r.selected.source_val_acc !== undefined, m);
    if (m !== 'source-only') assert.ok(Number.isFinite(r.train.adapt_loss) && r.train.adapt_loss! !== 0, `${m}: adapt_loss ${r.train.adapt_loss}`);
  }
  assert.equal(runs['source-only']!.train.adapt_loss, undefined);
  // the adaptation term changes what is learned
  assert.notDeepEqual(
    runs.coral!.history.map((h) => h.snd),
    runs['source-only']!.history.map((h) => h.snd),
  );
  // the result is a whole text model: encoder + head, int64 token ids in
  assert.equal(runs.mcc!.model.graph.inputs[0]!.dtype, 'int64');
});

test('adapt() refuses a text model whose encoder trains, and FixMatch on text, with what to do instead', async () => {
  const d = await domains();
  const { model } = textAdaptModel(d.encoder.model, 2, { bottleneck: 8, seed: 0 });
  await assert.rejects(
    adapt({ model, source: d.train, target: d.target, method: 'fixmatch', epochs: 1, batchSize: 8 }),
    /text is adapted on cached embeddings.*fixmatch given.*coral, dan/s,
  );
  assert.ok(!TEXT_METHODS.includes('fixmatch') && !TEXT_METHODS.includes('adabn'));
});

async function graft(args: string[]): Promise<void> {
  await buildProgram().parseAsync(['node', 'graft', '--quiet', 'adapt', ...args]);
}
const common = [
  '--source',
  src,
  '--target',
  tgt,
  '--encoder',
  'tfidf',
  '--epochs',
  '3',
  '--batch-size',
  '8',
  '--lr',
  '0.5',
  '--bottleneck',
  '16',
  '--val-split',
  '0.25',
];

test('graft adapt --encoder: a comparison table, and one method saves a text model that classifies texts', async () => {
  const out = path.join(tmp, 'cmp');
  await graft([...common, '--target-eval', tgtEval, '--compare', 'source-only,coral,dan,mcc', '--out', out]);
  const report = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
  for (const m of ['source-only', 'coral', 'dan', 'mcc']) assert.match(report, new RegExp(`\\| ${m} \\| \\d+\\.\\d \\|`));
  const doc = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
  assert.equal(doc.runs.length, 4);
  assert.ok(doc.runs.every((r: { featureCache: boolean }) => r.featureCache));
  assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')).encoder, 'tfidf');

  const one = path.join(tmp, 'one');
  await graft([...common, '--method', 'coral', '--out', one]);
  const model = path.join(one, 'model.onnx');
  assert.ok(fs.existsSync(path.join(one, 'model.tokenizer.json')), 'the tokenizer is saved beside the model');
  const clf = await loadTextClassifier(model);
  try {
    assert.deepEqual(clf.labels, ['ham', 'spam']);
    const r = await classifyTexts(clf, ['win free money prize today', 'meeting report lunch project please']);
    assert.equal(r.probabilities.length, 4);
    for (let i = 0; i < 2; i++) assert.ok(Math.abs(r.probabilities[2 * i]! + r.probabilities[2 * i + 1]! - 1) < 1e-5);
  } finally {
    await clf.session.release();
  }
});

test('graft adapt --encoder --method auto tries the text methods and picks one without target labels', async () => {
  const out = path.join(tmp, 'auto');
  await graft([...common, '--method', 'auto', '--candidates', 'source-only,mcc,dan', '--out', out]);
  const doc = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
  const ims = doc.auto.candidates.map((c: { target_im: number }) => c.target_im);
  assert.equal(doc.auto.pick.method, doc.auto.candidates[ims.indexOf(Math.max(...ims))].method);
  assert.ok(fs.existsSync(path.join(out, 'model.tokenizer.json')));
});

test('graft adapt --optimizer adam trains with Adam (recorded in the run), and --momentum is refused with it', async () => {
  const weights = async (optimizer: string) => {
    const out = path.join(tmp, `opt-${optimizer}`);
    await graft([...common, '--method', 'source-only', '--optimizer', optimizer, '--lr', '0.01', '--out', out]);
    assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')).optimizer, optimizer);
    return fs.readFileSync(path.join(out, 'model.onnx'));
  };
  const [sgdModel, adamModel] = [await weights('sgd'), await weights('adam')];
  assert.ok(!sgdModel.equals(adamModel), 'the same run with Adam ends with other weights than with SGD');
  await assert.rejects(graft([...common, '--optimizer', 'adam', '--momentum', '0.5']), /train\.optimizer\.momentum \(from --momentum\): applies to sgd only/);
});

test('graft adapt --encoder: image-only flags and image-only methods are clear errors', async () => {
  await assert.rejects(graft([...common, '--image-size', '32']), /--image-size\/--channels \(model.preprocess\) does not apply with --encoder/);
  await assert.rejects(graft([...common, '--unfreeze-last', '1']), /--unfreeze-last \(adapt.unfreezeLast\) does not apply with --encoder/);
  await assert.rejects(graft([...common, '--method', 'fixmatch']), /fixmatch cannot adapt text: .*Use source-only, coral/);
  await assert.rejects(graft([...common, '--compare', 'mcc,adabn']), /adabn cannot adapt text/);
  await assert.rejects(graft([...common.slice(0, 4), '--encoder', 'glovez']), /Text encoder ".*glovez" is neither a known name \(tfidf, glove/);
});
