/**
 * lr-find's suggestion is a learning rate that trains: fastai's `valley` rule, checked by training at it. The
 * rule that came before it (steepest descent before the minimum, else minimum / 10) picks a larger LR on the
 * same curve, and training there ends far worse, so the training assertion below fails on the old code.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { linear, sequential } from '../../src/nn/index.js';
import { sgd } from '../../src/optim/index.js';
import { ArraySource } from '../../src/step/batches.js';
import { Rng } from '../../src/tensor.js';
import { type LrFindPoint, lrFind, lrFindChart, lrPlotRange, suggestLr, valleyIndex } from '../../src/train/lr-find.js';
import { Network } from '../../src/train/network.js';

const D = 128;
const K = 5;

/** Five overlapping classes of non-negative 128-d "features" (like pooled CNN features), class c raised on every K-th dim. */
function features(n: number, seed: number): ArraySource {
  const rng = new Rng(seed);
  const x = new Float32Array(n * D);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % K;
    for (let p = 0; p < D; p++) x[i * D + p] = Math.max(0, rng.normal() + (p % K === y[i] ? 0.3 : 0));
  }
  return new ArraySource(x, y, [D], K);
}

const head = () => new Network(sequential(linear(D, K)).build({ inputShape: ['N', D], seed: 1 }));
const optimizer = (lr: number) => sgd({ lr, momentum: 0.9 });

/** The rule before fastai's valley, verbatim: steepest descent when it lies before the minimum, else minimum / 10. */
function oldRule(points: LrFindPoint[], diverged: boolean): number {
  const start = Math.floor(points.length * 0.1);
  const end = Math.max(start + 2, diverged ? points.length - 5 : points.length);
  const use = points.slice(start, Math.min(end, points.length));
  let min = use[0]!;
  for (const p of use) if (p.smoothed < min.smoothed) min = p;
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
  return steepest !== undefined && steepest <= min.lr ? steepest : min.lr / 10;
}

async function finalLosses(lr: number, train: ArraySource): Promise<number[]> {
  const fit = await head().fit(train, { epochs: 6, batchSize: 16, optimizer: optimizer(lr), seed: 0 });
  return fit.history.map((h) => h.train_loss);
}

test('lr-find suggests a rate that trains (fastai valley); the old rule picks a larger one that trains far worse', async () => {
  const train = features(400, 1);
  const r = await lrFind(head(), train, { batchSize: 16, optimizer, seed: 0 });
  const s = r.suggestion;
  assert.equal(s.method, 'valley');
  assert.equal(s.lr, s.valley);
  assert.ok(s.steepest !== undefined && s.minDiv10 > 0, 'steepest and minimum / 10 stay reported as alternatives');

  const losses = await finalLosses(s.lr, train);
  assert.ok(losses.every(Number.isFinite), `finite losses at the suggestion: ${losses}`);
  assert.ok(losses.at(-1)! < losses[0]! * 0.5, `the loss at lr ${s.lr} falls by half: ${losses}`);
  assert.ok(losses.at(-1)! < 0.6, `the loss at the suggestion ends below 0.6: ${losses}`);

  // the old rule on the same curve: a larger LR, and training there fails the assertion above
  const old = oldRule(r.points, r.stop !== 'completed');
  assert.ok(old > 2 * s.lr, `the old rule's pick ${old} is well above the valley's ${s.lr}`);
  const oldLosses = await finalLosses(old, train);
  assert.ok(!(oldLosses.at(-1)! < 0.6), `training at the old pick ${old} ends at ${oldLosses.at(-1)}, failing the check the suggestion passes`);
});

test('valleyIndex is fastai valley: longest decreasing subsequence, then start + ⌊len/3⌋ + ⌊len/6⌋', () => {
  // expected indices computed with fastai's Python `valley` on the same lists
  assert.equal(valleyIndex([5, 4, 6, 3, 2, 7, 1, 8, 0.5, 9, 9.5, 0.1]), 7);
  assert.equal(valleyIndex([2.0, 2.0, 1.9, 1.7, 1.4, 1.0, 0.7, 0.5, 0.45, 0.6, 1.2, 3.0]), 3);
  assert.equal(valleyIndex([3, 1, 2, 0.5, 0.4, 5, 4.5, 4, 3.5, 3, 2.5, 2, 1.5, 1, 0.9, 0.8]), 8);
});

test('suggestLr drops the first steps/10 and the last 5 points, as fastai does; too few points fall back to minimum / 10', () => {
  const pts = (ls: number[]): LrFindPoint[] => ls.map((l, i) => ({ step: i + 1, lr: 10 ** (i - 7), loss: l, smoothed: l }));
  // 20 points: a long descent from index 2 to 14, then a spike; the first 2 and last 5 are not looked at
  const curve = [9, 9, 3, 2.9, 2.8, 2.6, 2.3, 2.0, 1.6, 1.2, 0.9, 0.7, 0.5, 0.4, 0.35, 0.5, 2, 9, 30, 90];
  const s = suggestLr(pts(curve), 20);
  // window = points 2..14 (13, strictly decreasing): end = 12, lds[end] = 13, start = 12 − 13 = −1 (fastai's
  // arithmetic), so −1 + ⌊13/3⌋ + ⌊13/6⌋ = 5 in the window → point 7
  assert.equal(s.method, 'valley');
  assert.equal(s.lr, 10 ** (7 - 7));
  assert.equal(s.min.loss, 0.35);
  const short = suggestLr(pts([2, 1]), 2);
  assert.equal(short.method, 'valley', 'two points still make a valley');
  const one = suggestLr(pts([2]), 1);
  assert.equal(one.method, 'min/10');
});

test('the plot clips a divergence spike: y-axis from below the minimum to 1.5 × the first loss, and says so', () => {
  const points: LrFindPoint[] = [2, 1.9, 1.5, 1.0, 0.8, 3, 35].map((l, i) => ({ step: i + 1, lr: 10 ** (i - 5), loss: l, smoothed: l }));
  const range = lrPlotRange(points);
  assert.equal(range.hi, 3);
  assert.ok(range.lo < 0.8 && range.lo > 0.6);
  assert.equal(range.clipped, 2, 'the 35 as raw and as smoothed loss');
  const spec = lrFindChart({ points, stop: 'diverged', seconds: 0, suggestion: suggestLr(points, 7) });
  const title = spec.title as { subtitle: string };
  assert.match(title.subtitle, /y-axis clipped at 3\.00: 2 value\(s\) above it/);
  const layer = (spec.layer as { encoding: { y?: { scale: { domain: number[] } } } }[])[0]!;
  assert.deepEqual(layer.encoding.y!.scale.domain, [range.lo, range.hi]);
});
