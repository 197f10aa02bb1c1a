/**
 * Classification metrics as pure functions of a row-major `n × k` probability matrix and the true labels:
 * accuracy, top-k accuracy, confusion matrix, per-class precision/recall/F1 with macro and weighted averages,
 * expected calibration error (ECE) with its reliability bins, and negative log-likelihood.
 *
 * Conventions follow scikit-learn and Guo et al. (2017): ties in argmax go to the lowest index; a class with
 * no predictions has precision 0 (and F1 0); averages run over the classes that occur in the labels or the
 * predictions; ECE uses equal-width confidence bins `((m-1)/M, m/M]`.
 *
 * A row with a NaN or infinite value (a broken model) never scores: it has no prediction (argmax -1, no column of
 * the confusion matrix), counts as wrong for accuracy and top-k and as a miss (false negative) of its class, as a
 * wrong answer at confidence 1 for calibration, and at the clamped probability `eps` for the NLL. Without this,
 * NaN comparisons (always false) would hand every such row to class 0 and an all-NaN model would score 100 %.
 */

/** A probability matrix: `rows × classes` values, row-major (one row per sample). */
export interface ProbMatrix {
  probabilities: Float32Array | Float64Array | readonly number[];
  classes: number;
}

function checkShape(p: ProbMatrix, labels: ArrayLike<number>, fn: string): number {
  const k = p.classes;
  if (!Number.isInteger(k) || k <= 0) throw new Error(`${fn}: classes must be a positive integer, got ${k}.`);
  if (p.probabilities.length % k !== 0)
    throw new Error(`${fn}: ${p.probabilities.length} probabilities is not a multiple of ${k} classes; pass an n × ${k} row-major matrix.`);
  const n = p.probabilities.length / k;
  if (labels.length !== n) throw new Error(`${fn}: ${n} probability rows but ${labels.length} labels; pass one label per row.`);
  for (let i = 0; i < n; i++) {
    const l = labels[i]!;
    if (!Number.isInteger(l) || l < 0 || l >= k) throw new Error(`${fn}: label ${l} of row ${i} is not a class index in 0..${k - 1}.`);
  }
  return n;
}

/** Whether every value of row `row` is finite (no NaN, no ±Infinity). */
export function rowIsFinite(p: ProbMatrix, row: number): boolean {
  for (let j = 0; j < p.classes; j++) if (!Number.isFinite(Number(p.probabilities[row * p.classes + j]))) return false;
  return true;
}

/** Index of the largest value of each row (the first one on ties); -1 for a row with a NaN or infinite value. */
export function argmaxRows(p: ProbMatrix): Int32Array {
  const k = p.classes;
  const n = Math.floor(p.probabilities.length / k);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    if (!rowIsFinite(p, i)) {
      out[i] = -1;
      continue;
    }
    let best = 0;
    let bv = p.probabilities[i * k]!;
    for (let j = 1; j < k; j++) {
      const v = p.probabilities[i * k + j]!;
      if (v > bv) {
        bv = v;
        best = j;
      }
    }
    out[i] = best;
  }
  return out;
}

/**
 * The `k` most probable classes of row `row`, most probable first (lower index first on ties; NaN last).
 * @returns pairs of class index and probability.
 */
export function topKRow(p: ProbMatrix, row: number, k: number): { index: number; probability: number }[] {
  const c = p.classes;
  const items = Array.from({ length: c }, (_, j) => ({ index: j, probability: Number(p.probabilities[row * c + j]!) }));
  items.sort((a, b) => {
    const na = Number.isNaN(a.probability);
    const nb = Number.isNaN(b.probability);
    if (na !== nb) return na ? 1 : -1;
    return b.probability - a.probability || a.index - b.index;
  });
  return items.slice(0, Math.max(0, Math.min(k, c)));
}

/** Fraction of rows whose most probable class is the label (0 for no rows). */
export function accuracy(p: ProbMatrix, labels: ArrayLike<number>): number {
  return topKAccuracy(p, labels, 1);
}

/**
 * Fraction of rows whose label is among the `k` most probable classes. A tie at the k-th place counts
 * against the label (classes with strictly larger probability, or equal probability and lower index, rank first).
 */
export function topKAccuracy(p: ProbMatrix, labels: ArrayLike<number>, k: number): number {
  const n = checkShape(p, labels, 'topKAccuracy');
  if (!Number.isInteger(k) || k < 1) throw new Error(`topKAccuracy: k must be a positive integer, got ${k}.`);
  if (n === 0) return 0;
  const c = p.classes;
  let hits = 0;
  for (let i = 0; i < n; i++) {
    if (!rowIsFinite(p, i)) continue; // no prediction: wrong
    const l = labels[i]!;
    const pl = p.probabilities[i * c + l]!;
    let rank = 0;
    for (let j = 0; j < c; j++) {
      const v = p.probabilities[i * c + j]!;
      if (v > pl || (v === pl && j < l)) rank++;
    }
    if (rank < k) hits++;
  }
  return hits / n;
}

/** Confusion counts: `matrix[t][p]` = number of rows with true class `t` predicted as `p` (k × k); a prediction of -1 (none: a NaN row) has no column. */
export function confusionMatrix(predicted: ArrayLike<number>, labels: ArrayLike<number>, classes: number): number[][] {
  if (predicted.length !== labels.length)
    throw new Error(`confusionMatrix: ${predicted.length} predictions but ${labels.length} labels; pass one prediction per label.`);
  const m = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  for (let i = 0; i < labels.length; i++) {
    const t = labels[i]!;
    const q = predicted[i]!;
    if (q === -1 && t >= 0 && t < classes) continue;
    if (!(t >= 0 && t < classes && q >= 0 && q < classes))
      throw new Error(`confusionMatrix: row ${i} has label ${t} / prediction ${q} outside 0..${classes - 1}.`);
    m[t]![q]!++;
  }
  return m;
}

/** Precision, recall and F1 of one class, with its support (number of true rows). */
export interface ClassScores {
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

/** Per-class scores plus macro and support-weighted averages. */
export interface ClassReport {
  perClass: ClassScores[];
  /** Unweighted mean over the classes present in the labels or the predictions. */
  macro: { precision: number; recall: number; f1: number };
  /** Mean weighted by support. */
  weighted: { precision: number; recall: number; f1: number };
  /** Classes (indices) the averages run over. */
  present: number[];
}

/**
 * Per-class precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = harmonic mean, from a confusion
 * matrix (rows true, columns predicted). Undefined ratios (0 / 0) are reported as 0, as scikit-learn does.
 * @param unpredicted per class, rows of that true class with no prediction (NaN rows): misses, in its support.
 */
export function classReport(confusion: readonly (readonly number[])[], unpredicted: readonly number[] = []): ClassReport {
  const k = confusion.length;
  const perClass: ClassScores[] = [];
  const present: number[] = [];
  let total = 0;
  for (let c = 0; c < k; c++) {
    const tp = confusion[c]![c]!;
    let predicted = 0;
    let support = unpredicted[c] ?? 0;
    for (let j = 0; j < k; j++) {
      predicted += confusion[j]![c]!;
      support += confusion[c]![j]!;
    }
    const precision = predicted ? tp / predicted : 0;
    const recall = support ? tp / support : 0;
    const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
    perClass.push({ precision, recall, f1, support });
    if (predicted > 0 || support > 0) present.push(c);
    total += support;
  }
  const avg = (key: 'precision' | 'recall' | 'f1', weighted: boolean) => {
    let s = 0;
    let w = 0;
    for (const c of present) {
      const wc = weighted ? perClass[c]!.support : 1;
      s += perClass[c]![key] * wc;
      w += wc;
    }
    return w ? s / w : 0;
  };
  const both = (weighted: boolean) => ({ precision: avg('precision', weighted), recall: avg('recall', weighted), f1: avg('f1', weighted) });
  return { perClass, macro: both(false), weighted: total ? both(true) : { precision: 0, recall: 0, f1: 0 }, present };
}

/** One confidence bin of a reliability diagram. */
export interface CalibrationBin {
  /** Bin edges: confidences in (lo, hi] (the first bin also holds exactly 0). */
  lo: number;
  hi: number;
  count: number;
  /** Mean confidence (max probability) of the rows in the bin (0 when empty). */
  confidence: number;
  /** Fraction of the bin's rows predicted correctly (0 when empty). */
  accuracy: number;
}

/** Expected calibration error and the bins it was computed from. */
export interface Calibration {
  ece: number;
  /** Largest |accuracy − confidence| over non-empty bins (maximum calibration error). */
  mce: number;
  bins: CalibrationBin[];
}

/**
 * Expected calibration error (Guo et al. 2017): rows are put in `bins` equal-width bins by their confidence
 * (the largest probability), and ECE = Σ_b (|B_b| / n) · |accuracy(B_b) − confidence(B_b)|.
 * @param bins number of bins (default 15, the usual choice).
 */
export function calibration(p: ProbMatrix, labels: ArrayLike<number>, bins = 15): Calibration {
  const n = checkShape(p, labels, 'calibration');
  if (!Number.isInteger(bins) || bins < 1) throw new Error(`calibration: bins must be a positive integer, got ${bins}.`);
  const k = p.classes;
  const pred = argmaxRows(p);
  const count = new Array<number>(bins).fill(0);
  const conf = new Array<number>(bins).fill(0);
  const correct = new Array<number>(bins).fill(0);
  for (let i = 0; i < n; i++) {
    const c = pred[i] === -1 ? 1 : Number(p.probabilities[i * k + pred[i]!]!); // a NaN row: wrong at confidence 1
    const b = Math.min(bins - 1, Math.max(0, Math.ceil(c * bins) - 1));
    count[b]!++;
    conf[b]! += c;
    if (pred[i] === labels[i]) correct[b]!++;
  }
  let ece = 0;
  let mce = 0;
  const out: CalibrationBin[] = [];
  for (let b = 0; b < bins; b++) {
    const m = count[b]!;
    const bin: CalibrationBin = { lo: b / bins, hi: (b + 1) / bins, count: m, confidence: m ? conf[b]! / m : 0, accuracy: m ? correct[b]! / m : 0 };
    if (m) {
      const gap = Math.abs(bin.accuracy - bin.confidence);
      ece += (m / n) * gap;
      mce = Math.max(mce, gap);
    }
    out.push(bin);
  }
  return { ece, mce, bins: out };
}

/** Expected calibration error with `bins` equal-width bins (default 15); see {@link calibration}. */
export function expectedCalibrationError(p: ProbMatrix, labels: ArrayLike<number>, bins = 15): number {
  return calibration(p, labels, bins).ece;
}

/**
 * Mean negative log-likelihood of the true class, −(1/n) Σ log p[i, label_i], with probabilities clamped
 * below at `eps` (default 1e-12) so a confident mistake costs a large finite amount instead of Infinity.
 */
export function negativeLogLikelihood(p: ProbMatrix, labels: ArrayLike<number>, eps = 1e-12): number {
  const n = checkShape(p, labels, 'negativeLogLikelihood');
  if (n === 0) return 0;
  let s = 0;
  for (let i = 0; i < n; i++) {
    const v = Number(p.probabilities[i * p.classes + labels[i]!]!);
    s -= Math.log(Number.isFinite(v) && rowIsFinite(p, i) ? Math.max(eps, v) : eps);
  }
  return s / n;
}

/** Everything {@link classificationMetrics} computes. */
export interface ClassificationMetrics {
  n: number;
  /** Rows with a NaN or infinite value: no prediction (-1 in `predicted`), counted as wrong everywhere. */
  nonFinite: number;
  accuracy: number;
  topK: { k: number; accuracy: number };
  nll: number;
  calibration: Calibration;
  report: ClassReport;
  /** k × k counts, rows true, columns predicted. */
  confusion: number[][];
  predicted: Int32Array;
}

/** All metrics at once (top-k with `topK` clamped to the number of classes; `bins` calibration bins). */
export function classificationMetrics(p: ProbMatrix, labels: ArrayLike<number>, opts: { topK?: number; bins?: number } = {}): ClassificationMetrics {
  const n = checkShape(p, labels, 'classificationMetrics');
  const k = Math.max(1, Math.min(opts.topK ?? 5, p.classes));
  const predicted = argmaxRows(p);
  const confusion = confusionMatrix(predicted, labels, p.classes);
  const unpredicted = new Array<number>(p.classes).fill(0);
  let nonFinite = 0;
  for (let i = 0; i < n; i++)
    if (predicted[i] === -1) {
      unpredicted[labels[i]!]!++;
      nonFinite++;
    }
  return {
    n,
    nonFinite,
    accuracy: accuracy(p, labels),
    topK: { k, accuracy: topKAccuracy(p, labels, k) },
    nll: negativeLogLikelihood(p, labels),
    calibration: calibration(p, labels, opts.bins ?? 15),
    report: classReport(confusion, unpredicted),
    confusion,
    predicted,
  };
}
