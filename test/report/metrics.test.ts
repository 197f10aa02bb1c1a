import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  accuracy,
  argmaxRows,
  calibration,
  classificationMetrics,
  classReport,
  confusionMatrix,
  expectedCalibrationError,
  negativeLogLikelihood,
  topKAccuracy,
  topKRow,
} from '../../src/report/metrics.js';

const close = (a: number, b: number, tol = 1e-9, what = '') => assert.ok(Math.abs(a - b) <= tol, `${what} ${a} != ${b}`);

// 4 samples, 3 classes. Hand-computed below.
const P = {
  classes: 3,
  probabilities: new Float64Array([
    0.7,
    0.2,
    0.1, // pred 0, label 0: correct
    0.1,
    0.6,
    0.3, // pred 1, label 2: wrong (label is 2nd)
    0.2,
    0.3,
    0.5, // pred 2, label 2: correct
    0.4,
    0.35,
    0.25, // pred 0, label 1: wrong (label is 2nd)
  ]),
};
const Y = [0, 2, 2, 1];

test('argmax, accuracy and top-k accuracy on a hand-computed case', () => {
  assert.deepEqual([...argmaxRows(P)], [0, 1, 2, 0]);
  close(accuracy(P, Y), 0.5);
  close(topKAccuracy(P, Y, 1), 0.5);
  close(topKAccuracy(P, Y, 2), 1);
  close(topKAccuracy(P, Y, 3), 1);
  assert.deepEqual(
    topKRow(P, 3, 2).map((t) => t.index),
    [0, 1],
  );
  // ties: argmax takes the lowest index; a tie with a lower index ranks the label lower
  const tie = { classes: 2, probabilities: [0.5, 0.5, 0.5, 0.5] };
  assert.deepEqual([...argmaxRows(tie)], [0, 0]);
  close(accuracy(tie, [0, 1]), 0.5);
  close(accuracy({ classes: 2, probabilities: [] }, []), 0);
  assert.throws(() => accuracy(P, [0, 1]), /4 probability rows but 2 labels/);
  assert.throws(() => accuracy(P, [0, 1, 2, 3]), /label 3 of row 3 is not a class index in 0\.\.2/);
  assert.throws(() => topKAccuracy(P, Y, 0), /k must be a positive integer/);
});

test('confusion matrix and per-class precision / recall / F1 with macro and weighted averages', () => {
  const cm = confusionMatrix(argmaxRows(P), Y, 3);
  assert.deepEqual(cm, [
    [1, 0, 0],
    [1, 0, 0],
    [0, 1, 1],
  ]);
  const r = classReport(cm);
  // class 0: TP 1, predicted 2, support 1 → P 0.5, R 1, F1 2/3
  close(r.perClass[0]!.precision, 0.5);
  close(r.perClass[0]!.recall, 1);
  close(r.perClass[0]!.f1, 2 / 3);
  // class 1: TP 0, predicted 1 → P 0, R 0, F1 0
  assert.deepEqual(r.perClass[1], { precision: 0, recall: 0, f1: 0, support: 1 });
  // class 2: TP 1, predicted 1, support 2 → P 1, R 0.5, F1 2/3
  close(r.perClass[2]!.precision, 1);
  close(r.perClass[2]!.recall, 0.5);
  close(r.perClass[2]!.f1, 2 / 3);
  close(r.macro.precision, 0.5);
  close(r.macro.recall, 0.5);
  close(r.macro.f1, 4 / 9);
  // weighted by support 1, 1, 2 (total 4)
  close(r.weighted.precision, (0.5 + 0 + 2) / 4);
  close(r.weighted.recall, (1 + 0 + 1) / 4);
  close(r.weighted.f1, (2 / 3 + 0 + 4 / 3) / 4);
  // a class absent from labels and predictions does not dilute the macro average
  const r4 = classReport([
    [1, 0, 0, 0],
    [1, 0, 0, 0],
    [0, 1, 1, 0],
    [0, 0, 0, 0],
  ]);
  assert.deepEqual(r4.present, [0, 1, 2]);
  close(r4.macro.f1, 4 / 9);
  assert.throws(() => confusionMatrix([0, 3], [0, 1], 3), /row 1 has label 1 \/ prediction 3 outside 0\.\.2/);
});

test('NLL is the mean −log p of the true class, clamped for zero probabilities', () => {
  close(negativeLogLikelihood(P, Y), -(Math.log(0.7) + Math.log(0.3) + Math.log(0.5) + Math.log(0.35)) / 4, 1e-12);
  close(negativeLogLikelihood({ classes: 2, probabilities: [1, 0] }, [1]), -Math.log(1e-12), 1e-9);
  close(negativeLogLikelihood({ classes: 2, probabilities: [1, 0] }, [0]), 0);
});

test('ECE: 0 for a perfectly calibrated toy, > 0 (and the hand value) for an overconfident one', () => {
  // 10 rows at confidence 0.7, 7 of them right: calibrated.
  const rows: number[] = [];
  const labels: number[] = [];
  for (let i = 0; i < 10; i++) {
    rows.push(0.7, 0.3);
    labels.push(i < 7 ? 0 : 1);
  }
  const cal = { classes: 2, probabilities: new Float32Array(rows) };
  close(expectedCalibrationError(cal, labels), 0, 1e-6, 'calibrated ECE');
  // all rows at confidence 0.9 but only half right: ECE = |0.5 - 0.9| = 0.4
  const over = { classes: 2, probabilities: new Float32Array(Array.from({ length: 10 }, () => [0.9, 0.1]).flat()) };
  const overLabels = labels.map((_, i) => (i < 5 ? 0 : 1));
  const ece = expectedCalibrationError(over, overLabels);
  assert.ok(ece > 0);
  close(ece, 0.4, 1e-6, 'overconfident ECE');
  // two bins populated: 4 rows at 0.95 all right (gap 0.05), 4 rows at 0.55 with 1 right (gap 0.3)
  const mixed = { classes: 2, probabilities: [...Array(4).fill([0.95, 0.05]).flat(), ...Array(4).fill([0.55, 0.45]).flat()] };
  const c = calibration(mixed, [0, 0, 0, 0, 0, 1, 1, 1]);
  close(c.ece, 0.5 * 0.05 + 0.5 * 0.3, 1e-12, 'mixed ECE');
  close(c.mce, 0.3, 1e-12);
  assert.equal(c.bins.length, 15);
  assert.equal(c.bins[14]!.count, 4, '0.95 falls in (14/15, 1]');
  assert.equal(c.bins[8]!.count, 4, '0.55 falls in (8/15, 9/15]');
  close(c.bins[8]!.accuracy, 0.25);
  // bin edges are (lo, hi]: a confidence of exactly 2/3 = 10/15 goes into bin 9, not 10
  const edge = calibration({ classes: 2, probabilities: [10 / 15, 5 / 15] }, [0], 15);
  assert.equal(edge.bins[9]!.count, 1);
  assert.throws(() => calibration(cal, labels, 0), /bins must be a positive integer/);
});

test('classificationMetrics bundles everything and clamps top-k to the class count', () => {
  const m = classificationMetrics(P, Y, { topK: 5 });
  assert.equal(m.n, 4);
  assert.deepEqual(m.topK, { k: 3, accuracy: 1 });
  close(m.accuracy, 0.5);
  assert.equal(m.confusion[2]![1], 1);
  assert.equal(m.calibration.bins.length, 15);
});

test('rows with NaN (or infinite) values never score: wrong for accuracy, top-k, recall and calibration', () => {
  // row 0 correct; rows 1 and 2 NaN (labels 0 and 1); row 3 has an Infinity (label 2)
  const p = {
    classes: 3,
    probabilities: new Float64Array([0.8, 0.1, 0.1, Number.NaN, 0.5, 0.5, Number.NaN, Number.NaN, Number.NaN, 0, 0, Number.POSITIVE_INFINITY]),
  };
  const labels = [0, 0, 1, 2];
  assert.deepEqual([...argmaxRows(p)], [0, -1, -1, -1]);
  assert.equal(accuracy(p, labels), 0.25);
  assert.equal(topKAccuracy(p, labels, 3), 0.25, 'top-k with k = classes still misses the NaN rows');
  const m = classificationMetrics(p, labels, { topK: 3 });
  assert.equal(m.nonFinite, 3);
  assert.deepEqual(m.confusion, [
    [1, 0, 0],
    [0, 0, 0],
    [0, 0, 0],
  ]);
  assert.deepEqual(
    m.report.perClass.map((c) => [c.recall, c.support]),
    [
      [0.5, 2],
      [0, 1],
      [0, 1],
    ],
  );
  // three rows wrong at confidence 1 (last bin, gap 1), one right at 0.8 (gap 0.2): (3·1 + 0.2) / 4
  close(m.calibration.ece, 0.8, 1e-9, 'ece');
  close(m.nll, (-Math.log(0.8) - 3 * Math.log(1e-12)) / 4, 1e-9, 'nll');
  assert.deepEqual(
    topKRow(p, 1, 3).map((t) => t.index),
    [1, 2, 0],
    'NaN ranks last',
  );
  // all NaN: nothing right, maximal calibration error
  const all = { classes: 3, probabilities: new Float32Array(6).fill(Number.NaN) };
  const a = classificationMetrics(all, [0, 2], { topK: 3 });
  assert.equal(a.accuracy, 0);
  assert.equal(a.topK.accuracy, 0);
  assert.equal(a.calibration.ece, 1);
});
