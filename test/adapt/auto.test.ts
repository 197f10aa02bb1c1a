/**
 * `adapt({ method: 'auto' })`: the unsupervised validators on synthetic predictions with known orderings, and
 * the whole auto path on the toy shift (test/adapt/toy.ts): the pick is the validator's argmax over every
 * candidate, its scores are the returned model's, and target labels cannot change it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  adapt,
  argmaxBy,
  defaultCandidates,
  imScore,
  meanEntropy,
  parseValidator,
  scoreModel,
  snd,
  unlabelledArrays,
  VALIDATORS,
  validatorScore,
} from '../../src/adapt/index.js';
import { mlp } from '../../src/nn/index.js';
import { ADAPT_VALIDATORS } from '../../src/run/config.js';
import { ArraySource } from '../../src/step/batches.js';
import { Rng } from '../../src/tensor.js';
import { blobs } from './toy.js';

/** n predictions over c classes: row i is class (i mod c) with probability `conf`, the rest spread evenly. */
function preds(n: number, c: number, conf: number, classOf: (i: number) => number = (i) => i % c): Float32Array {
  const p = new Float32Array(n * c).fill((1 - conf) / (c - 1));
  for (let i = 0; i < n; i++) p[i * c + classOf(i)] = conf;
  return p;
}

/** n random probability rows (softmax of Gaussian logits ×3). */
function randomPreds(n: number, c: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const p = new Float32Array(n * c);
  for (let i = 0; i < n; i++) {
    let z = 0;
    for (let k = 0; k < c; k++) z += p[i * c + k] = Math.exp(3 * rng.normal());
    for (let k = 0; k < c; k++) p[i * c + k]! /= z;
  }
  return p;
}

test('IM: ln C for confident balanced predictions, 0 for uniform or collapsed ones, in between for soft ones', () => {
  const n = 100;
  const c = 5;
  assert.ok(Math.abs(imScore(preds(n, c, 1), n, c) - Math.log(c)) < 1e-6);
  assert.ok(Math.abs(imScore(preds(n, c, 1 / c), n, c)) < 1e-6, 'uniform predictions carry no information');
  assert.ok(
    Math.abs(
      imScore(
        preds(n, c, 1, () => 0),
        n,
        c,
      ),
    ) < 1e-6,
    'all in one class: confident but collapsed',
  );
  const soft = imScore(preds(n, c, 0.7), n, c);
  assert.ok(soft > 0.1 && soft < Math.log(c) - 0.1, `soft ${soft}`);
  // the entropy validator cannot tell collapsed from balanced; IM can
  assert.ok(
    Math.abs(
      meanEntropy(
        preds(n, c, 1, () => 0),
        n,
        c,
      ) - meanEntropy(preds(n, c, 1), n, c),
    ) < 1e-6,
  );
});

test('SND: well-clustered predictions score ln(cluster size − 1); scattered predictions score lower', () => {
  const n = 60;
  const c = 10;
  // one-hot, 6 per class: each row's similarity softmax is uniform over its 5 cluster-mates (e^(1/0.05) ≫ the rest)
  const clustered = snd(preds(n, c, 1), n, c);
  assert.ok(Math.abs(clustered - Math.log(5)) < 1e-3, `SND ${clustered} vs ln 5 = ${Math.log(5)}`);
  // predictions scattered over the simplex: each row's softmax concentrates on its nearest few rows
  const scattered = snd(randomPreds(n, c, 1), n, c);
  assert.ok(scattered < clustered - 0.2, `scattered ${scattered} vs clustered ${clustered}`);
  // its known weak spot: one collapsed cluster is even denser
  assert.ok(
    snd(
      preds(n, c, 1, () => 0),
      n,
      c,
    ) > clustered,
  );
});

test('validators are oriented so that higher wins, and argmax picks the first best', () => {
  const a = { snd: 2, target_entropy: 0.5, target_im: 0.1 };
  const b = { snd: 1, target_entropy: 0.2, target_im: 0.3 };
  assert.equal(argmaxBy([a, b], 'snd'), 0);
  assert.equal(argmaxBy([a, b], 'entropy'), 1);
  assert.equal(argmaxBy([a, b], 'im'), 1);
  assert.equal(argmaxBy([a, a], 'snd'), 0);
  assert.equal(validatorScore('entropy', a), -0.5);
  assert.equal(parseValidator(' IM '), 'im');
  assert.deepEqual([...VALIDATORS], [...ADAPT_VALIDATORS], 'the config schema accepts exactly the validators');
  assert.throws(() => parseValidator('accuracy'), /unknown validator "accuracy".*snd, entropy, im.*target labels/);
});

const source = blobs(256, 1, 0);
const targetX = blobs(256, 2, 30).x;
const targetTest = blobs(256, 3, 30);
const net = (seed: number) => mlp([16, 8], 2, { batchNorm: true, inFeatures: 2 }).build({ seed });
const quick = { epochs: 2, batchSize: 32, lr: 0.05, evalEvery: 1e9, select: 'last' as const };

test("method 'auto' picks the validator's argmax over every candidate, from unlabelled target images only", async () => {
  const candidates = ['source-only', 'adabn', 'mcc', 'coral'] as const;
  // the target holds no labels at all; the labelled target copy is for reporting only
  const target = unlabelledArrays(targetX, [2]);
  const r = await adapt({
    ...quick,
    model: net,
    source,
    target,
    targetEval: targetTest,
    method: 'auto',
    candidates: [...candidates],
    seeds: [0, 1],
    validator: 'snd',
  });
  const auto = r.auto!;
  assert.equal(auto.validator, 'snd');
  assert.equal(auto.candidates.length, 8);
  assert.deepEqual(
    auto.candidates.map((c) => `${c.method}/${c.seed}`),
    [0, 1].flatMap((s) => candidates.map((m) => `${m}/${s}`)),
  );
  const best = Math.max(...auto.candidates.map((c) => c.snd));
  const pick = auto.candidates.find((c) => c.method === auto.pick.method && c.seed === auto.pick.seed)!;
  assert.equal(pick.snd, best, 'the pick has the highest SND');
  assert.equal(r.method, pick.method);
  assert.equal(r.seed, pick.seed);
  // the returned model is the pick: rescored independently on the same (whole, 256 < 1000) target sample
  const again = await scoreModel(r.model, { targetSample: target });
  assert.ok(Math.abs(again.snd - pick.snd) < 1e-9, `${again.snd} vs ${pick.snd}`);
  assert.ok(auto.candidates.every((c) => c.target_acc !== undefined && c.target_acc > 0.3));
  assert.match(auto.reason, /^picked \S+ \(seed \d\): the highest SND .* of 8 candidates; runner-up .*No target label was read\.$/);
  assert.equal(auto.rows.length, 4);
  assert.equal(auto.runs.length, 8);

  // target labels cannot move the pick: scrambled evaluation labels change only the reported accuracies
  const rng = new Rng(9);
  const wrong = new ArraySource(
    targetTest.x,
    Int32Array.from({ length: 256 }, () => rng.int(2)),
    [2],
    2,
  );
  const r2 = await adapt({
    ...quick,
    model: net,
    source,
    target,
    targetEval: wrong,
    method: 'auto',
    candidates: [...candidates],
    seeds: [0, 1],
    validator: 'snd',
  });
  assert.deepEqual(r2.auto!.pick, auto.pick);
  assert.deepEqual(
    r2.auto!.candidates.map((c) => c.snd),
    auto.candidates.map((c) => c.snd),
  );
  assert.notDeepEqual(
    r2.auto!.candidates.map((c) => c.target_acc),
    auto.candidates.map((c) => c.target_acc),
  );
});

test("method 'auto' with the default validator (IM); the auto options are refused without it", async () => {
  const target = unlabelledArrays(targetX, [2]);
  const r = await adapt({ ...quick, model: net(0), source, target, method: 'auto', candidates: ['source-only', 'mcc'], seed: 3 });
  assert.equal(r.auto!.validator, 'im');
  const cs = r.auto!.candidates;
  assert.deepEqual(
    cs.map((c) => c.seed),
    [3, 3],
  );
  assert.equal(r.method, cs[argmaxBy(cs, 'im')]!.method);
  assert.match(r.auto!.reason, /highest IM/);
  assert.equal(cs[0]!.target_acc, undefined, 'no targetEval: no accuracy');
  await assert.rejects(adapt({ ...quick, model: net(0), source, target, method: 'mcc', candidates: ['mcc'] }), /apply to method 'auto' only/);
  assert.deepEqual(defaultCandidates(mlp([4], 2, { inFeatures: 2 }).build({ seed: 0 })).includes('adabn'), false);
  assert.ok(defaultCandidates(net(0)).includes('adabn'));
});
