/**
 * Every adaptation method on the synthetic shift (test/adapt/toy.ts: two Gaussian blobs per class, target
 * rotated by 30°): an MLP with BatchNorm trained from scratch on labelled source + unlabelled target.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { type AdaptResult, adapt, METHODS, type MethodName, unlabelled } from '../../src/adapt/index.js';
import { mlp } from '../../src/nn/index.js';
import { blobs, featureCovGap } from './toy.js';

const SEED = 1;
const source = blobs(512, 1, 0);
const target = blobs(512, 2, 30);
const targetTest = blobs(1024, 3, 30);
const sourceVal = blobs(512, 4, 0);
const results = new Map<MethodName, AdaptResult>();

async function run(method: MethodName): Promise<AdaptResult> {
  const model = mlp([32, 16], 2, { batchNorm: true, inFeatures: 2 }).build({ seed: SEED });
  const r = await adapt({
    model,
    method,
    seed: SEED,
    source,
    target: unlabelled(target),
    sourceVal,
    targetEval: targetTest,
    epochs: 10,
    batchSize: 32,
    lr: 0.05,
    select: 'last',
    evalEvery: 1e9,
  });
  results.set(method, r);
  return r;
}

const acc = (m: MethodName) => 100 * results.get(m)!.selected.target_acc!;

before(async () => {
  for (const m of METHODS) await run(m);
});

test('source-only learns the source but loses accuracy on the rotated target', () => {
  const r = results.get('source-only')!;
  assert.ok(r.selected.source_val_acc! > 0.98, `source val acc ${r.selected.source_val_acc}`);
  assert.ok(acc('source-only') < 92, `source-only target acc ${acc('source-only')}`);
  assert.equal(r.steps, 10 * 16);
});

for (const m of ['adabn', 'dan', 'dann', 'cdan', 'cdan+e', 'mcc', 'self-training', 'fixmatch'] as const)
  test(`${m} beats source-only on the target by ≥ 2 points, keeping the source`, () => {
    assert.ok(acc(m) >= acc('source-only') + 2, `${m}: ${acc(m).toFixed(1)} vs source-only ${acc('source-only').toFixed(1)}`);
    assert.ok(results.get(m)!.selected.source_val_acc! > 0.95);
  });

test('coral shrinks the feature covariance gap between domains without hurting the target', async () => {
  // Deep CORAL matches only second-order statistics; a rotation of this 2-D mixture can be "undone" by many
  // maps with the same covariances, so CORAL has no signal pointing at the right one. Over seeds it goes from
  // −1 to +4 points on this toy; what it reliably does is align the covariances.
  const so = await featureCovGap(results.get('source-only')!.model, sourceVal, targetTest);
  const co = await featureCovGap(results.get('coral')!.model, sourceVal, targetTest);
  assert.ok(co < 0.5 * so, `covariance gap: coral ${co} vs source-only ${so}`);
  assert.ok(acc('coral') >= acc('source-only') - 2, `coral ${acc('coral')} vs source-only ${acc('source-only')}`);
});

test('adversarial methods report the discriminator; pseudo-label methods their pseudo-label rate', () => {
  for (const m of ['dann', 'cdan', 'cdan+e'] as const) {
    const d = results.get(m)!.train.domain_acc!;
    assert.ok(d > 0.3 && d < 1, `${m} domain accuracy ${d}: the features should keep the discriminator from winning`);
  }
  for (const m of ['self-training', 'fixmatch'] as const) assert.ok(results.get(m)!.train.pseudo_rate! > 0.3);
});

test('unsupervised criteria are reported for every method', () => {
  for (const r of results.values()) {
    assert.ok(Number.isFinite(r.selected.snd) && Number.isFinite(r.selected.target_entropy));
    assert.ok(r.selected.target_entropy >= 0 && r.selected.target_entropy <= Math.log(2) + 1e-6);
  }
  // confident target predictions after MCC: lower entropy than the source-only model
  assert.ok(results.get('mcc')!.selected.target_entropy < results.get('source-only')!.selected.target_entropy);
});
