/**
 * SFDA (Shao et al., ECCV 2022, "Not All Models Are Equal: Predicting Model Transferability in a
 * Self-challenging Fisher Space"), as the authors' reference code computes it (github TencentARC/SFDA,
 * `SFDA_Score`):
 *
 * 1. a regularised Fisher discriminant: within-class scatter Sw = Σ_c p_c·cov_c, shrunk towards
 *    (tr Sw / d)·I by λ = max(exp(−5·λmax(Sw)), 1e-10) (λmax by 3 power-iteration rounds, as `iterative_A`);
 *    class scores x·Sw⁻¹μ_cᵀ − ½ μ_c Sw⁻¹ μ_cᵀ + log p_c, softmaxed. (The reference solves the generalised
 *    eigenproblem Sb v = λ Sw v and keeps every eigenvector V, so its coefficients μ V Vᵀ equal μ Sw⁻¹:
 *    a Cholesky solve gives the same numbers without the eigenproblem.)
 * 2. self-challenging ConfMix: the probabilities are softened by a second softmax, and each sample is moved
 *    towards the mean of the other classes' means by one minus its softened probability of its own class;
 * 3. the same discriminant (same λ) on the mixed features; the score is the mean probability of the true class.
 *
 * Higher is better, in (0, 1].
 */
import { cholesky, choleskySolve, toFloat64 } from '../../util/linalg.js';

/** Result of {@link sfda}. */
export interface SfdaResult {
  score: number;
  /** The shrinkage λ of the within-class scatter. */
  shrinkage: number;
}

/**
 * SFDA score of features `x` (n×d, row-major) for class `labels` (any class indices; absent ones are ignored).
 * @throws with fewer than two classes or mismatched sizes.
 */
export function sfda(x: ArrayLike<number>, n: number, d: number, labels: ArrayLike<number>): SfdaResult {
  const f = toFloat64(x, n, d, 'sfda features');
  if (labels.length !== n) throw new Error(`sfda: ${labels.length} labels for ${n} feature rows; pass one label per row.`);
  const classes = [...new Set(Array.from(labels))].sort((a, b) => a - b);
  if (classes.length < 2) throw new Error(`sfda: needs at least two classes, got ${classes.length}; rank backbones on data with several classes.`);
  const y = Int32Array.from(labels, (l) => classes.indexOf(l));
  const C = classes.length;
  const first = discriminant(f, n, d, y, C);
  // soften, then ConfMix towards the mean of the other classes' means
  const prob = first.prob;
  for (let i = 0; i < n; i++) softmaxRow(prob, i * C, C);
  const { means } = classMeans(f, n, d, y, C);
  const sum = new Float64Array(d);
  for (let c = 0; c < C; c++) for (let j = 0; j < d; j++) sum[j]! += means[c * d + j]!;
  for (let i = 0; i < n; i++) {
    const c = y[i]!;
    const p = prob[i * C + c]!;
    for (let j = 0; j < d; j++) f[i * d + j] = p * f[i * d + j]! + ((1 - p) * (sum[j]! - means[c * d + j]!)) / (C - 1);
  }
  const second = discriminant(f, n, d, y, C, first.shrinkage);
  let score = 0;
  for (let i = 0; i < n; i++) score += second.prob[i * C + y[i]!]!;
  return { score: score / n, shrinkage: first.shrinkage };
}

function classMeans(f: Float64Array, n: number, d: number, y: Int32Array, C: number): { means: Float64Array; counts: Float64Array } {
  const means = new Float64Array(C * d);
  const counts = new Float64Array(C);
  for (let i = 0; i < n; i++) {
    const c = y[i]!;
    counts[c]!++;
    for (let j = 0; j < d; j++) means[c * d + j]! += f[i * d + j]!;
  }
  for (let c = 0; c < C; c++) for (let j = 0; j < d; j++) means[c * d + j]! /= counts[c]!;
  return { means, counts };
}

/** The shrunk Fisher discriminant's class probabilities (n×C) on `f`. */
function discriminant(f: Float64Array, n: number, d: number, y: Int32Array, C: number, given?: number): { prob: Float64Array; shrinkage: number } {
  const { means, counts } = classMeans(f, n, d, y, C);
  // Sw = Σ_c (n_c/n)·cov_c (biased) = (1/n) Σ_i (x_i − μ_{y_i})(x_i − μ_{y_i})ᵀ
  const sw = new Float64Array(d * d);
  const z = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    const c = y[i]!;
    for (let j = 0; j < d; j++) z[j] = f[i * d + j]! - means[c * d + j]!;
    for (let a = 0; a < d; a++) {
      const za = z[a]!;
      if (za === 0) continue;
      const o = a * d;
      for (let b = a; b < d; b++) sw[o + b]! += za * z[b]!;
    }
  }
  for (let a = 0; a < d; a++) for (let b = a; b < d; b++) sw[b * d + a] = sw[a * d + b]! /= n;
  const shrinkage = given ?? Math.max(Math.exp(-5 * largestEigenvalue(sw, d)), 1e-10);
  let trace = 0;
  for (let a = 0; a < d; a++) trace += sw[a * d + a]!;
  for (let k = 0; k < sw.length; k++) sw[k]! *= 1 - shrinkage;
  for (let a = 0; a < d; a++) sw[a * d + a]! += (shrinkage * trace) / d;
  // coef (d×C) = Sw⁻¹ μᵀ
  const coef = new Float64Array(d * C);
  for (let c = 0; c < C; c++) for (let j = 0; j < d; j++) coef[j * C + c] = means[c * d + j]!;
  choleskySolve(choleskyJittered(sw, d), d, coef, C);
  const intercept = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    let q = 0;
    for (let j = 0; j < d; j++) q += means[c * d + j]! * coef[j * C + c]!;
    intercept[c] = -0.5 * q + Math.log(counts[c]! / n);
  }
  const prob = new Float64Array(n * C);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < C; c++) {
      let s = intercept[c]!;
      for (let j = 0; j < d; j++) s += f[i * d + j]! * coef[j * C + c]!;
      prob[i * C + c] = s;
    }
    softmaxRow(prob, i * C, C);
  }
  return { prob, shrinkage };
}

/** Cholesky of `a`, adding a growing multiple of its mean diagonal when round-off makes it indefinite. */
function choleskyJittered(a: Float64Array, d: number): Float64Array {
  let meanDiag = 0;
  for (let i = 0; i < d; i++) meanDiag += a[i * d + i]! / d;
  for (let jitter = 0, k = 0; ; k++) {
    try {
      if (!jitter) return cholesky(a, d);
      const b = Float64Array.from(a);
      for (let i = 0; i < d; i++) b[i * d + i]! += jitter;
      return cholesky(b, d);
    } catch (e) {
      if (k >= 8 || !(meanDiag > 0))
        throw new Error(`sfda: the within-class scatter is singular (${(e as Error).message}); the features are constant or hold NaN values.`);
      jitter = meanDiag * 10 ** (k - 12);
    }
  }
}

/** The largest eigenvalue of a symmetric matrix by the reference's `iterative_A` (3 double power steps). */
function largestEigenvalue(a: Float64Array, d: number): number {
  const mul = (v: Float64Array) => {
    const o = new Float64Array(d);
    for (let i = 0; i < d; i++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += a[i * d + j]! * v[j]!;
      o[i] = s;
    }
    return o;
  };
  const unit = (v: Float64Array) => {
    const norm = Math.hypot(...v) || 1;
    return v.map((x) => x / norm);
  };
  let x = new Float64Array(d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) x[i]! += a[i * d + j]!;
  let y = x;
  for (let it = 0; it < 3; it++) {
    y = unit(mul(x));
    x = unit(mul(y));
  }
  const ay = mul(y);
  let r = 0;
  for (let i = 0; i < d; i++) r += x[i]! * ay[i]!;
  return r;
}

function softmaxRow(p: Float64Array, o: number, C: number): void {
  let max = -Infinity;
  for (let c = 0; c < C; c++) max = Math.max(max, p[o + c]!);
  let s = 0;
  for (let c = 0; c < C; c++) {
    p[o + c] = Math.exp(p[o + c]! - max);
    s += p[o + c]!;
  }
  for (let c = 0; c < C; c++) p[o + c]! /= s;
}
