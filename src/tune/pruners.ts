/**
 * Pruners stop unpromising trials early from their per-epoch validation reports.
 *
 * - **median** (as Optuna's MedianPruner): after `startup` complete trials and `warmup` steps, stop a trial
 *   whose best value so far is worse than the median of the complete trials' values at the same step.
 * - **asha** (asynchronous successive halving, Li et al. 2020): rungs at `minResource · η^k` epochs; a trial
 *   reaching a rung continues only if its value there is in the top 1/η of every value recorded at that rung
 *   so far (the first trials, fewer than η, continue only if they are the best so far).
 *
 * Both are pure functions of the recorded reports, so a resumed study decides exactly as before.
 */
import { bestFirst, better, type Direction, type TrialRecord } from './types.js';

/** Decides whether a trial that just reported should stop. */
export interface Pruner {
  readonly name: string;
  /**
   * @param trial the reporting trial, its `reports` already including (step, value).
   * @param trials every trial of the study (the reporting one included).
   */
  shouldPrune(trial: TrialRecord, step: number, trials: readonly TrialRecord[]): boolean;
}

/** Never prunes. */
export class NoPruner implements Pruner {
  readonly name = 'none';
  shouldPrune(): boolean {
    return false;
  }
}

/** Options of {@link MedianPruner}. */
export interface MedianOptions {
  /** Complete trials needed before pruning starts (default 5). */
  startup?: number;
  /** Steps (epochs) of every trial that are never pruned (default 0). */
  warmup?: number;
  /** Check every `interval` steps (default 1). */
  interval?: number;
}

/** The median stopping rule. */
export class MedianPruner implements Pruner {
  readonly name = 'median';
  private readonly o: Required<MedianOptions>;
  constructor(
    readonly direction: Direction,
    opts: MedianOptions = {},
  ) {
    this.o = { startup: 5, warmup: 0, interval: 1, ...opts };
  }
  shouldPrune(trial: TrialRecord, step: number, trials: readonly TrialRecord[]): boolean {
    if (step <= this.o.warmup || (step - this.o.warmup) % this.o.interval !== 0) return false;
    const complete = trials.filter((t) => t.state === 'complete' && t.id !== trial.id);
    if (complete.length < this.o.startup) return false;
    const others = complete.map((t) => t.reports.get(step)).filter((v): v is number => v !== undefined && Number.isFinite(v));
    if (others.length === 0) return false;
    others.sort((a, b) => a - b);
    const mid = others.length >> 1;
    const median = others.length % 2 ? others[mid]! : (others[mid - 1]! + others[mid]!) / 2;
    let best = Number.NaN;
    for (const [s, v] of trial.reports) if (s <= step && Number.isFinite(v) && (Number.isNaN(best) || better(this.direction, v, best))) best = v;
    if (Number.isNaN(best)) return true; // only NaN/Inf so far: hopeless
    return better(this.direction, median, best);
  }
}

/** Options of {@link AshaPruner}. */
export interface AshaOptions {
  /** Epochs at the first rung (default 1). */
  minResource?: number;
  /** Reduction factor η: the top 1/η of each rung continues (default 3). */
  reductionFactor?: number;
  /** Skips the first rungs: rung k sits at minResource · η^(k + rate) (default 0). */
  minEarlyStoppingRate?: number;
}

/** Asynchronous successive halving. */
export class AshaPruner implements Pruner {
  readonly name = 'asha';
  private readonly o: Required<AshaOptions>;
  constructor(
    readonly direction: Direction,
    opts: AshaOptions = {},
  ) {
    this.o = { minResource: 1, reductionFactor: 3, minEarlyStoppingRate: 0, ...opts };
    if (!(this.o.reductionFactor >= 2)) throw new Error(`pruner.reductionFactor must be ≥ 2, got ${this.o.reductionFactor}; 3 is usual.`);
    if (!(this.o.minResource > 0)) throw new Error(`pruner.minResource must be > 0 epochs, got ${this.o.minResource}.`);
  }

  /** Epochs at rung k. */
  rung(k: number): number {
    return this.o.minResource * this.o.reductionFactor ** (k + this.o.minEarlyStoppingRate);
  }

  /** A trial's value at rung resource r: its report at the first step ≥ r (undefined if it never got there). */
  private valueAt(t: TrialRecord, r: number): { step: number; value: number } | undefined {
    let first: number | undefined;
    for (const s of t.reports.keys()) if (s >= r && (first === undefined || s < first)) first = s;
    return first === undefined ? undefined : { step: first, value: t.reports.get(first)! };
  }

  shouldPrune(trial: TrialRecord, step: number, trials: readonly TrialRecord[]): boolean {
    for (let k = 0; this.rung(k) <= step; k++) {
      const r = this.rung(k);
      const mine = this.valueAt(trial, r);
      if (!mine || mine.step !== step) continue; // this rung was decided at an earlier report
      if (!Number.isFinite(mine.value)) return true;
      const competing = trials
        .map((t) => (t.id === trial.id ? mine : this.valueAt(t, r)))
        .filter((v): v is { step: number; value: number } => v !== undefined && Number.isFinite(v.value))
        .map((v) => v.value)
        .sort(bestFirst(this.direction));
      const idx = Math.max(0, Math.floor(competing.length / this.o.reductionFactor) - 1);
      if (better(this.direction, competing[idx]!, mine.value)) return true;
    }
    return false;
  }
}

/** Pruner settings of a tune config. */
export type PrunerConfig = { name: 'none' } | ({ name: 'median' } & MedianOptions) | ({ name: 'asha' } & AshaOptions);

/** Builds the configured pruner. */
export function makePruner(cfg: PrunerConfig, direction: Direction): Pruner {
  switch (cfg.name) {
    case 'none':
      return new NoPruner();
    case 'median': {
      const { name: _n, ...o } = cfg;
      return new MedianPruner(direction, o);
    }
    case 'asha': {
      const { name: _n, ...o } = cfg;
      return new AshaPruner(direction, o);
    }
  }
}
