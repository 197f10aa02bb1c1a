/**
 * LogME (You et al., ICML 2021, "LogME: Practical Assessment of Pre-trained Models for Transfer Learning"):
 * the log marginal evidence of a Bayesian linear model from the features to each target, maximised over its
 * prior precision α and noise precision β by the fixed-point iteration of the authors' reference code
 * (github thuml/LogME, `LogME._fit_fixed_point`: at most 11 iterations, relative tolerance 1e-3 on α/β,
 * evidence averaged per sample and over targets). No hyper-parameters. Classification: one-hot targets,
 * one per class 0..max label; regression: one target per column.
 */
import { thinSvd, toFloat64 } from '../../util/linalg.js';

/** The targets of {@link logme}: class labels, or regression values (n rows × `columns`). */
export type LogmeTargets = { labels: ArrayLike<number> } | { values: ArrayLike<number>; columns?: number };

/** LogME's per-target result. */
export interface LogmeTarget {
  /** Evidence per sample of this target. */
  evidence: number;
  alpha: number;
  beta: number;
}

/** Result of {@link logme}. */
export interface LogmeResult {
  /** The LogME score: the mean over targets of the evidence per sample (higher is better). */
  score: number;
  targets: LogmeTarget[];
}

/**
 * LogME of features `x` (n×d, row-major) for `targets`.
 * @throws on mismatched sizes or non-integer labels, naming the fix.
 */
export function logme(x: ArrayLike<number>, n: number, d: number, targets: LogmeTargets): LogmeResult {
  const f = toFloat64(x, n, d, 'logme features');
  for (const v of f)
    if (!Number.isFinite(v)) throw new Error('logme: the features hold NaN or infinite values; check the backbone (graft inspect) and its preprocessing.');
  const ys = targetColumns(targets, n);
  // for n > d, Uᵀy = diag(1/s)·Vᵀ(Xᵀy): U (n×k) is never formed
  const { k, u, s, v } = thinSvd(f, n, d, { u: false });
  const sigma = Float64Array.from(s, (v) => v * v);
  const out: LogmeTarget[] = [];
  const x2 = new Float64Array(k);
  for (const y of ys) {
    // x = Uᵀy; the part of ‖y‖² outside U's span is the residual at any α/β
    x2.fill(0);
    if (u) {
      for (let r = 0; r < n; r++) {
        const yr = y[r]!;
        if (yr === 0) continue;
        for (let c = 0; c < k; c++) x2[c]! += u[r * k + c]! * yr;
      }
    } else {
      const xty = new Float64Array(d);
      for (let r = 0; r < n; r++) {
        const yr = y[r]!;
        if (yr === 0) continue;
        for (let j = 0; j < d; j++) xty[j]! += f[r * d + j]! * yr;
      }
      for (let c = 0; c < k; c++) {
        let acc = 0;
        for (let j = 0; j < d; j++) acc += v![c * d + j]! * xty[j]!;
        x2[c] = acc / s[c]!;
      }
    }
    let y2 = 0;
    for (let r = 0; r < n; r++) y2 += y[r]! * y[r]!;
    let sx2 = 0;
    for (let c = 0; c < k; c++) {
      x2[c] = x2[c]! * x2[c]!;
      sx2 += x2[c]!;
    }
    const resX2 = y2 - sx2;
    let alpha = 1;
    let beta = 1;
    let m2 = 0;
    let res2 = 0;
    for (let it = 0; it < 11; it++) {
      const t = alpha / beta;
      let gamma = 0;
      m2 = 0;
      res2 = resX2;
      for (let c = 0; c < k; c++) {
        const sg = sigma[c]!;
        gamma += sg / (sg + t);
        m2 += (sg * x2[c]!) / (t + sg) ** 2;
        res2 += x2[c]! / (1 + sg / t) ** 2;
      }
      alpha = gamma / (m2 + 1e-5);
      beta = (n - gamma) / (res2 + 1e-5);
      if (Math.abs(alpha / beta - t) / t <= 1e-3) break;
    }
    let logDet = 0;
    for (let c = 0; c < k; c++) logDet += Math.log(alpha + beta * sigma[c]!);
    const evidence =
      ((d / 2) * Math.log(alpha) + (n / 2) * Math.log(beta) - 0.5 * logDet - (beta / 2) * res2 - (alpha / 2) * m2 - (n / 2) * Math.log(2 * Math.PI)) / n;
    out.push({ evidence, alpha, beta });
  }
  return { score: out.reduce((a, t) => a + t.evidence, 0) / out.length, targets: out };
}

/** The target vectors: one-hot per class 0..max label, or the regression columns. */
function targetColumns(targets: LogmeTargets, n: number): Float64Array[] {
  if ('labels' in targets) {
    const l = targets.labels;
    if (l.length !== n) throw new Error(`logme: ${l.length} labels for ${n} feature rows; pass one label per row.`);
    let max = -1;
    for (let i = 0; i < n; i++) {
      if (!Number.isInteger(l[i]) || l[i]! < 0)
        throw new Error(`logme: label ${l[i]} at row ${i} is not a class index (a non-negative integer); use { values } for regression.`);
      max = Math.max(max, l[i]!);
    }
    return Array.from({ length: max + 1 }, (_, c) => Float64Array.from({ length: n }, (_, i) => (l[i] === c ? 1 : 0)));
  }
  const cols = targets.columns ?? 1;
  if (targets.values.length !== n * cols)
    throw new Error(`logme: ${targets.values.length} target values for ${n} rows × ${cols} columns; pass n × columns values, row-major.`);
  return Array.from({ length: cols }, (_, c) => Float64Array.from({ length: n }, (_, i) => targets.values[i * cols + c]!));
}
