/**
 * The learning-rate range test (Smith 2015; fastai's `lr_find`): train a copy of the network for ~100 steps
 * while the LR grows exponentially from `startLr` to `endLr`, record the (bias-corrected, exponentially
 * smoothed) loss, stop once it exceeds `divergence` × its best, and suggest an LR: the steepest descent of
 * the smoothed loss, or the LR of the minimum divided by 10 when no clear descent exists.
 */

import type { Optimizer } from '../optim/optimizer.js';
import { type BatchSource, batchesPerEpoch } from '../step/batches.js';
import type { LossSpec } from '../step/compile.js';
import { NonFiniteLossError } from '../step/runner.js';
import { Rng } from '../tensor.js';
import type { Callback } from './callbacks.js';
import { type FitConfig, Network } from './network.js';

/** Options of {@link lrFind}. */
export interface LrFindOptions {
  batchSize: number;
  /** Builds the optimizer for a base LR (the test feeds startLr × growth each step). */
  optimizer: (lr: number) => Optimizer & { readonly lr: number };
  /** Default 1e-7. */
  startLr?: number;
  /** Default 10. */
  endLr?: number;
  /** Number of steps over which the LR grows (default 100). */
  steps?: number;
  /** Stop when the smoothed loss exceeds this multiple of the best smoothed loss (default 4). */
  divergence?: number;
  /** EMA factor of the loss smoothing (default 0.98, fastai's). */
  smoothing?: number;
  loss?: LossSpec;
  seed?: number;
  clipNorm?: number;
  groups?: FitConfig['groups'];
  /** Called after every step. */
  onStep?: (p: LrFindPoint) => void;
}

/** One step of the range test. */
export interface LrFindPoint {
  step: number;
  lr: number;
  loss: number;
  smoothed: number;
}

/** The suggested learning rate and how it was chosen. */
export interface LrSuggestion {
  lr: number;
  method: 'steepest' | 'min/10';
  /** LR of the steepest descent of the smoothed loss (when the loss descends at all). */
  steepest?: number;
  /** LR of the lowest smoothed loss, divided by 10. */
  minDiv10: number;
  /** The lowest smoothed loss and its LR. */
  min: { lr: number; loss: number };
}

/** Result of {@link lrFind}. */
export interface LrFindResult {
  points: LrFindPoint[];
  /** Why the test ended. */
  stop: 'diverged' | 'non-finite' | 'completed';
  suggestion: LrSuggestion;
  seconds: number;
}

/** A seeded subset of a source (keeps its `augment`, so Network.fit picks the same training path). */
class SubsetSource implements BatchSource {
  readonly augment: unknown;
  constructor(
    private readonly src: BatchSource,
    private readonly idx: Int32Array,
  ) {
    this.augment = (src as { augment?: unknown }).augment;
  }
  get length(): number {
    return this.idx.length;
  }
  get sampleShape(): readonly number[] {
    return this.src.sampleShape;
  }
  get numClasses(): number | undefined {
    return this.src.numClasses;
  }
  fill(indices: ArrayLike<number>, x: Float32Array, y: BigInt64Array, ctx: { epoch: number; seed: number }): void | Promise<void> {
    return this.src.fill(
      Array.from(indices, (i) => this.idx[i]!),
      x,
      y,
      ctx,
    );
  }
}

/**
 * Runs the LR range test on a copy of `net` (same trainable parameters); `net` itself is not changed.
 * With a frozen backbone and no augmentation the copy trains on cached features, like `fit`.
 */
export async function lrFind(net: Network, train: BatchSource, opts: LrFindOptions): Promise<LrFindResult> {
  const t0 = performance.now();
  const startLr = opts.startLr ?? 1e-7;
  const endLr = opts.endLr ?? 10;
  const steps = opts.steps ?? 100;
  const beta = opts.smoothing ?? 0.98;
  const divergence = opts.divergence ?? 4;
  if (!(endLr > startLr && startLr > 0)) throw new Error(`lrFind: need 0 < startLr < endLr, got ${startLr} and ${endLr}.`);
  if (!(steps >= 5)) throw new Error(`lrFind: steps must be at least 5, got ${steps}.`);
  const copy = new Network(net.model.clone(), { labels: net.labels, preprocess: net.preprocess, cut: net.cut });
  copy.trainable.clear();
  for (const p of net.trainable) copy.trainable.add(p);
  // only as many samples as the test can use, so a frozen backbone computes few features
  let src = train;
  const need = steps * opts.batchSize;
  if (train.length > need) src = new SubsetSource(train, new Rng(opts.seed ?? 0).permutation(train.length).slice(0, need).sort());
  const perEpoch = batchesPerEpoch(src.length, opts.batchSize, src.length > opts.batchSize);
  const ratio = endLr / startLr;
  const points: LrFindPoint[] = [];
  let avg = 0;
  let best = Number.POSITIVE_INFINITY;
  let stop: LrFindResult['stop'] = 'completed';
  const cb: Callback = {
    name: 'lr-find',
    onStepEnd(s, r) {
      const i = points.length;
      avg = beta * avg + (1 - beta) * r.loss;
      const smoothed = avg / (1 - beta ** (i + 1));
      const p = { step: i + 1, lr: r.lr, loss: r.loss, smoothed };
      points.push(p);
      opts.onStep?.(p);
      if (smoothed < best) best = smoothed;
      if (!Number.isFinite(smoothed)) stop = 'non-finite';
      else if (i > 0 && smoothed > divergence * best) stop = 'diverged';
      // the loop's own mid-epoch cancel ends the test
      if (stop !== 'completed' || i + 1 >= steps) s.abort = true;
    },
  };
  try {
    await copy.fit(src, {
      epochs: Math.ceil(steps / perEpoch),
      batchSize: opts.batchSize,
      optimizer: opts.optimizer(startLr),
      schedule: (step) => ratio ** (Math.min(step, steps - 1) / (steps - 1)),
      loss: opts.loss,
      seed: opts.seed,
      clipNorm: opts.clipNorm,
      groups: opts.groups,
      callbacks: [cb],
    });
  } catch (e) {
    if (e instanceof NonFiniteLossError) stop = 'non-finite';
    else throw e;
  }
  if (points.length < 2)
    throw new Error(`The LR range test stopped after ${points.length} step(s) (${stop}); lower startLr (now ${startLr}) or check the data for NaN/Inf.`);
  return { points, stop, suggestion: suggestLr(points, stop !== 'completed'), seconds: (performance.now() - t0) / 1000 };
}

/**
 * Picks an LR from a range test: the steepest descent of the smoothed loss (most negative slope against
 * log10 LR, ignoring the first 10% and, after a divergence, the last 5 points); when the loss never
 * descends (or the steepest point lies past the minimum), the minimum's LR / 10.
 */
export function suggestLr(points: LrFindPoint[], diverged: boolean): LrSuggestion {
  const start = Math.floor(points.length * 0.1);
  const end = Math.max(start + 2, diverged ? points.length - 5 : points.length);
  const pts = points.slice(start, Math.min(end, points.length));
  const use = pts.length >= 2 ? pts : points;
  let min = use[0]!;
  for (const p of use) if (p.smoothed < min.smoothed) min = p;
  const minDiv10 = min.lr / 10;
  let steepest: number | undefined;
  let slope = 0;
  for (let i = 0; i < use.length; i++) {
    const a = use[Math.max(0, i - 1)]!;
    const b = use[Math.min(use.length - 1, i + 1)]!;
    const dx = Math.log10(b.lr) - Math.log10(a.lr);
    const g = dx > 0 ? (b.smoothed - a.smoothed) / dx : 0;
    if (g < slope) {
      slope = g;
      steepest = use[i]!.lr;
    }
  }
  const useSteepest = steepest !== undefined && steepest <= min.lr;
  return {
    lr: useSteepest ? steepest! : minDiv10,
    method: useSteepest ? 'steepest' : 'min/10',
    steepest,
    minDiv10,
    min: { lr: min.lr, loss: min.smoothed },
  };
}

/** A Vega-Lite spec of the range test: raw loss (points), smoothed loss (line), the suggestion (rule), log-scale LR axis. */
export function lrFindChart(r: LrFindResult, title = 'Learning-rate range test'): Record<string, unknown> {
  const x = { field: 'lr', type: 'quantitative', title: 'learning rate (log scale)', scale: { type: 'log' }, axis: { format: '.0e' } };
  // the y range follows the smoothed curve (raw spikes after divergence would flatten it)
  const sm = r.points.map((p) => p.smoothed);
  const lo = Math.min(...sm);
  const hi = Math.max(...sm);
  const pad = (hi - lo) * 0.1 || Math.abs(lo) * 0.05 || 0.1;
  const y = { type: 'quantitative', title: 'loss (points: raw, line: smoothed)', scale: { domain: [lo - pad, hi + pad], clamp: true, zero: false } };
  const s = r.suggestion;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, subtitle: `suggested lr ${fmt(s.lr)} (${s.method === 'steepest' ? 'steepest descent' : 'minimum / 10'})` },
    width: 560,
    height: 320,
    data: { values: r.points.map((p) => ({ lr: p.lr, loss: p.loss, smoothed: p.smoothed })) },
    layer: [
      { mark: { type: 'point', opacity: 0.35, size: 16, color: '#9aa5b1' }, encoding: { x, y: { field: 'loss', ...y } } },
      { mark: { type: 'line', color: '#1f5fa8', strokeWidth: 2 }, encoding: { x, y: { field: 'smoothed', ...y } } },
      {
        data: { values: [{ lr: s.lr, label: `suggested ${fmt(s.lr)}` }] },
        layer: [
          { mark: { type: 'rule', color: '#c0392b', strokeDash: [4, 3] }, encoding: { x } },
          { mark: { type: 'text', align: 'right', baseline: 'top', dx: -4, y: 4, color: '#c0392b' }, encoding: { x, text: { field: 'label' } } },
        ],
      },
    ],
  };
}

/** A plain-text table of about `rows` evenly spaced points, plus the last one. */
export function formatLrTable(points: LrFindPoint[], rows = 15): string[] {
  const every = Math.max(1, Math.ceil(points.length / rows));
  const sel = points.filter((_, i) => i % every === 0 || i === points.length - 1);
  const lines = ['  step  lr          loss      smoothed'];
  for (const p of sel)
    lines.push(`  ${String(p.step).padStart(4)}  ${fmt(p.lr).padEnd(10)}  ${p.loss.toFixed(4).padStart(8)}  ${p.smoothed.toFixed(4).padStart(8)}`);
  return lines;
}

function fmt(v: number): string {
  return v.toExponential(2);
}
