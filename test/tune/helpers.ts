/** Shared pieces of the tune tests: a synthetic objective and a sampler loop without storage. */
import type { Sampler } from '../../src/tune/samplers.js';
import { type Params, parseSpace } from '../../src/tune/space.js';
import type { TrialRecord } from '../../src/tune/types.js';

/** A 2-D space plus a categorical: the optimum is lr = 1e-2, y = 0.3, c = 'c'. */
export const SYNTH_SPACE = parseSpace({
  lr: { type: 'log-uniform', low: 1e-4, high: 1 },
  y: { type: 'uniform', low: 0, high: 1 },
  c: { type: 'categorical', choices: ['a', 'b', 'c', 'd'] },
});

/** The synthetic objective (maximised; 0 at the optimum). */
export function synth(p: Params): number {
  const u = Math.log10(p.lr as number) + 2;
  return -(u * u) / 4 - 4 * ((p.y as number) - 0.3) ** 2 - (p.c === 'c' ? 0 : 0.3);
}

/** True when p is in a small window around the optimum (random search lands there ~2% of the time). */
export function nearOptimum(p: Params): boolean {
  return Math.abs(Math.log10(p.lr as number) + 2) < 0.25 && Math.abs((p.y as number) - 0.3) < 0.08;
}

/** Runs `n` sequential trials of `f` with `sampler` and returns the records. */
export function sampleLoop(sampler: Sampler, n: number, f: (p: Params) => number): TrialRecord[] {
  const trials: TrialRecord[] = [];
  for (let id = 0; id < n; id++) {
    const params = sampler.sample(id, trials);
    trials.push({ id, attempt: 1, params, state: 'complete', value: f(params), reports: new Map(), started: 0 });
  }
  return trials;
}
