import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classHistogram, classWeights, DEFAULT_VAL_FRACTION, kPerClass, splitTrainVal, stratifiedSplit } from '../../src/data/split.js';

const labelsOf = (counts: number[]) => {
  const out: number[] = [];
  counts.forEach((n, c) => {
    for (let i = 0; i < n; i++) out.push(c);
  });
  // interleave a bit so indices of a class are not contiguous
  return out
    .map((l, i) => [l, (i * 7919) % out.length] as const)
    .sort((a, b) => a[1] - b[1])
    .map((p) => p[0]);
};

test('stratified split: proportions per class, disjoint cover, reproducible', () => {
  const labels = labelsOf([200, 100, 40]);
  const s = stratifiedSplit(labels, { val: 0.15, test: 0.1, seed: 5 });
  const all = [...s.train, ...s.val, ...s.test].sort((a, b) => a - b);
  assert.deepEqual(
    all,
    labels.map((_, i) => i),
  );
  const hv = classHistogram(
    Array.from(s.val, (i) => labels[i]!),
    3,
  );
  const ht = classHistogram(
    Array.from(s.test, (i) => labels[i]!),
    3,
  );
  assert.deepEqual(Array.from(hv), [30, 15, 6]);
  assert.deepEqual(Array.from(ht), [20, 10, 4]);
  const again = stratifiedSplit(labels, { val: 0.15, test: 0.1, seed: 5 });
  assert.deepEqual(again, s);
  const other = stratifiedSplit(labels, { val: 0.15, test: 0.1, seed: 6 });
  assert.notDeepEqual(other.val, s.val);
  // default: 15% validation, no test
  const d = stratifiedSplit(labels);
  assert.equal(d.val.length, 30 + 15 + 6);
  assert.equal(d.test.length, 0);
});

test('stratified split keeps a training example per class and refuses tiny classes', () => {
  const s = stratifiedSplit([0, 0, 1, 1, 1, 1], { val: 0.5 });
  for (const c of [0, 1]) assert.ok(Array.from(s.train).some((i) => [0, 0, 1, 1, 1, 1][i] === c));
  const t = stratifiedSplit([0, 0, 1, 1], { val: 0.9 });
  assert.equal(t.train.length, 2);
  assert.throws(
    () => stratifiedSplit([0, 0, 0, 1], { val: 0.2, classes: ['cat', 'dog'] }),
    (e: Error) => /Class "dog" \(label 1\) has 1 example/.test(e.message) && /separate validation set/.test(e.message),
  );
  // without validation a single example is fine
  assert.deepEqual(Array.from(stratifiedSplit([0, 0, 0, 1], { val: 0 }).train), [0, 1, 2, 3]);
  assert.throws(() => stratifiedSplit([0, 1], { val: 0.6, test: 0.5 }), /together < 1/);
});

test('kPerClass samples k of each class, seeded', () => {
  const labels = labelsOf([10, 5, 8]);
  const a = kPerClass(labels, 3, 1);
  assert.equal(a.length, 9);
  assert.deepEqual(Array.from(classHistogram(Array.from(a, (i) => labels[i]!))), [3, 3, 3]);
  assert.deepEqual(kPerClass(labels, 3, 1), a);
  assert.notDeepEqual(kPerClass(labels, 3, 2), a);
  assert.throws(() => kPerClass(labels, 6, 1), /label 1\) has only 5|label 1 has only 5/);
  assert.equal(kPerClass(labels, 6, 1, { allowFewer: true }).length, 6 + 5 + 6);
});

test('class weights match sklearn balanced (n / (K * count)), mean 1 over items', () => {
  const labels = labelsOf([6, 3, 1]);
  const w = classWeights(labels);
  const expect = [10 / (3 * 6), 10 / (3 * 3), 10 / (3 * 1)];
  for (let c = 0; c < 3; c++) assert.ok(Math.abs(w[c]! - expect[c]!) < 1e-6);
  const mean = labels.reduce((s, l) => s + w[l]!, 0) / labels.length;
  assert.ok(Math.abs(mean - 1) < 1e-6);
  const w4 = classWeights([0, 0, 1], 4);
  assert.equal(w4.length, 4);
  assert.equal(w4[3], 0);
  assert.throws(() => classWeights([0, 5], 3), /outside numClasses=3/);
});

test('splitTrainVal: the one splitter — 0.15 held out by default, a stratified seeded limit before the split', () => {
  const labels = Int32Array.from({ length: 200 }, (_, i) => (i < 140 ? 0 : 1)); // 70% / 30%
  const d = splitTrainVal(labels, { seed: 4 });
  assert.equal(DEFAULT_VAL_FRACTION, 0.15);
  assert.deepEqual(d, (({ train, val }) => ({ train, val }))(stratifiedSplit(labels, { val: 0.15, seed: 4 })));
  assert.equal(d.val.length, 30);

  const l = splitTrainVal(labels, { seed: 4, limit: 100 });
  const used = [...l.train, ...l.val];
  assert.equal(used.length, 100, 'the limit counts train + validation items');
  assert.equal(new Set(used).size, 100);
  assert.equal(used.filter((i) => labels[i] === 1).length, 30, 'each class keeps its share');
  assert.equal(l.val.length, 11 + 5, 'round(70 · 0.15) + round(30 · 0.15) held out of the limited items');
  assert.ok(
    used.some((i) => i >= 70 && i < 140),
    'a seeded sample, not the first items',
  );
  assert.deepEqual(splitTrainVal(labels, { seed: 4, limit: 100 }), l, 'same seed, same split');
  assert.notDeepEqual(splitTrainVal(labels, { seed: 5, limit: 100 }).train, l.train);
  assert.deepEqual([...splitTrainVal(labels, { val: 0, limit: 10 }).val], []);
});

test("splitTrainVal limitBy 'first-train': the first n training items after the split (graft adapt's --source-samples)", () => {
  const labels = Int32Array.from({ length: 60 }, (_, i) => i % 3);
  const full = splitTrainVal(labels, { val: 0.1, seed: 2 });
  const first = splitTrainVal(labels, { val: 0.1, seed: 2, limit: 7, limitBy: 'first-train' });
  assert.deepEqual(first.val, full.val, 'validation untouched');
  assert.deepEqual(first.train, full.train.slice(0, 7));
  assert.deepEqual([...splitTrainVal(labels, { val: 0, limit: 4, limitBy: 'first-train' }).train], [0, 1, 2, 3]);
  assert.throws(() => splitTrainVal(labels, { limit: 0 }), /limit must be a positive integer, got 0/);
  assert.throws(() => splitTrainVal(labels, { limit: 2.5 }), /limit must be a positive integer/);
});
