/** TPE: concentrates its samples near the optimum of a synthetic objective far more than random search, reproducibly. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RandomSampler } from '../../src/tune/samplers.js';
import { parseSpace } from '../../src/tune/space.js';
import { logDensity, logMass, normCdf, parzen, TpeSampler } from '../../src/tune/tpe.js';
import { nearOptimum, SYNTH_SPACE, sampleLoop, synth } from './helpers.js';

test('after 60 trials, TPE samples near the optimum far more often than random search (5 seeds)', () => {
  const fracNear = (ts: ReturnType<typeof sampleLoop>) => ts.slice(10).filter((t) => nearOptimum(t.params)).length / 50;
  const tpe: number[] = [];
  const rnd: number[] = [];
  const tpeCat: number[] = [];
  for (const seed of [0, 1, 2, 3, 4]) {
    const a = sampleLoop(new TpeSampler(SYNTH_SPACE, 'maximize', { seed }), 60, synth);
    const b = sampleLoop(new RandomSampler(SYNTH_SPACE, seed), 60, synth);
    tpe.push(fracNear(a));
    rnd.push(fracNear(b));
    tpeCat.push(a.slice(10).filter((t) => t.params.c === 'c').length / 50);
    // the first `startup` trials are the random sampler's draws
    assert.deepEqual(
      a.slice(0, 10).map((t) => t.params),
      b.slice(0, 10).map((t) => t.params),
    );
  }
  const mean = (v: number[]) => v.reduce((x, y) => x + y, 0) / v.length;
  // random lands in the window ~2% of the time (0.5/4 of log-lr × 0.16 of y)
  assert.ok(mean(rnd) < 0.08, `random: ${rnd}`);
  assert.ok(mean(tpe) > 0.15 && mean(tpe) > 4 * mean(rnd), `TPE ${tpe} vs random ${rnd}`);
  assert.ok(Math.min(...tpe) > Math.max(...rnd), `every TPE seed beats every random seed: ${tpe} vs ${rnd}`);
  assert.ok(mean(tpeCat) > 0.6, `TPE picks the best category most of the time: ${tpeCat}`);
});

test('TPE minimises as well, and is reproducible from its seed', () => {
  const f = (p: Record<string, unknown>) => -synth(p as never);
  const a = sampleLoop(new TpeSampler(SYNTH_SPACE, 'minimize', { seed: 7 }), 40, f);
  const b = sampleLoop(new TpeSampler(SYNTH_SPACE, 'minimize', { seed: 7 }), 40, f);
  assert.deepEqual(
    a.map((t) => t.params),
    b.map((t) => t.params),
  );
  assert.ok(a.slice(20).filter((t) => nearOptimum(t.params)).length >= 4);
  const c = sampleLoop(new TpeSampler(SYNTH_SPACE, 'minimize', { seed: 8 }), 40, f);
  assert.notDeepEqual(
    a.map((t) => t.params),
    c.map((t) => t.params),
  );
});

test('Parzen estimator: truncated mixture integrates to 1, bandwidths are clipped, ints use masses', () => {
  assert.ok(Math.abs(normCdf(0) - 0.5) < 1e-7 && Math.abs(normCdf(1.96) - 0.975) < 1e-4 && Math.abs(normCdf(-1.96) - 0.025) < 1e-4);
  const m = parzen([0.1, 0.15, 0.9], 0, 1);
  let integral = 0;
  const n = 2000;
  for (let i = 0; i < n; i++) integral += Math.exp(logDensity(m, (i + 0.5) / n)) / n;
  assert.ok(Math.abs(integral - 1) < 1e-3, `∫ = ${integral}`);
  assert.ok(m.sigmas.every((s) => s >= 1 / 5 - 1e-12 && s <= 1));
  assert.ok(Math.abs(logMass(m, 0, 1)) < 1e-9);
  // density is higher near the observations than far from them
  assert.ok(logDensity(m, 0.12) > logDensity(m, 0.5));
});

test('TPE ranks pruned trials after complete ones, and ignores failed trials', () => {
  const s = new TpeSampler(parseSpace({ x: { type: 'uniform', low: 0, high: 1 } }), 'maximize', { startup: 2 });
  const rec = (id: number, state: 'complete' | 'pruned' | 'failed', value?: number, steps = 1) => ({
    id,
    attempt: 1,
    params: { x: id / 10 },
    state,
    value,
    reports: new Map(Array.from({ length: steps }, (_, i) => [i + 1, value ?? 0] as [number, number])),
    started: 0,
  });
  const ranked = s.rank([rec(0, 'pruned', 0.99, 1), rec(1, 'complete', 0.5), rec(2, 'failed'), rec(3, 'complete', 0.7), rec(4, 'pruned', 0.1, 3)]);
  assert.deepEqual(
    ranked.map((t) => t.id),
    [3, 1, 4, 0],
  );
});
