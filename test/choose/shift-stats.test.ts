/** The shift measures on synthetic Gaussians whose answers are known in closed form. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mmdTest, momentSummary, pairwiseSqDist, proxyADistance, rows } from '../../src/choose/shift-stats.js';
import { Rng } from '../../src/tensor.js';

/** n samples of N(mean, s²I) in d dimensions. */
function gaussian(n: number, d: number, seed: number, mean: number[] = [], s = 1) {
  const rng = new Rng(seed);
  const x = new Float32Array(n * d);
  for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) x[i * d + k] = (mean[k] ?? 0) + s * rng.normal();
  return rows(x, d);
}

/** Standard normal CDF (Abramowitz–Stegun 7.1.26 through erf). */
function phi(z: number): number {
  const t = 1 / (1 + 0.3275911 * (Math.abs(z) / Math.SQRT2));
  const erf = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-(z * z) / 2);
  return z >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}

test('pairwise squared distances are exact on a small case', () => {
  const d = pairwiseSqDist(rows(Float32Array.from([0, 0, 3, 4, 1, 1]), 2));
  assert.deepEqual([...d], [0, 25, 2, 25, 0, 13, 2, 13, 0]);
});

test('MMD² matches the closed form for two Gaussians, and the permutation test separates shift from none', () => {
  // k = exp(−‖x−y‖²/2σ²), x ~ N(μ1, I), y ~ N(μ2, I) in d dims: E k = (σ²/(σ²+2))^(d/2) · exp(−Δ²/(2(σ²+2)))
  const d = 2;
  const sigma = 1;
  const c = (sigma ** 2 / (sigma ** 2 + 2)) ** (d / 2);
  const delta = 1;
  const expected = 2 * c * (1 - Math.exp(-(delta ** 2) / (2 * (sigma ** 2 + 2))));
  const a = gaussian(400, d, 1);
  const b = gaussian(400, d, 2, [delta, 0]);
  const r = mmdTest(a, b, { sigma, permutations: 100, seed: 0 });
  assert.ok(Math.abs(r.mmd2 - expected) < 0.025, `MMD² ${r.mmd2}, closed form ${expected}`);
  assert.equal(r.pValue, 1 / 101, 'no permutation reaches the observed MMD² of a real shift');
  // same distribution: MMD² ≈ 0 (unbiased: it may go below 0) and a p-value that is not small
  const same = mmdTest(a, gaussian(400, d, 3), { sigma, permutations: 100, seed: 0 });
  assert.ok(Math.abs(same.mmd2) < 0.01, `MMD² ${same.mmd2}`);
  assert.ok(same.pValue > 0.05, `p ${same.pValue}`);
  // unbiased: over draws of one distribution MMD² averages 0 (the biased V-statistic would average 2(1 − c)/n ≈ 0.0067 here)
  let sum = 0;
  for (let k = 0; k < 20; k++) sum += mmdTest(gaussian(200, d, 100 + k), gaussian(200, d, 200 + k), { sigma, permutations: 0 }).mmd2;
  assert.ok(Math.abs(sum / 20) < 0.002, `mean MMD² under no shift ${sum / 20}`);
  // the median heuristic: σ² = median pairwise squared distance; for N(0, I) in 2-D, ‖x − y‖² ~ 2·χ²₂ → median 4 ln 2
  const med = mmdTest(a, gaussian(400, d, 3), { permutations: 10 });
  assert.ok(Math.abs(med.sigma ** 2 - 4 * Math.LN2) < 0.2, `σ² ${med.sigma ** 2}, expected ${4 * Math.LN2}`);
  // seeded: the same seed gives the same p-value
  assert.equal(mmdTest(a, b, { permutations: 20, seed: 5 }).pValue, mmdTest(a, b, { permutations: 20, seed: 5 }).pValue);
});

test('the proxy A-distance matches 2(1 − 2ε) with ε the Bayes error of two Gaussians', () => {
  // N(0, I) vs N(Δe₁, I): the best linear classifier errs with probability Φ(−Δ/2)
  for (const delta of [1, 2, 3]) {
    const eps = phi(-delta / 2);
    const r = proxyADistance(gaussian(2000, 4, 10 + delta), gaussian(2000, 4, 20 + delta, [delta]), { seed: 0 });
    const expected = 2 * (1 - 2 * eps);
    assert.ok(Math.abs(r.aDistance - expected) < 0.1, `Δ ${delta}: A ${r.aDistance}, expected ${expected}`);
    assert.equal(r.heldOut, 2000);
  }
  const none = proxyADistance(gaussian(1000, 4, 1), gaussian(1000, 4, 2), { seed: 0 });
  assert.ok(none.aDistance < 0.15, `A ${none.aDistance}`);
  const far = proxyADistance(gaussian(500, 4, 1), gaussian(500, 4, 2, [20]), { seed: 0 });
  assert.equal(far.aDistance, 2);
});

test('the class-free summaries: exact under a translation and a scaling', () => {
  const a = gaussian(300, 3, 4);
  const shiftBy = [3, 0, -4];
  const t = rows(
    a.x.map((v, i) => v + shiftBy[i % 3]!),
    3,
  );
  const s = momentSummary(a, t);
  let meanNorm = 0;
  for (let i = 0; i < a.n; i++) meanNorm += Math.hypot(a.x[3 * i]!, a.x[3 * i + 1]!, a.x[3 * i + 2]!) / a.n;
  assert.ok(Math.abs(s.meanDistance - 5 / meanNorm) < 1e-4, `${s.meanDistance} vs ${5 / meanNorm}`);
  assert.ok(s.coral < 1e-9, `a translation leaves the covariance: CORAL ${s.coral}`);
  const scaled = momentSummary(
    a,
    rows(
      a.x.map((v) => 2 * v),
      3,
    ),
  );
  assert.ok(Math.abs(scaled.normRatio - 2) < 1e-5, `norm ratio ${scaled.normRatio}`);
  assert.ok(Math.abs(scaled.covRelative - 3) < 1e-5, `C' = 4C → ‖C' − C‖/‖C‖ = 3, got ${scaled.covRelative}`);
});

test('bad input is one clear error', () => {
  assert.throws(() => rows(new Float32Array(5), 2), /5 values are not whole rows of 2/);
  assert.throws(() => mmdTest(gaussian(10, 2, 1), gaussian(10, 3, 1)), /2 and 3 features per row.*same backbone/);
  assert.throws(() => proxyADistance(gaussian(2, 2, 1), gaussian(10, 2, 1)), /at least 4 rows per domain/);
});
