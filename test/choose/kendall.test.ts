import assert from 'node:assert/strict';
import { it } from 'node:test';
import { kendallTau } from '../../src/choose/kendall.js';

it('kendallTau: +1, −1, a single swap, and ties as SciPy τ-b', () => {
  assert.equal(kendallTau([1, 2, 3, 4], [10, 20, 30, 40]), 1);
  assert.equal(kendallTau([1, 2, 3, 4], [4, 3, 2, 1]), -1);
  // one discordant pair of three: (2 − 1) / 3
  assert.ok(Math.abs(kendallTau([1, 2, 3], [1, 3, 2]) - 1 / 3) < 1e-15);
  // scipy.stats.kendalltau([1, 2, 2, 3], [1, 2, 3, 4]) = 5 / sqrt(30) = 0.9128709291752769
  assert.ok(Math.abs(kendallTau([1, 2, 2, 3], [1, 2, 3, 4]) - 0.9128709291752769) < 1e-15);
  assert.ok(Number.isNaN(kendallTau([1, 1, 1], [1, 2, 3])));
  assert.throws(() => kendallTau([1, 2], [1]), /equal length/);
});
