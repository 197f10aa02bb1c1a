/**
 * What `Network.fit` reports while it runs (its `onProgress` option): one `step` per optimizer step, one
 * `epoch` per epoch, and `task` reports of the long parts before training (hashing and extracting features for
 * the frozen-backbone path). The run layer's step and epoch events (run/events.ts) have the same shapes plus
 * the phase, so a surface renders both alike. Plain JSON-serialisable objects.
 */
import type { TaskProgress } from '../util/progress.js';
import type { Callback, EpochMetrics, TrainState } from './callbacks.js';

/** One optimizer step: `batch` of `batches` in epoch `epoch` (1-based) of `epochs`; `step` counts from 1. */
export interface FitStep {
  type: 'step';
  epoch: number;
  epochs: number;
  batch: number;
  batches: number;
  step: number;
  loss: number;
  lr: number;
}

/** One `Network.fit` progress report. */
export type FitProgress = FitStep | { type: 'epoch'; metrics: EpochMetrics } | ({ type: 'task' } & TaskProgress);

/** The step report of a training-loop state (shared with the run layer's EventCallback). */
export function fitStep(s: TrainState, r: { loss: number; lr: number }): FitStep {
  return {
    type: 'step',
    epoch: s.epoch + 1,
    epochs: s.epochs,
    batch: s.step - s.epoch * s.stepsPerEpoch,
    batches: s.stepsPerEpoch,
    step: s.step,
    loss: r.loss,
    lr: r.lr,
  };
}

/** A training-loop callback that turns steps and epochs into {@link FitProgress} reports. */
export function progressCallback(onProgress: (p: FitProgress) => void): Callback {
  return {
    name: 'progress',
    onStepEnd: (s, r) => onProgress(fitStep(s, r)),
    onEpochEnd: (_s, metrics) => onProgress({ type: 'epoch', metrics }),
  };
}
