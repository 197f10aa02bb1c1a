/**
 * The linear-probe baseline: graft's own head training (`graft train --mode head` with `--head linear`: the
 * config schema's defaults for the optimizer, learning rate and batch size, `headModule`, `makeOptimizer`,
 * `Network.fit`) on features already computed, trained on a stratified seeded split (`splitTrainVal`) and
 * scored by its accuracy on the held-out part. Two differences from a default `graft train` run, so that the
 * probe measures the features rather than their scale: the features are standardised (each dimension by the
 * training part's mean and standard deviation, as scikit-learn's StandardScaler before a logistic
 * regression), and it trains {@link PROBE_EPOCHS} epochs, or more when that is fewer than {@link PROBE_MIN_STEPS}
 * optimizer steps (a small subsample). Nothing is tuned on the held-out part.
 */
import { splitTrainVal } from '../../data/split.js';
import { parseConfig } from '../../run/config.js';
import { headModule, makeOptimizer } from '../../run/setup.js';
import { ArraySource } from '../../step/batches.js';
import { Network } from '../../train/network.js';

/** Default training epochs of the probe. */
export const PROBE_EPOCHS = 30;

/** The probe trains at least this many optimizer steps (more epochs on a small subsample). */
export const PROBE_MIN_STEPS = 300;

/** Options of {@link linearProbeAccuracy}. */
export interface ProbeOptions {
  /** Fraction of each class held out to measure the accuracy (default 0.2). */
  val?: number;
  /** Seed of the split, the head's initialisation and the batch order (default 0). */
  seed?: number;
  /** Training epochs (default {@link PROBE_EPOCHS}, or enough for {@link PROBE_MIN_STEPS} steps). */
  epochs?: number;
  /** Learning rate (default: the config default for the default optimizer). */
  lr?: number;
  /** Train on `split.train` and measure on `split.val` (row indices) instead of a stratified split by `val`. */
  split?: { train: Int32Array; val: Int32Array };
  /** Class names (index = label), for error messages. */
  classes?: readonly string[];
}

/** Result of {@link linearProbeAccuracy}. */
export interface ProbeResult {
  /** Accuracy on the held-out rows. */
  accuracy: number;
  train: number;
  heldOut: number;
  epochs: number;
}

/**
 * Trains a linear softmax head on rows of `x` (n×d features) and returns its held-out accuracy.
 * @throws when a class has too few rows to hold one out (as `splitTrainVal` does).
 */
export async function linearProbeAccuracy(x: Float32Array, n: number, d: number, labels: Int32Array, opts: ProbeOptions = {}): Promise<ProbeResult> {
  if (x.length !== n * d) throw new Error(`linearProbeAccuracy: ${x.length} values but ${n}x${d} needs ${n * d}.`);
  const seed = opts.seed ?? 0;
  const split = opts.split ?? splitTrainVal(labels, { val: opts.val ?? 0.2, seed, classes: opts.classes });
  const defaults = parseConfig({ data: { train: 'features' }, model: { backbone: 'features' } }, 'graft rank linear probe');
  const steps = Math.ceil(split.train.length / defaults.train.batchSize);
  const epochs = opts.epochs ?? Math.max(PROBE_EPOCHS, Math.ceil(PROBE_MIN_STEPS / steps));
  const cfg = parseConfig(
    {
      data: { train: 'features' },
      model: { backbone: 'features', head: { type: 'linear' } },
      train: { mode: 'head', epochs, ...(opts.lr ? { optimizer: { lr: opts.lr } } : {}) },
      run: { seed },
    },
    'graft rank linear probe',
  );
  let classes = 0;
  for (const l of labels) classes = Math.max(classes, l + 1);
  const mean = new Float64Array(d);
  const sd = new Float64Array(d);
  for (const r of split.train) for (let j = 0; j < d; j++) mean[j]! += x[r * d + j]! / split.train.length;
  for (const r of split.train) for (let j = 0; j < d; j++) sd[j]! += (x[r * d + j]! - mean[j]!) ** 2 / split.train.length;
  for (let j = 0; j < d; j++) sd[j] = Math.sqrt(sd[j]!) || 1;
  const pick = (idx: Int32Array) => {
    const px = new Float32Array(idx.length * d);
    idx.forEach((r, k) => {
      for (let j = 0; j < d; j++) px[k * d + j] = (x[r * d + j]! - mean[j]!) / sd[j]!;
    });
    return new ArraySource(
      px,
      Int32Array.from(idx, (r) => labels[r]!),
      [d],
      classes,
    );
  };
  const model = headModule(cfg, classes).build({ inputShape: ['N', d], seed });
  const net = new Network(model);
  await net.fit(pick(split.train), {
    epochs: cfg.train.epochs,
    batchSize: cfg.train.batchSize,
    optimizer: makeOptimizer(cfg.train.optimizer),
    seed,
    featureCache: false,
  });
  const r = await net.evaluate(pick(split.val));
  return { accuracy: r.acc, train: split.train.length, heldOut: split.val.length, epochs: cfg.train.epochs };
}
