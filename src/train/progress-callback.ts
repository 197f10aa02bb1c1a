/**
 * A training-loop callback that reports progress with {@link createProgress}: one bar per epoch with the
 * step rate, ETA, running loss and LR on a terminal; JSON Lines on pipes, in CI and under --json; nothing
 * under --quiet. At the end of an epoch the bar (or the final JSON line) carries the epoch's metrics.
 */
import { createProgress, type Metrics, type Progress, type ProgressOptions } from '../util/progress.js';
import type { Callback, EpochMetrics, TrainState } from './callbacks.js';

/** Options of {@link ProgressCallback}. */
export interface ProgressCallbackOptions {
  /** Prefix of each epoch's label, e.g. the phase name ("head", "fine-tune"). */
  label?: string;
  /** Passed to createProgress (stream, mode, interval; mainly for tests). */
  progress?: Omit<ProgressOptions, 'total' | 'label' | 'unit'>;
}

/** Shows per-epoch progress of a fit. */
export class ProgressCallback implements Callback {
  readonly name = 'progress';
  private bar: Progress | undefined;
  private lossSum = 0;
  private seen = 0;

  constructor(private readonly opts: ProgressCallbackOptions = {}) {}

  onStepEnd(s: TrainState, r: { loss: number; metrics: Record<string, number>; lr: number }): void {
    if (!this.bar) {
      const label = `${this.opts.label ? `${this.opts.label} ` : ''}epoch ${s.epoch + 1}/${s.epochs}`;
      this.bar = createProgress({ ...this.opts.progress, total: s.stepsPerEpoch, label, unit: 'batch' });
      // resumed in the middle of an epoch: start the bar at the batch the run continues from
      const already = s.step - 1 - s.epoch * s.stepsPerEpoch;
      if (already > 0 && already < s.stepsPerEpoch) this.bar.tick(already);
      this.lossSum = 0;
      this.seen = 0;
    }
    this.lossSum += r.loss;
    this.seen++;
    this.bar.tick(1, { loss: this.lossSum / this.seen, lr: r.lr });
  }

  onEpochEnd(_s: TrainState, m: EpochMetrics): void {
    const shown: Metrics = {};
    for (const [k, v] of Object.entries(m)) if (k !== 'epoch' && k !== 'step') shown[k] = v;
    this.bar?.done(shown);
    this.bar = undefined;
  }

  onTrainEnd(): void {
    this.bar?.done();
    this.bar = undefined;
  }
}
