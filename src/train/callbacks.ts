/**
 * Callbacks: cross-cutting concerns of a training run (early stopping, checkpoints, progress,
 * metric logs) live here instead of as flags threaded through the loop (fastai's lesson).
 */
import type { StepRunner } from '../step/runner.js';
import type { Tensor } from '../tensor.js';

/** Metrics of one epoch: train_loss, train_acc, val_loss, val_acc, lr, ... */
export type EpochMetrics = Record<string, number>;

export interface TrainState {
  runner: StepRunner;
  epoch: number;
  /** Global optimizer step (1-based after the first step). */
  step: number;
  totalSteps: number;
  epochs: number;
  stepsPerEpoch: number;
  /** Set to true by a callback to stop after the current epoch. */
  stop: boolean;
  /**
   * Set to true by a callback to stop at once, after the current step: the loop checkpoints its position
   * (with a checkpoint folder) and returns with `cancelled`, so `resume` continues exactly there.
   */
  abort?: boolean;
  /** Metrics history, one entry per finished epoch. */
  history: EpochMetrics[];
  seed: number;
}

export interface Callback {
  /** Stable name used to keep this callback's state in checkpoints. */
  readonly name: string;
  onTrainBegin?(s: TrainState): void | Promise<void>;
  onStepEnd?(s: TrainState, r: { loss: number; metrics: Record<string, number>; lr: number }): void | Promise<void>;
  onEpochEnd?(s: TrainState, m: EpochMetrics): void | Promise<void>;
  /** A checkpoint file was written (last.ckpt mid-epoch or at an epoch end, best.ckpt). */
  onCheckpoint?(s: TrainState, file: string): void | Promise<void>;
  onTrainEnd?(s: TrainState): void | Promise<void>;
  /** State to store in checkpoints, and to restore on resume. */
  saveState?(): unknown;
  loadState?(state: unknown): void;
  /** Tensors to store in checkpoints beside the runner's state (e.g. a selected model's weights), restored on resume. */
  saveTensors?(): Map<string, Tensor>;
  loadTensors?(tensors: Map<string, Tensor>): void;
}

/** Which direction is better for a metric name. */
export function metricMode(name: string): 'min' | 'max' {
  return /loss|error|ece|entropy/i.test(name) ? 'min' : 'max';
}

/**
 * Stops when `monitor` has not improved for `patience` epochs; with `restoreBest` the runner's
 * parameters are set back to the best epoch's at the end.
 */
export class EarlyStopping implements Callback {
  readonly name = 'early-stopping';
  private best = Number.NaN;
  private bestEpoch = -1;
  private wait = 0;
  private bestState?: ReturnType<StepRunner['state']>;
  private readonly mode: 'min' | 'max';
  constructor(readonly opts: { monitor?: string; patience?: number; minDelta?: number; restoreBest?: boolean; mode?: 'min' | 'max' } = {}) {
    this.mode = opts.mode ?? metricMode(opts.monitor ?? 'val_loss');
  }
  get monitor(): string {
    return this.opts.monitor ?? 'val_loss';
  }
  /** Epoch (0-based) with the best monitored value so far. */
  get bestEpochIndex(): number {
    return this.bestEpoch;
  }
  onEpochEnd(s: TrainState, m: EpochMetrics): void {
    const v = m[this.monitor];
    if (v === undefined)
      throw new Error(
        `EarlyStopping monitors "${this.monitor}", but the epoch reported only ${Object.keys(m).join(', ')}. Give a validation set or monitor a train metric.`,
      );
    const delta = this.opts.minDelta ?? 0;
    const better = Number.isNaN(this.best) || (this.mode === 'min' ? v < this.best - delta : v > this.best + delta);
    if (better) {
      this.best = v;
      this.bestEpoch = s.epoch;
      this.wait = 0;
      if (this.opts.restoreBest ?? true) this.bestState = s.runner.state(['param', 'bn']);
    } else if (++this.wait >= (this.opts.patience ?? 3)) s.stop = true;
  }
  onTrainEnd(s: TrainState): void {
    if ((this.opts.restoreBest ?? true) && this.bestState) s.runner.load(this.bestState);
  }
  saveState(): unknown {
    return { best: this.best, bestEpoch: this.bestEpoch, wait: this.wait };
  }
  loadState(st: unknown): void {
    const o = st as { best: number; bestEpoch: number; wait: number };
    this.best = o.best ?? Number.NaN;
    this.bestEpoch = o.bestEpoch;
    this.wait = o.wait;
  }
  /** Best parameters seen (for checkpointing the best model). */
  get bestParams(): ReturnType<StepRunner['state']> | undefined {
    return this.bestState;
  }
  setBestParams(p: ReturnType<StepRunner['state']>): void {
    this.bestState = p;
  }
}
