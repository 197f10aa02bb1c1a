/**
 * Seeded, stratified splits, k-shot sampling and class-imbalance weights.
 */

import { Rng } from '../tensor.js';

/** Options of {@link stratifiedSplit}. */
export interface SplitOptions {
  /** Fraction of each class held out for validation (default 0.15; 0 for none). */
  val?: number;
  /** Fraction of each class held out for testing (default 0). */
  test?: number;
  /** Seed of the shuffle (default 0). */
  seed?: number;
  /** Class names for error messages (index = label). */
  classes?: readonly string[];
}

/** Item indices of each side of a split, each sorted ascending. */
export interface Split {
  train: Int32Array;
  val: Int32Array;
  test: Int32Array;
}

/** Indices of each class, in order of appearance. */
function byClass(labels: ArrayLike<number>): number[][] {
  const groups: number[][] = [];
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i]!;
    if (!Number.isInteger(l) || l < 0) throw new Error(`Label ${l} at index ${i} is not a non-negative integer; labels must be class indices.`);
    (groups[l] ??= []).push(i);
  }
  for (let c = 0; c < groups.length; c++) groups[c] ??= [];
  return groups;
}

function className(c: number, classes?: readonly string[]): string {
  return classes?.[c] !== undefined ? `"${classes[c]}" (label ${c})` : `label ${c}`;
}

/** Shuffles `a` in place with `rng` (Fisher–Yates). */
function shuffleInPlace(a: number[], rng: Rng): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
}

/**
 * Stratified train/val/test split: each class is shuffled with the seed and `round(n·val)` of its items go to
 * validation, `round(n·test)` to test (at least one each when the fraction is > 0), the rest (at least one) to
 * training. Same labels and seed ⇒ same split.
 * @throws naming the class when it has too few items to give every non-empty side one item.
 */
export function stratifiedSplit(labels: ArrayLike<number>, opts: SplitOptions = {}): Split {
  const val = opts.val ?? 0.15;
  const test = opts.test ?? 0;
  if (!(val >= 0 && test >= 0 && val + test < 1)) {
    throw new Error(`Split fractions val=${val}, test=${test} are invalid; each must be >= 0 and together < 1 (e.g. val 0.15).`);
  }
  const need = 1 + (val > 0 ? 1 : 0) + (test > 0 ? 1 : 0);
  const rng = new Rng(opts.seed ?? 0);
  const train: number[] = [];
  const vals: number[] = [];
  const tests: number[] = [];
  const groups = byClass(labels);
  groups.forEach((idx, c) => {
    if (idx.length === 0) return;
    if (idx.length < need) {
      throw new Error(
        `Class ${className(c, opts.classes)} has ${idx.length} example(s), too few for a train${val > 0 ? '/val' : ''}${test > 0 ? '/test' : ''} split (needs ${need}); ` +
          'add examples of this class, provide a separate validation set, or lower the val/test fractions to 0.',
      );
    }
    shuffleInPlace(idx, rng);
    let nVal = val > 0 ? Math.max(1, Math.round(idx.length * val)) : 0;
    let nTest = test > 0 ? Math.max(1, Math.round(idx.length * test)) : 0;
    while (idx.length - nVal - nTest < 1) {
      if (nTest >= nVal && nTest > 1) nTest--;
      else nVal--;
    }
    vals.push(...idx.slice(0, nVal));
    tests.push(...idx.slice(nVal, nVal + nTest));
    train.push(...idx.slice(nVal + nTest));
  });
  const sorted = (a: number[]) => Int32Array.from(a).sort();
  return { train: sorted(train), val: sorted(vals), test: sorted(tests) };
}

/** The validation fraction held out of each class when none is given: the graft config's `data.valSplit` default. */
export const DEFAULT_VAL_FRACTION = 0.15;

/** Options of {@link splitTrainVal}. */
export interface TrainValOptions {
  /** Fraction of each class held out for validation (default {@link DEFAULT_VAL_FRACTION}; 0 for none). */
  val?: number;
  /** Seed of the limit and of the split (default 0). */
  seed?: number;
  /** Use at most about this many items (all when unset or not smaller than the data). */
  limit?: number;
  /**
   * How `limit` picks items. 'stratified' (default): a seeded stratified subset of all items (each class keeps
   * its share), taken before the validation split, so `limit` counts train + validation items.
   * 'first-train': the first `limit` training items after the split, validation untouched: what
   * `graft adapt --source-samples` always did, kept so its runs give the same numbers at the same seed.
   */
  limitBy?: 'stratified' | 'first-train';
  /** Class names for error messages (index = label). */
  classes?: readonly string[];
}

/**
 * The one image-folder splitter of graft (the library's `loadImageFolder`, `graft train`/`tune`'s data setup,
 * `graft adapt`'s source): optionally limits the items, then holds out a stratified, seeded validation part
 * (see {@link stratifiedSplit}). Same labels and options ⇒ same split.
 * @returns item indices of each side, each sorted ascending.
 * @throws on a limit that is not a positive integer, or as {@link stratifiedSplit} does.
 */
export function splitTrainVal(labels: ArrayLike<number>, opts: TrainValOptions = {}): { train: Int32Array; val: Int32Array } {
  const val = opts.val ?? DEFAULT_VAL_FRACTION;
  const seed = opts.seed ?? 0;
  const { limit, classes } = opts;
  if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1))
    throw new Error(`splitTrainVal: the limit must be a positive integer, got ${limit} (data.limit / --limit / --source-samples).`);
  const n = labels.length;
  let pool: Int32Array = Int32Array.from({ length: n }, (_, i) => i);
  const stratifiedLimit = limit !== undefined && limit < n && opts.limitBy !== 'first-train';
  if (stratifiedLimit) pool = stratifiedSplit(labels, { val: 1 - limit / n, seed, classes }).train;
  let train = pool;
  let held: Int32Array = new Int32Array(0);
  if (val > 0) {
    const s = stratifiedSplit(
      Int32Array.from(pool, (i) => labels[i]!),
      { val, seed, classes },
    );
    train = Int32Array.from(s.train, (k) => pool[k]!);
    held = Int32Array.from(s.val, (k) => pool[k]!);
  }
  if (limit !== undefined && opts.limitBy === 'first-train' && limit < train.length) train = train.slice(0, limit);
  return { train, val: held };
}

/** Options of {@link kPerClass}. */
export interface KPerClassOptions {
  /** Take all items of classes with fewer than k instead of throwing (default false). */
  allowFewer?: boolean;
  /** Class names for error messages. */
  classes?: readonly string[];
}

/**
 * Samples k items of every class present in `labels` (k-shot subsets), seeded; returns sorted indices.
 * @throws naming the class when it has fewer than k items (unless `allowFewer`).
 */
export function kPerClass(labels: ArrayLike<number>, k: number, seed: number, opts: KPerClassOptions = {}): Int32Array {
  if (!Number.isInteger(k) || k < 1) throw new Error(`kPerClass: k must be a positive integer, got ${k}.`);
  const rng = new Rng(seed);
  const out: number[] = [];
  byClass(labels).forEach((idx, c) => {
    if (idx.length === 0) return;
    if (idx.length < k && !opts.allowFewer) {
      throw new Error(`Class ${className(c, opts.classes)} has only ${idx.length} example(s), fewer than k=${k}; lower k or allow fewer (allowFewer).`);
    }
    shuffleInPlace(idx, rng);
    out.push(...idx.slice(0, k));
  });
  return Int32Array.from(out).sort();
}

/**
 * Class weights for imbalanced data, like scikit-learn's `class_weight='balanced'`:
 * `w_c = n / (K · count_c)` with K the number of classes present, so the average weight over the items is 1.
 * Classes absent from `labels` get weight 0.
 * @param numClasses number of classes K (default max label + 1).
 */
export function classWeights(labels: ArrayLike<number>, numClasses?: number): Float32Array {
  const groups = byClass(labels);
  const k = numClasses ?? groups.length;
  if (groups.length > k) throw new Error(`classWeights: label ${groups.length - 1} is outside numClasses=${k}; pass the right number of classes.`);
  const present = groups.filter((g) => g.length > 0).length;
  const w = new Float32Array(k);
  for (let c = 0; c < groups.length; c++) {
    const n = groups[c]!.length;
    // Normalise over present classes so the per-item mean stays 1 even when some class is absent.
    if (n > 0) w[c] = labels.length / (present * n);
  }
  return w;
}

/** Per-class item counts (length = numClasses, default max label + 1). */
export function classHistogram(labels: ArrayLike<number>, numClasses?: number): Int32Array {
  const groups = byClass(labels);
  const out = new Int32Array(Math.max(numClasses ?? 0, groups.length));
  groups.forEach((g, c) => {
    out[c] = g.length;
  });
  return out;
}
