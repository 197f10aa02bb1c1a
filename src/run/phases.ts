/**
 * The phase loop of a training run: the recipe's phases (train/recipes.ts), each one `Network.fit` with the
 * config's optimizer, schedule, loss and early stopping. `runTraining` drives it with its run folder (events,
 * metrics log, checkpoints, resume); a `graft tune` trial drives the same loop without a folder, with a
 * callback that reports each epoch to the pruner. So a trial with config overrides S trains exactly what
 * `graft train` with config S trains.
 */
import type { BatchSource } from '../step/batches.js';
import type { LossSpec } from '../step/compile.js';
import { type Callback, EarlyStopping, type EpochMetrics } from '../train/callbacks.js';
import type { FitConfig, Network } from '../train/network.js';
import { type Phase, phasesOf } from '../train/recipes.js';
import type { GraftConfig } from './config.js';
import type { TrainSummary } from './events.js';
import { restoredEpochOf } from './report.js';
import { makeLoss, makeLrSchedule, makeOptimizer } from './setup.js';

/** What one phase trained (or, resumed, had trained). */
export interface PhaseResult {
  history: EpochMetrics[];
  stoppedEarly: boolean;
  /** Optimizer steps taken. */
  steps: number;
  cancelled?: boolean;
}

/** Early stopping's settings, from `train.earlyStopping`. */
export type EarlyStoppingOptions = ConstructorParameters<typeof EarlyStopping>[0];

/** How a driver of the loop takes part in each phase (all optional). */
export interface PhaseHooks {
  /**
   * Called before a phase trains (after its parameters were made trainable). Returns the phase's callbacks
   * besides early stopping, its checkpoint folder, and `done` for a phase an earlier run finished (resume):
   * its state is loaded and it is not trained again.
   */
  begin?(
    p: Phase,
    index: number,
    count: number,
  ): {
    callbacks?: Callback[];
    checkpointDir?: string;
    done?: Pick<PhaseResult, 'history' | 'stoppedEarly'> & { tensors: Parameters<Network['loadState']>[0] };
  };
  /** The early stopping callback of a phase (default: in memory). */
  earlyStopping?(p: Phase, opts: EarlyStoppingOptions): EarlyStopping;
  /** A phase's fit threw: return what it trained, or rethrow. */
  recover?(p: Phase, e: unknown): PhaseResult;
  /** A phase ended (not called for a phase taken from `begin`'s `done`). Throw to end the loop (e.g. cancelled). */
  end?(p: Phase, r: PhaseResult): void;
  /** Checked after each phase: true stops the loop (e.g. the pruner stopped a trial). */
  stop?(): boolean;
}

/** The data and network of the loop. */
export interface PhaseJob {
  cfg: GraftConfig;
  net: Network;
  train: BatchSource;
  val?: BatchSource;
  /**
   * The backbone's features of the train and val samples, computed beforehand (a tune study's prepared
   * features): head-only phases train on them. A job with them may give them as `train`/`val` too, when it
   * has only head-only phases.
   */
  features?: { train: BatchSource; val?: BatchSource };
  /** The labels of the training samples (for class weights). */
  trainLabels: Int32Array;
  numClasses: number;
  /** `graft pretrain`'s one phase. */
  pretrain?: boolean;
  /** Progress of each fit (steps, epochs, and the feature path's hashing and extraction). */
  onProgress?: FitConfig['onProgress'];
  /** onnxruntime threads of each fit's sessions (default: the process default). */
  threads?: number;
}

/** The phases of a config, each with its history. */
export interface PhasesResult {
  /** Every epoch's metrics, with its phase's name. */
  history: Record<string, number | string>[];
  /** Each phase, with the epoch early stopping restored (when it did). */
  phases: TrainSummary['phases'];
}

/** Runs the recipe's phases of `job.cfg` on `job.net`. */
export async function trainPhases(job: PhaseJob, hooks: PhaseHooks = {}): Promise<PhasesResult> {
  const { cfg, net, train, val } = job;
  const es = cfg.train.earlyStopping;
  const early = es.enabled ?? !!val;
  const phases = phasesOf(cfg.train, !!job.pretrain);
  const loss: LossSpec = makeLoss(cfg, job.trainLabels, job.numClasses);
  const schedule = makeLrSchedule(cfg.train.schedule);
  const out: PhasesResult = { history: [], phases: [] };
  for (const [index, p] of phases.entries()) {
    p.setup(net);
    const b = hooks.begin?.(p, index, phases.length) ?? {};
    if (b.done) {
      net.loadState(b.done.tensors);
      out.history.push(...b.done.history.map((m) => ({ phase: p.name, ...m })));
      out.phases.push({
        name: p.name,
        epochs: b.done.history.length,
        stoppedEarly: b.done.stoppedEarly,
        resumed: true,
        ...restored(cfg, early, b.done.history),
      });
      continue;
    }
    const callbacks = [...(b.callbacks ?? [])];
    // one monitor and one direction rule: best.ckpt and early stopping agree on the best epoch
    if (early) {
      const opts = { monitor: es.monitor, patience: es.patience, minDelta: es.minDelta, restoreBest: es.restoreBest };
      callbacks.push(hooks.earlyStopping?.(p, opts) ?? new EarlyStopping(opts));
    }
    const fitCfg: FitConfig = {
      epochs: p.epochs,
      batchSize: cfg.train.batchSize,
      optimizer: makeOptimizer(cfg.train.optimizer, p.lrMul),
      loss,
      schedule,
      val,
      callbacks,
      seed: cfg.run.seed,
      clipNorm: cfg.train.clipNorm,
      recompute: cfg.train.recompute === 'off' ? false : 'auto',
      stepsPerRun: cfg.train.stepsPerRun,
      freezeBNStats: cfg.train.freezeBNStats,
      groups: p.groups,
      checkpointDir: b.checkpointDir,
      checkpointEvery: b.checkpointDir ? cfg.run.checkpointEvery : undefined,
      resume: b.checkpointDir ? cfg.run.resume : undefined,
      monitor: early ? es.monitor : undefined,
      features: job.features,
      onProgress: job.onProgress,
      threads: job.threads,
    };
    let r: PhaseResult;
    try {
      r = await net.fit(train, fitCfg);
    } catch (e) {
      if (!hooks.recover) throw e;
      r = hooks.recover(p, e);
    }
    hooks.end?.(p, r);
    out.history.push(...r.history.map((m) => ({ phase: p.name, ...m })));
    out.phases.push({ name: p.name, epochs: r.history.length, stoppedEarly: r.stoppedEarly, resumed: false, ...restored(cfg, early, r.history) });
    if (hooks.stop?.()) break;
  }
  return out;
}

/** The epoch early stopping restored at the end of a phase, and the value it was picked by (when it restored one). */
function restored(cfg: GraftConfig, early: boolean, history: readonly EpochMetrics[]): { restoredEpoch?: number; monitor?: string } {
  const es = cfg.train.earlyStopping;
  if (!early || !es.restoreBest) return {};
  const best = restoredEpochOf(history, es.monitor, es.minDelta);
  return best ? { restoredEpoch: best.epoch, monitor: `${es.monitor} ${best.value.toFixed(4)}` } : {};
}
