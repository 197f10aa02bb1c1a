/**
 * Distances between two samples of feature vectors (rows of a [n, d] matrix), the measures of `graft shift`:
 *
 * - {@link mmdTest}: unbiased MMD² with a Gaussian kernel (median-heuristic bandwidth) and a seeded
 *   permutation-test p-value;
 * - {@link proxyADistance}: 2(1 − 2ε), ε the held-out error of a logistic-regression domain classifier;
 * - {@link momentSummary}: class-free summaries (mean distance, CORAL distance, feature-norm ratio).
 *
 * Plain JS over Float32Array rows: the samples are small (≤ a few thousand rows), so no graph is needed.
 */
import { Rng } from '../tensor.js';
import { gramRows } from '../util/linalg.js';

/** Rows of features: `n` rows of `d` values, row-major. */
export interface FeatureRows {
  x: Float32Array;
  n: number;
  d: number;
}

/** Makes {@link FeatureRows} from a flat array; throws when it is not whole rows. */
export function rows(x: Float32Array, d: number): FeatureRows {
  if (!(d > 0) || x.length % d !== 0) throw new Error(`rows: ${x.length} values are not whole rows of ${d}; pass the feature width.`);
  return { x, n: x.length / d, d };
}

function checkPair(a: FeatureRows, b: FeatureRows, what: string, min: number): void {
  if (a.d !== b.d) throw new Error(`${what}: the two samples have ${a.d} and ${b.d} features per row; compute both with the same backbone.`);
  if (a.n < min || b.n < min) throw new Error(`${what}: needs at least ${min} rows per domain (got ${a.n} and ${b.n}); give more images.`);
}

/** Squared Euclidean distances between every pair of rows of `z` ([N, d]), as a symmetric [N, N] matrix. */
export function pairwiseSqDist(z: FeatureRows): Float64Array {
  const { x, n, d } = z;
  const g = gramRows(x, n, d); // |xi - xj|² = gii + gjj - 2 gij
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++) {
      const v = Math.max(0, g[i * n + i]! + g[j * n + j]! - 2 * g[i * n + j]!);
      out[i * n + j] = v;
      out[j * n + i] = v;
    }
  return out;
}

/** The two samples stacked: a's rows, then b's. */
function stack(a: FeatureRows, b: FeatureRows): FeatureRows {
  const x = new Float32Array((a.n + b.n) * a.d);
  x.set(a.x.subarray(0, a.n * a.d));
  x.set(b.x.subarray(0, b.n * b.d), a.n * a.d);
  return { x, n: a.n + b.n, d: a.d };
}

/** Median of the off-diagonal entries of a symmetric [n, n] matrix. */
function offDiagonalMedian(m: Float64Array, n: number): number {
  const v = new Float64Array((n * (n - 1)) / 2);
  let k = 0;
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) v[k++] = m[i * n + j]!;
  v.sort();
  const h = v.length >> 1;
  return v.length % 2 ? v[h]! : (v[h - 1]! + v[h]!) / 2;
}

/**
 * Unbiased MMD² of the first `m` points against the rest under kernel matrix `k` ([N, N]), with `perm` mapping
 * positions to points (identity when omitted): mean k within a + mean k within b (diagonals excluded) − 2 mean k across.
 */
function mmd2FromKernel(k: Float64Array, nAll: number, m: number, perm?: Int32Array): number {
  const n = nAll - m;
  let aa = 0;
  let bb = 0;
  let ab = 0;
  for (let p = 0; p < nAll; p++) {
    const i = perm ? perm[p]! : p;
    const ki = i * nAll;
    const inA = p < m;
    for (let q = p + 1; q < nAll; q++) {
      const v = k[ki + (perm ? perm[q]! : q)]!;
      if (q < m) aa += v;
      else if (inA) ab += v;
      else bb += v;
    }
  }
  return (2 * aa) / (m * (m - 1)) + (2 * bb) / (n * (n - 1)) - (2 * ab) / (m * n);
}

/** Result of {@link mmdTest}. */
export interface MmdResult {
  /** Unbiased MMD² (can be slightly negative when the samples come from the same distribution). */
  mmd2: number;
  /** Gaussian kernel bandwidth σ: k(x, y) = exp(−‖x − y‖² / (2σ²)); σ² = the median pairwise squared distance of the pooled sample. */
  sigma: number;
  /** Permutation-test p-value: (1 + #{permuted MMD² ≥ observed}) / (1 + permutations). */
  pValue: number;
  permutations: number;
}

/** Options of {@link mmdTest}. */
export interface MmdTestOptions {
  /** Permutations of the domain labels (default 200). */
  permutations?: number;
  /** Seed of the permutations (default 0). */
  seed?: number;
  /** Fixed bandwidth σ instead of the median heuristic. */
  sigma?: number;
}

/**
 * Unbiased MMD² between samples `a` and `b` with a Gaussian kernel (bandwidth by the median heuristic on the
 * pooled sample unless given) and a seeded permutation test of "both come from one distribution".
 */
export function mmdTest(a: FeatureRows, b: FeatureRows, o: MmdTestOptions = {}): MmdResult {
  checkPair(a, b, 'mmdTest', 2);
  const z = stack(a, b);
  const nAll = z.n;
  const d2 = pairwiseSqDist(z);
  const s2 = o.sigma !== undefined ? o.sigma * o.sigma : offDiagonalMedian(d2, nAll) || 1;
  const k = d2; // in place: the kernel replaces the distances
  for (let i = 0; i < k.length; i++) k[i] = Math.exp(-k[i]! / (2 * s2));
  const mmd2 = mmd2FromKernel(k, nAll, a.n);
  const permutations = o.permutations ?? 200;
  const rng = new Rng((o.seed ?? 0) + 1);
  let hits = 0;
  for (let t = 0; t < permutations; t++) if (mmd2FromKernel(k, nAll, a.n, rng.permutation(nAll)) >= mmd2) hits++;
  return { mmd2, sigma: Math.sqrt(s2), pValue: (1 + hits) / (1 + permutations), permutations };
}

/** Result of {@link proxyADistance}. */
export interface ADistanceResult {
  /** 2(1 − 2ε), clamped to [0, 2]: 0 = indistinguishable domains, 2 = perfectly separable. */
  aDistance: number;
  /** Held-out error of the domain classifier. */
  error: number;
  /** Held-out rows the error was measured on. */
  heldOut: number;
}

/** Options of {@link proxyADistance}. */
export interface ADistanceOptions {
  /** Fraction of each domain held out to measure the error (default 0.5). */
  testFraction?: number;
  /** Gradient-descent epochs of the logistic regression (default 200). */
  iterations?: number;
  /** L2 penalty on the weights (default 1e-3). */
  l2?: number;
  seed?: number;
}

/**
 * Proxy A-distance (Ben-David et al. 2007): a logistic regression (standardised features, L2-penalised,
 * full-batch gradient descent with Nesterov momentum) learns source (0) vs target (1) on a seeded half of each
 * domain; ε is its error on the other half, class-balanced (the mean of the two domains' error rates).
 */
export function proxyADistance(a: FeatureRows, b: FeatureRows, o: ADistanceOptions = {}): ADistanceResult {
  checkPair(a, b, 'proxyADistance', 4);
  const d = a.d;
  const rng = new Rng((o.seed ?? 0) + 7);
  const frac = o.testFraction ?? 0.5;
  const split = (s: FeatureRows) => {
    const p = rng.permutation(s.n);
    const nTest = Math.min(s.n - 1, Math.max(1, Math.round(s.n * frac)));
    return { train: p.subarray(nTest), test: p.subarray(0, nTest) };
  };
  const sa = split(a);
  const sb = split(b);
  const train: [FeatureRows, Int32Array, number][] = [
    [a, sa.train, 0],
    [b, sb.train, 1],
  ];
  // standardise with the training rows' mean and std
  const nTrain = sa.train.length + sb.train.length;
  const mu = new Float64Array(d);
  const sd = new Float64Array(d);
  for (const [s, idx] of train) for (const i of idx) for (let k = 0; k < d; k++) mu[k]! += s.x[i * d + k]! / nTrain;
  for (const [s, idx] of train) for (const i of idx) for (let k = 0; k < d; k++) sd[k]! += (s.x[i * d + k]! - mu[k]!) ** 2 / nTrain;
  for (let k = 0; k < d; k++) sd[k] = Math.sqrt(sd[k]!) || 1;
  const X = new Float64Array(nTrain * d);
  const Y = new Float64Array(nTrain);
  const W = new Float64Array(nTrain); // balance the two domains
  let r = 0;
  for (const [s, idx, label] of train)
    for (const i of idx) {
      for (let k = 0; k < d; k++) X[r * d + k] = (s.x[i * d + k]! - mu[k]!) / sd[k]!;
      Y[r] = label;
      W[r] = 0.5 / idx.length;
      r++;
    }
  const w = new Float64Array(d);
  const v = new Float64Array(d);
  let bias = 0;
  let vb = 0;
  const l2 = o.l2 ?? 1e-3;
  const lr = 1;
  const mom = 0.9;
  const g = new Float64Array(d);
  const look = new Float64Array(d);
  for (let it = 0; it < (o.iterations ?? 200); it++) {
    for (let k = 0; k < d; k++) look[k] = w[k]! + mom * v[k]!;
    const lookB = bias + mom * vb;
    g.fill(0);
    let gb = 0;
    for (let i = 0; i < nTrain; i++) {
      let z = lookB;
      const oi = i * d;
      for (let k = 0; k < d; k++) z += X[oi + k]! * look[k]!;
      const e = (1 / (1 + Math.exp(-z)) - Y[i]!) * W[i]!;
      gb += e;
      for (let k = 0; k < d; k++) g[k]! += e * X[oi + k]!;
    }
    for (let k = 0; k < d; k++) {
      v[k] = mom * v[k]! - lr * (g[k]! + l2 * look[k]!);
      w[k]! += v[k]!;
    }
    vb = mom * vb - lr * gb;
    bias += vb;
  }
  const errorRate = (s: FeatureRows, idx: Int32Array, label: number) => {
    let wrong = 0;
    for (const i of idx) {
      let z = bias;
      for (let k = 0; k < d; k++) z += ((s.x[i * d + k]! - mu[k]!) / sd[k]!) * w[k]!;
      if (z > 0 !== (label === 1)) wrong++;
    }
    return wrong / idx.length;
  };
  const error = Math.min(0.5, (errorRate(a, sa.test, 0) + errorRate(b, sb.test, 1)) / 2);
  return { aDistance: 2 * (1 - 2 * error), error, heldOut: sa.test.length + sb.test.length };
}

/** Result of {@link momentSummary}: class-free summaries of the two feature distributions. */
export interface MomentSummary {
  /** ‖μa − μb‖ divided by the mean feature norm of `a` (scale-free). */
  meanDistance: number;
  /** Deep CORAL distance ‖Ca − Cb‖²_F / (4d²) (Sun & Saenko 2016), in the features' units squared. */
  coral: number;
  /** ‖Ca − Cb‖_F / ‖Ca‖_F: the covariance gap relative to the source's covariance (scale-free). */
  covRelative: number;
  /** Mean feature norm of `b` over that of `a`. */
  normRatio: number;
}

function moments(s: FeatureRows): { mu: Float64Array; cov: Float64Array; meanNorm: number } {
  const { x, n, d } = s;
  const mu = new Float64Array(d);
  let meanNorm = 0;
  for (let i = 0; i < n; i++) {
    let q = 0;
    for (let k = 0; k < d; k++) {
      mu[k]! += x[i * d + k]! / n;
      q += x[i * d + k]! ** 2;
    }
    meanNorm += Math.sqrt(q) / n;
  }
  const cov = new Float64Array(d * d);
  const c = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < d; k++) c[k] = x[i * d + k]! - mu[k]!;
    for (let p = 0; p < d; p++) {
      const cp = c[p]!;
      if (cp === 0) continue;
      const row = p * d;
      for (let q = p; q < d; q++) cov[row + q]! += cp * c[q]!;
    }
  }
  for (let p = 0; p < d; p++)
    for (let q = p; q < d; q++) {
      const v = cov[p * d + q]! / (n - 1);
      cov[p * d + q] = v;
      cov[q * d + p] = v;
    }
  return { mu, cov, meanNorm };
}

/** Mean distance, CORAL distance and norm ratio between samples `a` (the source) and `b` (the target). */
export function momentSummary(a: FeatureRows, b: FeatureRows): MomentSummary {
  checkPair(a, b, 'momentSummary', 2);
  const ma = moments(a);
  const mb = moments(b);
  const d = a.d;
  let dm = 0;
  for (let k = 0; k < d; k++) dm += (ma.mu[k]! - mb.mu[k]!) ** 2;
  let gap = 0;
  let ca = 0;
  for (let i = 0; i < d * d; i++) {
    gap += (ma.cov[i]! - mb.cov[i]!) ** 2;
    ca += ma.cov[i]! ** 2;
  }
  return {
    meanDistance: Math.sqrt(dm) / (ma.meanNorm || 1),
    coral: gap / (4 * d * d),
    covRelative: Math.sqrt(gap) / (Math.sqrt(ca) || 1),
    normRatio: mb.meanNorm / (ma.meanNorm || 1),
  };
}
