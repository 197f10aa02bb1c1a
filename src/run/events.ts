/**
 * The events of a run: what every surface (the CLI's bars and notes, a UI's live curves, a server's status,
 * a worker's log) receives while the run layer trains. They are plain JSON-serialisable objects, so they can
 * cross a process or an HTTP stream unchanged.
 */
import type { Callback, EpochMetrics, TrainState } from '../train/callbacks.js';
import { type FitStep, fitStep } from '../train/progress.js';
import type { TaskProgress } from '../util/progress.js';

/** What a finished training run reports (also the `graft train --json` output). */
export interface TrainSummary {
  run: string;
  model: string;
  export?: string;
  classes: string[];
  samples: { train: number; val: number; test: number };
  /** Each phase; `restoredEpoch` (1-based, within the phase) is the epoch whose weights early stopping restored, by `monitor`. */
  phases: { name: string; epochs: number; stoppedEarly: boolean; resumed: boolean; restoredEpoch?: number; monitor?: string }[];
  /** Final metrics of the saved model. */
  metrics: { val?: { loss: number; acc: number }; test?: { loss: number; acc: number } };
  /** Temperature scaling fitted on the validation data: the temperature and val NLL/ECE before and after. */
  calibration?: { temperature: number; before: { nll: number; ece: number }; after: { nll: number; ece: number } };
  /** The run's report.html. */
  report?: string;
  /** Every epoch's metrics, with its phase. */
  history: Record<string, number | string>[];
  /** train.mode auto: what its search tried and chose, and whether the last stages were fine-tuned. */
  auto?: AutoSummary;
}

/** One head setting the auto mode's search tried, and its score on the validation data. */
export interface AutoTrial {
  /** 1-based, in the order of the search's fixed list. */
  trial: number;
  lr: number;
  epochs: number;
  weightDecay: number;
  /** Validation accuracy and loss of the epoch early stopping kept (else the last). */
  val_acc: number;
  val_loss: number;
  /** Epochs trained (fewer than `epochs` when early stopping ended the trial). */
  epochsRun: number;
  seconds: number;
}

/** What `train.mode: auto` did (also in model.json as `auto`, and in the run folder as auto.json). */
export interface AutoSummary {
  /** The budget (seconds) and the wall-clock seconds the search and fine-tune took. */
  budget: number;
  seconds: number;
  /** Computing the backbone's features of the train and val samples (cached on disk: a second run reads them). */
  features: { samples: number; seconds: number };
  /** The search: trials planned from the time estimate, and each trial run. */
  search: { planned: number; of: number; trials: AutoTrial[]; best: number };
  /** The last-stages fine-tune from the best head: run or skipped, with the estimate that decided. */
  fineTune: {
    ran: boolean;
    /**
     * Estimated seconds it needs (measured only when the head search leaves time), and the seconds the planned
     * head search leaves; both decided once, after the first trial.
     */
    estimate?: number;
    left: number;
    /** Why it did not run, or why its result was not kept. */
    reason?: string;
    epochs?: number;
    val_acc?: number;
    val_loss?: number;
    /** True when it beat the best head on the validation data and is the saved model. */
    kept?: boolean;
  };
  /** Which stage the saved model comes from. */
  chosen: 'head' | 'last-stages';
}

/** One event of a run. */
export type RunEvent =
  /** Something the user should know (data summary, resumed epochs, the feature cache in use). */
  | { type: 'note'; message: string }
  /** Something that may be wrong but does not stop the run (corrupt files skipped, leakage between splits). */
  | { type: 'warning'; message: string }
  /** The run folder is locked and the data and network are ready. */
  | { type: 'start'; run: string; classes: string[]; samples: TrainSummary['samples']; phases: string[] }
  /** A training phase begins (or is restored whole from its checkpoint when `resumed`). */
  | { type: 'phase'; phase: string; index: number; count: number; epochs: number; resumed: boolean }
  /** One optimizer step: `batch` of `batches` in epoch `epoch` (1-based) of `epochs`. */
  | ({ phase: string } & FitStep)
  /** train.mode auto: one trial of the head search ended (`best`: the best so far by validation). */
  | ({ type: 'trial'; trials: number; best: boolean } & AutoTrial)
  /** A long part before or after training (validating images, hashing, extracting features): done of total. */
  | ({ type: 'progress' } & TaskProgress)
  /** An epoch ended, with its metrics (train_loss, train_acc, val_loss, val_acc, …). */
  | { type: 'epoch'; phase: string; metrics: EpochMetrics }
  /** A checkpoint file was written. */
  | { type: 'checkpoint'; phase: string; file: string }
  /** The run ended: the model is written and evaluated. */
  | { type: 'finished'; summary: TrainSummary }
  /** The run was cancelled (after a checkpoint of its position, so `resume` continues it). */
  | { type: 'cancelled'; run: string }
  /** The run failed with this one-line message. */
  | { type: 'failed'; error: string };

/** Receives a run's events. */
export type RunListener = (event: RunEvent) => void;

/** Raised by a run stopped through its AbortSignal; its last checkpoint holds the position, so `resume` continues it. */
export class RunCancelled extends Error {
  override name = 'RunCancelled';
  constructor(readonly run: string) {
    super(`The run ${run} was cancelled; its last checkpoint holds its position. Continue it with resume (graft train --resume).`);
  }
}

/**
 * The training loop's callback that turns steps and epochs into run events, and stops the loop at the next
 * step once `signal` is aborted (the loop checkpoints its position first, so the run can be resumed).
 */
export class EventCallback implements Callback {
  readonly name = 'events';
  constructor(
    private readonly phase: string,
    private readonly emit: RunListener,
    private readonly signal?: AbortSignal,
  ) {}

  onStepEnd(s: TrainState, r: { loss: number; lr: number }): void {
    this.emit({ phase: this.phase, ...fitStep(s, r) });
    if (this.signal?.aborted) s.abort = true;
  }

  onEpochEnd(_s: TrainState, m: EpochMetrics): void {
    this.emit({ type: 'epoch', phase: this.phase, metrics: m });
  }

  onCheckpoint(_s: TrainState, file: string): void {
    this.emit({ type: 'checkpoint', phase: this.phase, file });
  }
}
