/**
 * The transferability scores of `graft rank` over one feature matrix: LogME and SFDA (closed form, no
 * training) and the two baselines every ranking shows beside them, leave-one-out kNN accuracy and a linear
 * probe's held-out accuracy. Higher is better for each.
 */
import { knnAccuracy } from './scores/knn.js';
import { logme } from './scores/logme.js';
import { linearProbeAccuracy, type ProbeOptions } from './scores/probe.js';
import { sfda } from './scores/sfda.js';

/** The scores, in the order tables and plots show them. */
export const SCORE_NAMES = ['logme', 'sfda', 'knn', 'probe'] as const;
export type ScoreName = (typeof SCORE_NAMES)[number];

/** What each score is, for tables, plots and docs. */
export const SCORE_TITLES: Record<ScoreName, string> = {
  logme: 'LogME (evidence per sample)',
  sfda: 'SFDA (mean true-class probability)',
  knn: 'kNN accuracy (leave-one-out, cosine)',
  probe: 'linear-probe accuracy (held out)',
};

/**
 * Widest features SFDA is computed for: it solves a d×d within-class scatter (Cholesky, O(d³)), minutes in
 * JavaScript for TF-IDF's 8192 buckets. Wider features get SFDA NaN (n/a) with a warning; the other scores stand.
 */
export const SFDA_MAX_DIMS = 2048;

/** Every score of one backbone. */
export type FeatureScores = Record<ScoreName, number>;

/** Options of {@link scoreFeatures}. */
export interface ScoreOptions {
  /** kNN neighbours (default 5). */
  k?: number;
  /** Linear-probe options (held-out fraction, epochs, learning rate). */
  probe?: Omit<ProbeOptions, 'seed'>;
  /** Seed of the probe's split and initialisation (default 0). */
  seed?: number;
}

/**
 * All scores of features `x` (n×d) for class `labels`. The probe needs two rows of every class (one to hold
 * out); with fewer it is NaN and `onWarning` says why, and the other scores stand.
 */
export async function scoreFeatures(
  x: Float32Array,
  n: number,
  d: number,
  labels: Int32Array,
  opts: ScoreOptions & { onWarning?: (message: string) => void } = {},
): Promise<FeatureScores> {
  let probe = Number.NaN;
  try {
    probe = (await linearProbeAccuracy(x, n, d, labels, { ...opts.probe, seed: opts.seed })).accuracy;
  } catch (e) {
    opts.onWarning?.(`no linear-probe accuracy: ${(e as Error).message}`);
  }
  const wide = d > SFDA_MAX_DIMS;
  if (wide)
    opts.onWarning?.(
      `no SFDA for ${d} feature dimensions: it solves a ${d}×${d} system (O(d³)); beyond ${SFDA_MAX_DIMS} dimensions graft skips it. LogME, kNN and the probe stand.`,
    );
  return {
    logme: logme(x, n, d, { labels }).score,
    sfda: wide ? Number.NaN : sfda(x, n, d, labels).score,
    knn: knnAccuracy(x, n, d, labels, { k: opts.k }),
    probe,
  };
}
