/**
 * `--ensemble k`: the top-k candidates as one standard ONNX model whose probabilities are the mean of the
 * members' softmax, loaded and run by the same path as `graft predict` (loadClassifier + classifyFiles), and
 * `adapt({ method: 'auto', ensemble })` exporting exactly the top-k of the validator.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { adapt, argmaxBy, ensembleModel, predictProbabilities, scoreModel, unlabelledArrays, validatorScore } from '../../src/adapt/index.js';
import { parsePreprocessConfig } from '../../src/data/preprocess.js';
import { mlp, smallCNN } from '../../src/nn/index.js';
import { classifyFiles, loadClassifier } from '../../src/train/classify.js';
import { Network } from '../../src/train/network.js';
import { blobs } from './toy.js';

/** Row-wise mean of probability arrays. */
const meanOf = (ps: Float32Array[]) => ps[0]!.map((_, i) => ps.reduce((a, p) => a + p[i]!, 0) / ps.length);
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);

test('an ensemble saved as model.onnx loads like any classifier, and its probabilities are the mean of the members’ softmax', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-ensemble-'));
  try {
    const preprocess = parsePreprocessConfig({ size: 8, channels: 1, resize: 'stretch' });
    const labels = ['a', 'b', 'c'];
    const members = [0, 1, 2].map((seed) => smallCNN({ classes: 3, width: 4, imageSize: 8 }).build({ inputShape: ['N', 1, 8, 8], seed }));
    const files: string[] = [];
    for (let i = 0; i < 5; i++) {
      const f = path.join(dir, `img${i}.png`);
      const px = Buffer.from(Array.from({ length: 64 }, (_, j) => (j * (i + 3) * 37) % 256));
      await sharp(px, { raw: { width: 8, height: 8, channels: 1 } })
        .png()
        .toFile(f);
      files.push(f);
    }
    const classify = async (file: string) => {
      const clf = await loadClassifier(file);
      try {
        return (await classifyFiles(clf, files, { strict: true })).probabilities;
      } finally {
        await clf.session.release();
      }
    };
    const each: Float32Array[] = [];
    for (const [i, m] of members.entries()) {
      new Network(m, { preprocess, labels }).save(path.join(dir, `member${i}.onnx`));
      each.push(await classify(path.join(dir, `member${i}.onnx`)));
    }
    const ens = ensembleModel(members);
    assert.equal(ens.metadata['graft.ensemble'], '3');
    assert.ok(
      ens.graph.nodes.every((n) => !n.domain),
      'standard ONNX ops only',
    );
    new Network(ens, { preprocess, labels }).save(path.join(dir, 'model.onnx'));
    const p = await classify(path.join(dir, 'model.onnx'));
    const want = meanOf(each);
    assert.ok(maxDiff(p, want) < 1e-6, `ensemble vs mean of members: ${maxDiff(p, want)}`);
    // the members disagree, so the mean is not any one member's output
    assert.ok(maxDiff(each[0]!, each[1]!) > 1e-3);
    assert.ok(maxDiff(p, each[0]!) > 1e-4);
    assert.equal(ensembleModel([members[0]!]).graph.nodes.length, members[0]!.graph.nodes.length, 'one member: the model itself');
    assert.throws(() => ensembleModel([]), /no models given/);
    const other = smallCNN({ classes: 4, width: 4, imageSize: 8 }).build({ inputShape: ['N', 1, 8, 8], seed: 0 });
    assert.throws(() => ensembleModel([members[0]!, other]), /member 1 predicts 4 classes, the first member 3/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

const source = blobs(256, 1, 0);
const targetX = blobs(256, 2, 30).x;
const targetTest = blobs(256, 3, 30);
const net = (seed: number) => mlp([16, 8], 2, { batchNorm: true, inFeatures: 2 }).build({ seed });
const quick = { epochs: 2, batchSize: 32, lr: 0.05, evalEvery: 1e9, select: 'last' as const };

test("method 'auto' with ensemble k exports the mean softmax of the validator's top k (method × seed) runs", async () => {
  const target = unlabelledArrays(targetX, [2]);
  const candidates = ['source-only', 'adabn', 'mcc', 'coral'];
  const base = { ...quick, model: net, source, target, targetEval: targetTest, method: 'auto' as const, candidates, seeds: [0, 1] };
  const one = await adapt(base);
  const r = await adapt({ ...base, ensemble: 3 });
  const cs = r.auto!.candidates;
  // the same runs as without the ensemble (it only changes what is exported)
  assert.deepEqual(
    cs.map((c) => c.target_im),
    one.auto!.candidates.map((c) => c.target_im),
  );
  assert.deepEqual(r.auto!.pick, one.auto!.pick);
  const ranked = [...cs].sort((a, b) => validatorScore('im', b) - validatorScore('im', a)).slice(0, 3);
  assert.deepEqual(
    r.auto!.ensemble!.members,
    ranked.map((c) => ({ method: c.method, seed: c.seed })),
  );
  assert.deepEqual(r.auto!.ensemble!.members[0], r.auto!.pick);
  assert.equal(cs[argmaxBy(cs, 'im')]!.method, r.method);
  assert.match(r.auto!.reason, /Exported the mean softmax of the top 3 by IM: \S+ \(seed \d\), \S+ \(seed \d\), \S+ \(seed \d\)/);

  // the exported model is the mean of the members' softmax, each member rebuilt as its own single-method run
  const memberProbs: Float32Array[] = [];
  for (const m of r.auto!.ensemble!.members) {
    const single = await adapt({ ...quick, model: net(m.seed), source, target, targetEval: targetTest, method: m.method, seed: m.seed });
    memberProbs.push((await predictProbabilities(single.model, targetTest)).p);
  }
  const got = await predictProbabilities(r.model, targetTest, true);
  assert.ok(maxDiff(got.p, meanOf(memberProbs)) < 1e-5, `exported vs mean of members: ${maxDiff(got.p, meanOf(memberProbs))}`);
  // its reported scores are its own, on the common target sample (here the whole 256-image target)
  const again = await scoreModel(r.model, { targetSample: target, targetEval: targetTest });
  assert.ok(Math.abs(again.target_im - r.auto!.ensemble!.target_im) < 1e-9);
  assert.ok(Math.abs(again.target_acc! - r.auto!.ensemble!.target_acc!) < 1e-9);
  assert.equal(r.selected.target_acc, r.auto!.ensemble!.target_acc);

  await assert.rejects(adapt({ ...base, ensemble: 9 }), /ensemble 9 needs at least 9 candidate runs.*give 8/);
  await assert.rejects(adapt({ ...base, ensemble: 0 }), /ensemble must be a positive integer/);
  await assert.rejects(adapt({ ...quick, model: net(0), source, target, method: 'mcc', ensemble: 2 }), /apply to method 'auto' only/);
});
