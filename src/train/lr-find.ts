/**
 * The learning-rate range test (Smith 2015; fastai's `lr_find`): train a copy of the network for ~100 steps
 * while the LR grows exponentially from `startLr` to `endLr`, record the (bias-corrected, exponentially
 * smoothed) loss, stop once it exceeds `divergence` × its best, and suggest an LR with fastai's `valley` rule
 * (about halfway down the longest descending run of the smoothed loss); the steepest descent and the minimum's
 * LR / 10 are reported as alternatives.
 */

import type { Optimizer } from '../optim/optimizer.js';
import { type BatchSource, batchesPerEpoch } from '../step/batches.js';
import type { LossSpec } from '../step/compile.js';
import { NonFiniteLossError } from '../step/runner.js';
import { Rng } from '../tensor.js';
import type { OnTaskProgress } from '../util/progress.js';
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
  /** Progress of the frozen backbone's feature extraction before the test. */
  onTaskProgress?: OnTaskProgress;
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
  /** The suggestion: the valley rule's LR (the minimum's LR / 10 when too few points remain for it). */
  lr: number;
  method: 'valley' | 'min/10';
  /** fastai's `valley`: the LR about halfway down the longest descending run of the smoothed loss. */
  valley?: number;
  /** LR of the steepest descent of the smoothed loss (when the loss descends at all); an alternative. */
  steepest?: number;
  /** LR of the lowest smoothed loss, divided by 10; an alternative. */
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
      onProgress: opts.onTaskProgress && ((e) => void (e.type === 'task' && opts.onTaskProgress?.(e))),
    });
  } catch (e) {
    if (e instanceof NonFiniteLossError) stop = 'non-finite';
    else throw e;
  }
  if (points.length < 2)
    throw new Error(`The LR range test stopped after ${points.length} step(s) (${stop}); lower startLr (now ${startLr}) or check the data for NaN/Inf.`);
  return { points, stop, suggestion: suggestLr(points, steps), seconds: (performance.now() - t0) / 1000 };
}

/**
 * The points the suggestion rules look at, as fastai's `lr_find` slices them: without the first `steps` / 10
 * (the loss barely moves there) and the last 5 (where a divergence starts), and cut before the first
 * non-finite smoothed loss. Falls back to every finite point when fewer than 2 would remain.
 */
function suggestionWindow(points: LrFindPoint[], steps: number): LrFindPoint[] {
  const finite = points.slice(0, firstNonFinite(points));
  const win = finite.slice(Math.floor(steps / 10), points.length - 5);
  return win.length >= 2 ? win : finite.length >= 1 ? finite : points.slice(0, 1);
}

function firstNonFinite(points: LrFindPoint[]): number {
  const i = points.findIndex((p) => !Number.isFinite(p.smoothed));
  return i < 0 ? points.length : i;
}

/**
 * fastai's `valley` (fastai/callback/schedule.py, after ESRI's arcgis.learn): `lds[i]` is the length of the
 * longest strictly decreasing subsequence of the smoothed loss ending at point i (O(n²) dynamic programme);
 * `end` is the first point with the largest `lds`, `start = end − lds[end]`, and the suggestion is the point
 * at `start + ⌊(end − start)/3⌋ + ⌊(end − start)/6⌋`, about halfway down that longest valley. Like fastai,
 * `end`/`start` are updated inside the inner loop (so `start` uses `lds[end]` as it was when `end` was taken).
 * Returns the index into `losses`.
 */
export function valleyIndex(losses: readonly number[]): number {
  const n = losses.length;
  const lds = new Array<number>(n).fill(1);
  let maxStart = 0;
  let maxEnd = 0;
  for (let i = 1; i < n; i++)
    for (let j = 0; j < i; j++) {
      if (losses[i]! < losses[j]! && lds[i]! < lds[j]! + 1) lds[i] = lds[j]! + 1;
      if (lds[maxEnd]! < lds[i]!) {
        maxEnd = i;
        maxStart = maxEnd - lds[maxEnd]!;
      }
    }
  const sections = (maxEnd - maxStart) / 3;
  return Math.min(n - 1, Math.max(0, maxStart + Math.floor(sections) + Math.floor(sections / 2)));
}

/**
 * Picks an LR from a range test of `steps` planned steps (default: the number of points). The suggestion is
 * fastai's {@link valleyIndex} rule on the smoothed loss of the {@link suggestionWindow}; the steepest descent
 * (most negative slope against log10 LR) and the minimum's LR / 10 are reported as alternatives, and the
 * minimum / 10 is the suggestion when fewer than 2 points remain for the valley.
 */
export function suggestLr(points: LrFindPoint[], steps = points.length): LrSuggestion {
  const use = suggestionWindow(points, steps);
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
  const valley = use.length >= 2 ? use[valleyIndex(use.map((p) => p.smoothed))]!.lr : undefined;
  return {
    lr: valley ?? minDiv10,
    method: valley !== undefined ? 'valley' : 'min/10',
    valley,
    steepest,
    minDiv10,
    min: { lr: min.lr, loss: min.smoothed },
  };
}

/**
 * The y range of the plot: from just below the lowest loss to 1.5 × the first smoothed loss (or the highest
 * loss, if lower), so a divergence spike does not flatten the useful region. `clipped` counts the raw and
 * smoothed values above the top; the chart draws them on its top edge and says so.
 */
export function lrPlotRange(points: LrFindPoint[]): { lo: number; hi: number; clipped: number } {
  const vals = points.flatMap((p) => [p.loss, p.smoothed]).filter(Number.isFinite);
  const low = Math.min(...vals);
  const high = Math.max(...vals);
  const first = points.find((p) => Number.isFinite(p.smoothed))?.smoothed ?? high;
  const hi = Math.min(high, Math.max(first * 1.5, low + 1e-6));
  const lo = low - (hi - low) * 0.05;
  const clipped = points.flatMap((p) => [p.loss, p.smoothed]).filter((v) => !(v <= hi)).length;
  return { lo, hi, clipped };
}

/**
 * A Vega-Lite spec of the range test: raw loss (points), smoothed loss (line), the suggestion (red rule) and
 * the alternatives (grey rules), log-scale LR axis, y-axis clipped by {@link lrPlotRange}.
 */
export function lrFindChart(r: LrFindResult, title = 'Learning-rate range test'): Record<string, unknown> {
  const x = { field: 'lr', type: 'quantitative', title: 'learning rate (log scale)', scale: { type: 'log' }, axis: { format: '.0e' } };
  const { lo, hi, clipped } = lrPlotRange(r.points);
  const y = { type: 'quantitative', title: 'loss (points: raw, line: smoothed)', scale: { domain: [lo, hi], clamp: true, zero: false } };
  const s = r.suggestion;
  const clipNote = clipped > 0 ? `; y-axis clipped at ${hi.toPrecision(3)}: ${clipped} value(s) above it drawn on the top edge` : '';
  const alternatives = [
    ...(s.steepest !== undefined ? [{ lr: s.steepest, label: `steepest ${fmt(s.steepest)}` }] : []),
    { lr: s.minDiv10, label: `min/10 ${fmt(s.minDiv10)}` },
  ];
  const rules = (values: { lr: number; label: string }[], color: string, baseline: string) => ({
    data: { values },
    layer: [
      { mark: { type: 'rule', color, strokeDash: [4, 3] }, encoding: { x } },
      { mark: { type: 'text', align: 'right', baseline, dx: -4, y: baseline === 'top' ? 4 : 316, color }, encoding: { x, text: { field: 'label' } } },
    ],
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, subtitle: `suggested lr ${fmt(s.lr)} (${s.method === 'valley' ? 'valley' : 'minimum / 10'})${clipNote}` },
    width: 560,
    height: 320,
    data: { values: r.points.map((p) => ({ lr: p.lr, loss: p.loss, smoothed: p.smoothed })) },
    layer: [
      { mark: { type: 'point', opacity: 0.35, size: 16, color: '#9aa5b1' }, encoding: { x, y: { field: 'loss', ...y } } },
      { mark: { type: 'line', color: '#1f5fa8', strokeWidth: 2, clip: true }, encoding: { x, y: { field: 'smoothed', ...y } } },
      rules(alternatives, '#7f8c8d', 'bottom'),
      rules([{ lr: s.lr, label: `suggested ${fmt(s.lr)}` }], '#c0392b', 'top'),
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
