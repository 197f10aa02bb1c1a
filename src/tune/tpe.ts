/**
 * The Tree-structured Parzen Estimator (Bergstra et al., "Algorithms for Hyper-Parameter Optimization",
 * NeurIPS 2011), in its usual independent (per-parameter) form:
 *
 * 1. rank the finished trials (complete ones by value, then pruned ones by how far they got) and split
 *    them at the quantile γ into a good set and a bad set;
 * 2. per parameter, fit a Parzen estimator to each set: for numeric parameters a mixture of Gaussians
 *    truncated to the range, on the internal (log) scale, one per observation, with Hyperopt's adaptive
 *    bandwidths (distance to the farther neighbour, clipped to [range / min(100, n + 1), range]) plus a
 *    wide prior component; for categorical parameters smoothed counts;
 * 3. draw candidates from the good density l(x) and keep the one maximising l(x) / g(x).
 *
 * The first `startup` trials are drawn at random. Every draw uses a generator seeded by (seed, trial id),
 * so a study replayed with the same finished trials proposes the same parameters.
 */
import type { Rng } from '../tensor.js';
import {
  choiceIndex,
  fromInternal,
  intCell,
  internalBounds,
  isNumeric,
  type JsonValue,
  type NumericSpec,
  type ParamSpec,
  type Params,
  type SearchSpace,
  samplePrior,
  streamRng,
  toInternal,
} from './space.js';
import { type Direction, lastStep, type TrialRecord } from './types.js';

/** Options of the TPE sampler. */
export interface TpeOptions {
  seed?: number;
  /** Random trials before TPE takes over (default 10). */
  startup?: number;
  /** Fraction of finished trials in the good set (default 0.15, at least one trial). */
  gamma?: number;
  /** Candidates drawn from l(x) per parameter (default 24). */
  candidates?: number;
  /** Weight of the prior component of each estimator (default 1). */
  priorWeight?: number;
}

/** A truncated Gaussian mixture on [lo, hi]. */
export interface Mixture {
  mus: number[];
  sigmas: number[];
  weights: number[];
  lo: number;
  hi: number;
}

/** Builds the Parzen estimator of observations `obs` (internal scale) on [lo, hi]. */
export function parzen(obs: readonly number[], lo: number, hi: number, priorWeight = 1): Mixture {
  const range = hi - lo;
  const prior = { mu: (lo + hi) / 2, w: priorWeight, prior: true };
  const pts = [...obs.map((mu) => ({ mu, w: 1, prior: false })), prior].sort((a, b) => a.mu - b.mu);
  const n = pts.length;
  const minSigma = range / Math.min(100, n + 1);
  const sigmas = pts.map((p, i) => {
    if (p.prior) return range;
    const left = i > 0 ? p.mu - pts[i - 1]!.mu : p.mu - lo;
    const right = i < n - 1 ? pts[i + 1]!.mu - p.mu : hi - p.mu;
    return Math.min(range, Math.max(minSigma, left, right));
  });
  const total = pts.reduce((a, p) => a + p.w, 0);
  return { mus: pts.map((p) => p.mu), sigmas, weights: pts.map((p) => p.w / total), lo, hi };
}

/** The standard normal CDF (erfc-based, accurate to ~1e-7). */
export function normCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.5 * x);
  const erfc =
    t *
    Math.exp(
      -x * x -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return z >= 0 ? 1 - erfc / 2 : erfc / 2;
}

/** Probability mass of each component inside [lo, hi]. */
function masses(m: Mixture): number[] {
  return m.mus.map((mu, i) => Math.max(1e-300, normCdf((m.hi - mu) / m.sigmas[i]!) - normCdf((m.lo - mu) / m.sigmas[i]!)));
}

/** log density of the truncated mixture at x. */
export function logDensity(m: Mixture, x: number, z = masses(m)): number {
  let s = 0;
  for (let i = 0; i < m.mus.length; i++) {
    const sg = m.sigmas[i]!;
    const d = (x - m.mus[i]!) / sg;
    s += (m.weights[i]! * Math.exp(-0.5 * d * d)) / (sg * Math.sqrt(2 * Math.PI) * z[i]!);
  }
  return Math.log(Math.max(s, 1e-300));
}

/** log probability that the truncated mixture falls in [a, b]. */
export function logMass(m: Mixture, a: number, b: number, z = masses(m)): number {
  let s = 0;
  for (let i = 0; i < m.mus.length; i++) {
    const sg = m.sigmas[i]!;
    s += (m.weights[i]! * (normCdf((b - m.mus[i]!) / sg) - normCdf((a - m.mus[i]!) / sg))) / z[i]!;
  }
  return Math.log(Math.max(s, 1e-300));
}

/** One draw from the truncated mixture. */
export function sampleMixture(m: Mixture, rng: Rng): number {
  let u = rng.next();
  let k = 0;
  while (k < m.weights.length - 1 && u >= m.weights[k]!) u -= m.weights[k++]!;
  for (let tries = 0; tries < 100; tries++) {
    const x = m.mus[k]! + m.sigmas[k]! * rng.normal();
    if (x >= m.lo && x <= m.hi) return x;
  }
  return m.lo + rng.next() * (m.hi - m.lo);
}

/** The TPE sampler. */
export class TpeSampler {
  readonly name = 'tpe';
  private readonly o: Required<TpeOptions>;

  constructor(
    readonly space: SearchSpace,
    readonly direction: Direction,
    opts: TpeOptions = {},
  ) {
    this.o = { seed: 0, startup: 10, gamma: 0.15, candidates: 24, priorWeight: 1, ...opts };
    if (!(this.o.gamma > 0 && this.o.gamma < 1)) throw new Error(`sampler.gamma must be in (0, 1), got ${this.o.gamma}; 0.15–0.25 are usual.`);
  }

  /** Finished trials ranked best first: complete by value, then pruned by how far they got, then by their last value. */
  rank(trials: readonly TrialRecord[]): TrialRecord[] {
    const sgn = this.direction === 'maximize' ? -1 : 1;
    const ok = (t: TrialRecord) => t.value !== undefined && Number.isFinite(t.value);
    const complete = trials.filter((t) => t.state === 'complete' && ok(t)).sort((a, b) => sgn * (a.value! - b.value!) || a.id - b.id);
    const pruned = trials
      .filter((t) => t.state === 'pruned')
      .sort((a, b) => lastStep(b) - lastStep(a) || (ok(a) && ok(b) ? sgn * (a.value! - b.value!) : ok(a) ? -1 : ok(b) ? 1 : 0) || a.id - b.id);
    return [...complete, ...pruned];
  }

  /** Parameters of trial `id` given the trials so far. */
  sample(id: number, trials: readonly TrialRecord[]): Params {
    const rng = streamRng(this.o.seed, id);
    const ranked = this.rank(trials);
    const out: Params = {};
    if (ranked.length < Math.max(1, this.o.startup)) {
      for (const [name, p] of Object.entries(this.space)) out[name] = samplePrior(p, rng);
      return out;
    }
    const nGood = Math.max(1, Math.ceil(this.o.gamma * ranked.length));
    const good = ranked.slice(0, nGood);
    const bad = ranked.slice(nGood);
    for (const [name, p] of Object.entries(this.space)) out[name] = this.sampleParam(name, p, good, bad, rng);
    return out;
  }

  private sampleParam(name: string, p: ParamSpec, good: TrialRecord[], bad: TrialRecord[], rng: Rng): JsonValue {
    if (p.type === 'fixed') return p.value;
    if (p.type === 'categorical') {
      const probs = (set: TrialRecord[]) => {
        const c = new Array<number>(p.choices.length).fill(this.o.priorWeight / p.choices.length);
        for (const t of set) {
          const i = choiceIndex(p, t.params[name]);
          if (i >= 0) c[i]! += 1;
        }
        const s = c.reduce((a, b) => a + b, 0);
        return c.map((v) => v / s);
      };
      const l = probs(good);
      const g = probs(bad);
      let best = 0;
      let bestScore = Number.NEGATIVE_INFINITY;
      for (let k = 0; k < this.o.candidates; k++) {
        let u = rng.next();
        let i = 0;
        while (i < l.length - 1 && u >= l[i]!) u -= l[i++]!;
        const score = Math.log(l[i]!) - Math.log(g[i]!);
        if (score > bestScore) [best, bestScore] = [i, score];
      }
      return p.choices[best]!;
    }
    if (!isNumeric(p)) throw new Error(`TPE: unsupported parameter type of ${name}`);
    return this.sampleNumeric(name, p, good, bad, rng);
  }

  private sampleNumeric(name: string, p: NumericSpec, good: TrialRecord[], bad: TrialRecord[], rng: Rng): number {
    const [lo, hi] = internalBounds(p);
    const obs = (set: TrialRecord[]) =>
      set
        .map((t) => t.params[name])
        .filter((v): v is number => typeof v === 'number' && v >= p.low && v <= p.high)
        .map((v) => toInternal(p, v));
    const l = parzen(obs(good), lo, hi, this.o.priorWeight);
    const g = parzen(obs(bad), lo, hi, this.o.priorWeight);
    const zl = masses(l);
    const zg = masses(g);
    let best = fromInternal(p, sampleMixture(l, rng));
    let bestScore = Number.NEGATIVE_INFINITY;
    for (let k = 0; k < this.o.candidates; k++) {
      const v = fromInternal(p, sampleMixture(l, rng));
      let score: number;
      if (p.type === 'int') {
        const [a, b] = intCell(p, v);
        score = logMass(l, a, b, zl) - logMass(g, a, b, zg);
      } else {
        const x = toInternal(p, v);
        score = logDensity(l, x, zl) - logDensity(g, x, zg);
      }
      if (score > bestScore) [best, bestScore] = [v, score];
    }
    return best;
  }
}
