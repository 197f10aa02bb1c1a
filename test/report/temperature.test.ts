import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fitTemperature, logitsFromProbabilities, softmaxWithTemperature } from '../../src/report/temperature.js';

/** An overconfident val set: logits 8 for the predicted class, 0 elsewhere (p ≈ 0.999), but only 70 % right. */
function overconfident(n = 200, k = 4): { logits: Float32Array; labels: Int32Array } {
  const logits = new Float32Array(n * k);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const pred = i % k;
    logits[i * k + pred] = 8;
    labels[i] = i % 10 < 7 ? pred : (pred + 1) % k;
  }
  return { logits, labels };
}

test('temperature scaling: an overconfident val set gets T > 1, and NLL and ECE go down; predictions do not change', () => {
  const { logits, labels } = overconfident();
  const fit = fitTemperature(logits, 4, labels);
  assert.ok(fit.temperature > 1, `T ${fit.temperature}`);
  assert.ok(fit.after.nll < fit.before.nll - 0.5, `NLL ${fit.before.nll} -> ${fit.after.nll}`);
  assert.ok(fit.after.ece < fit.before.ece / 4, `ECE ${fit.before.ece} -> ${fit.after.ece}`);
  // the optimum of this set is where the top probability equals the accuracy, 0.7: e^(8/T) / (e^(8/T) + 3) = 0.7
  const top = softmaxWithTemperature(logits.subarray(0, 4), 4, fit.temperature)[0]!;
  assert.ok(Math.abs(top - 0.7) < 0.01, `calibrated top p ${top}`);
});

test('temperature scaling: an underconfident val set gets T < 1; log-probabilities give the same fit as logits', () => {
  const n = 100;
  const logits = new Float32Array(n * 2);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    logits[i * 2] = 0.5; // always right at p 0.62
    labels[i] = 0;
  }
  const fit = fitTemperature(logits, 2, labels);
  assert.ok(fit.temperature < 1, `T ${fit.temperature}`);
  const viaProbs = fitTemperature(logitsFromProbabilities(softmaxWithTemperature(logits, 2, 1)), 2, labels);
  assert.ok(Math.abs(viaProbs.temperature - fit.temperature) < 1e-3 * fit.temperature);
  assert.throws(() => fitTemperature(new Float32Array(3), 2, [0]), /3 logits do not make 1 rows of 2 classes/);
});
