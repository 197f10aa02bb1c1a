/**
 * Temperature scaling (Guo et al. 2017): one scalar T > 0 that divides the logits before the softmax, fitted
 * by minimising the negative log-likelihood on held-out data. It changes no prediction (argmax is kept), only
 * how confident the probabilities are: T > 1 softens an overconfident model.
 */
import { expectedCalibrationError, negativeLogLikelihood } from './metrics.js';

/** The fitted temperature and the validation NLL and ECE before (T = 1) and after. */
export interface TemperatureFit {
  temperature: number;
  before: { nll: number; ece: number };
  after: { nll: number; ece: number };
}

/** Softmax of each row of `logits` (n × k) divided by `t`, into a new array. */
export function softmaxWithTemperature(logits: Float32Array, k: number, t: number): Float32Array {
  const out = new Float32Array(logits.length);
  for (let o = 0; o < logits.length; o += k) {
    let m = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < k; j++) m = Math.max(m, logits[o + j]! / t);
    let s = 0;
    for (let j = 0; j < k; j++) s += out[o + j] = Math.exp(logits[o + j]! / t - m);
    for (let j = 0; j < k; j++) out[o + j]! /= s;
  }
  return out;
}

/** Mean NLL of the true class under softmax(logits / t), in float64 (log-sum-exp). */
function nllAt(logits: Float32Array, k: number, labels: ArrayLike<number>, t: number): number {
  let total = 0;
  const n = labels.length;
  for (let i = 0; i < n; i++) {
    const o = i * k;
    let m = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < k; j++) m = Math.max(m, logits[o + j]! / t);
    let s = 0;
    for (let j = 0; j < k; j++) s += Math.exp(logits[o + j]! / t - m);
    total += m + Math.log(s) - logits[o + labels[i]!]! / t;
  }
  return total / Math.max(1, n);
}

/**
 * Fits T by golden-section search on log T in [log 0.05, log 20] (the NLL is unimodal in T for a fixed
 * set of logits). Rows with a non-finite logit are left out.
 * @throws when there is no row to fit on or the labels do not match the logits.
 */
export function fitTemperature(logits: Float32Array, k: number, labels: ArrayLike<number>, bins = 15): TemperatureFit {
  const n = labels.length;
  if (k < 1 || logits.length !== n * k) throw new Error(`fitTemperature: ${logits.length} logits do not make ${n} rows of ${k} classes.`);
  const keep: number[] = [];
  for (let i = 0; i < n; i++) if (logits.subarray(i * k, (i + 1) * k).every(Number.isFinite)) keep.push(i);
  if (keep.length === 0)
    throw new Error('fitTemperature: no row with finite logits to fit a temperature on; the validation set is empty or the model outputs NaN.');
  const z = new Float32Array(keep.length * k);
  keep.forEach((i, r) => void z.set(logits.subarray(i * k, (i + 1) * k), r * k));
  const y = Int32Array.from(keep, (i) => labels[i]!);
  const f = (u: number) => nllAt(z, k, y, Math.exp(u));
  let a = Math.log(0.05);
  let b = Math.log(20);
  const g = (Math.sqrt(5) - 1) / 2;
  let c = b - g * (b - a);
  let d = a + g * (b - a);
  let fc = f(c);
  let fd = f(d);
  for (let it = 0; it < 60 && b - a > 1e-5; it++) {
    if (fc < fd) {
      b = d;
      d = c;
      fd = fc;
      c = b - g * (b - a);
      fc = f(c);
    } else {
      a = c;
      c = d;
      fc = fd;
      d = a + g * (b - a);
      fd = f(d);
    }
  }
  let temperature = Math.exp((a + b) / 2);
  // never worse than no scaling
  if (f(Math.log(temperature)) > f(0)) temperature = 1;
  const measure = (t: number) => {
    const p = { probabilities: softmaxWithTemperature(z, k, t), classes: k };
    return { nll: negativeLogLikelihood(p, y), ece: expectedCalibrationError(p, y, bins) };
  };
  return { temperature, before: measure(1), after: measure(temperature) };
}

/**
 * Logits recovered from probabilities, up to a per-row constant (which softmax ignores): log p, with p
 * clamped at the smallest positive float32 so a zero stays finite.
 */
export function logitsFromProbabilities(p: Float32Array): Float32Array {
  return Float32Array.from(p, (v) => Math.log(Math.max(v, 1e-45)));
}
