/**
 * `train.mode: auto`, the default of `graft train`: a recipe that wins without flags, within a wall-clock budget
 * (`train.budget`, default 60 s).
 *
 * 1. The frozen backbone's features of the train and val samples are computed once (through the on-disk
 *    feature store, so a second run reads them back).
 * 2. A seeded search over the head's learning rate and weight decay ({@link AUTO_HEAD_SEARCH}, a fixed list run
 *    in order) trains one fresh head per setting on those features, each through the run layer's phase loop
 *    (`trainPhases`, the loop of every recipe and of `graft tune`'s trials) with the config's early stopping,
 *    which also picks each trial's epoch count (up to {@link AUTO_HEAD_EPOCHS}: with a constant LR a shorter
 *    trial would only retrain a prefix of a longer one). Trials are scored on the validation data.
 * 3. When the time left covers the estimate (a timed forward pass of one batch, scaled to the epochs), the last
 *    stages (`train.lastStages`) are fine-tuned from the best head at a tenth of its LR. The saved model is the
 *    better of the two by validation accuracy (then loss).
 *
 * Reproducible: the same seed gives the same trials in the same order; time decides only how many trials run
 * (planned from the first trial's time, all of them unless the budget is tight) and whether the fine-tune runs.
 */
import { headOnlySplit, sourceFeatures } from '../features/backbone.js';
import type { Model } from '../ir/model.js';
import { createSession, ort, runChecked } from '../runtime/session.js';
import { BatchBuffers, type BatchSource, batches } from '../step/batches.js';
import type { Callback, EpochMetrics, TrainState } from '../train/callbacks.js';
import type { Network } from '../train/network.js';
import type { TaskProgress } from '../util/progress.js';
import type { GraftConfig } from './config.js';
import { type AutoSummary, type AutoTrial, RunCancelled, type RunListener } from './events.js';
import { type PhaseHooks, type PhaseJob, type PhasesResult, trainPhases } from './phases.js';
import { restoredEpochOf } from './report.js';
import { withNewHead } from './setup.js';

/** One setting of the head search: a multiple of the configured LR, and the optimizer's weight decay. */
export interface HeadSetting {
  lrMul: number;
  weightDecay: number;
}

/**
 * The head search, in the order it runs (the likeliest winners first, so a tight budget runs those): the
 * configured LR (sgd 0.01, adam 0.001 by default) times 0.3, 1, 3 and 10, each with weight decay 0, 1e-4 and 1e-3.
 */
export const AUTO_HEAD_SEARCH: readonly HeadSetting[] = [
  { lrMul: 1, weightDecay: 1e-4 },
  { lrMul: 3, weightDecay: 1e-4 },
  { lrMul: 1, weightDecay: 0 },
  { lrMul: 3, weightDecay: 0 },
  { lrMul: 10, weightDecay: 1e-4 },
  { lrMul: 1, weightDecay: 1e-3 },
  { lrMul: 3, weightDecay: 1e-3 },
  { lrMul: 0.3, weightDecay: 1e-4 },
  { lrMul: 10, weightDecay: 0 },
  { lrMul: 10, weightDecay: 1e-3 },
  { lrMul: 0.3, weightDecay: 0 },
  { lrMul: 0.3, weightDecay: 1e-3 },
];

/** The most epochs of one head trial (early stopping on the validation data ends most trials sooner). */
export const AUTO_HEAD_EPOCHS = 30;
/** Epochs of the last-stages fine-tune, at a tenth of the best head's LR. */
export const AUTO_FINE_TUNE_EPOCHS = 3;
/**
 * onnxruntime threads of a head trial when `run.threads` is not set: a head's small GEMMs gain nothing from a
 * second thread and lose to its synchronisation (bench:head, batch 32 on 2 cores: 6.4 s on 1 thread, 8.9 s on 2).
 */
const HEAD_TRIAL_THREADS = 1;
/** A training step of the last stages costs about this many forward passes of the whole network per sample. */
const STEP_COST = 3;

/** What the auto recipe works with: the run's data and network, set up by `runTraining`. */
export interface AutoJob {
  cfg: GraftConfig;
  /** The backbone before any head replacement (each trial gets a copy with a fresh head). */
  base: Network;
  classes: string[];
  /** Unaugmented training images (their features are computed once). */
  train: BatchSource;
  /** The training images the fine-tune trains on (augmented when `train.augment` is set). */
  fineTuneTrain: BatchSource;
  val: BatchSource;
  trainLabels: Int32Array;
  /** When the run started (performance.now()): the budget counts from there. */
  started: number;
  /** The run folder, for a cancelled run's message. */
  run: string;
  emit: RunListener;
  signal?: AbortSignal;
  /** The run folder's hooks (events, metrics log, checkpoints) for the fine-tune phase. */
  hooks: PhaseHooks;
}

/** What the auto recipe trained: the network to save, its history and phases, and what it did. */
export interface AutoResult extends PhasesResult {
  net: Network;
  auto: AutoSummary;
}

/** A trial's score: validation accuracy of the epoch early stopping kept (else the last), then its loss. */
interface Score {
  acc: number;
  loss: number;
}

const better = (a: Score, b: Score) => a.acc > b.acc || (a.acc === b.acc && a.loss < b.loss);

/** Stops a fit at the next step when the run is cancelled or (when `deadline` is set) the budget is spent. */
class BudgetCallback implements Callback {
  readonly name = 'auto-budget';
  /** True when the budget (not a cancel) stopped the fit. */
  spent = false;
  constructor(
    private readonly signal?: AbortSignal,
    private readonly deadline?: number,
  ) {}
  onStepEnd(s: TrainState): void {
    if (this.signal?.aborted) s.abort = true;
    else if (this.deadline !== undefined && performance.now() > this.deadline) {
      this.spent = true;
      s.abort = true;
    }
  }
}

const secs = (ms: number) => Math.round(ms / 100) / 10;

/** Runs the auto recipe (see the module comment). @throws {@link RunCancelled} when `job.signal` is aborted. */
export async function autoTrain(job: AutoJob): Promise<AutoResult> {
  const { cfg, classes, emit } = job;
  const K = classes.length;
  const budgetMs = cfg.train.budget * 1000;
  const deadline = job.started + budgetMs;
  const left = () => (deadline - performance.now()) / 1000;
  const note = (message: string) => emit({ type: 'note', message });
  const cancelled = () => new RunCancelled(job.run);
  note(
    `auto: budget ${cfg.train.budget} s (set with --budget); features once, a head search of up to ${AUTO_HEAD_SEARCH.length} trials, ` +
      `then the last ${cfg.train.lastStages} stage(s) if the time left allows`,
  );

  // 1. the features, once
  const t0 = performance.now();
  const probe = withNewHead(job.base, cfg, classes);
  const split = headOnlySplit({ model: probe.model, cut: probe.cut, trainable: probe.trainable });
  if (!split)
    throw new Error(
      `train.mode auto trains heads on the backbone's features, but the backbone ${cfg.model.backbone ?? cfg.model.arch} has no usable feature cut. ` +
        'Set model.cut (see graft inspect), or choose a recipe with --mode fine-tune|full.',
    );
  const backbone = split.backbone();
  const progress = (t: TaskProgress) => emit({ type: 'progress', ...t });
  const featureOpts = { strict: cfg.run.strict, onWarning: (message: string) => emit({ type: 'warning', message }), onTaskProgress: progress };
  const fTrain = (await sourceFeatures(backbone, job.train, featureOpts)).source;
  const fVal = (await sourceFeatures(backbone, job.val, featureOpts)).source;
  if (job.signal?.aborted) throw cancelled();
  const features = { samples: fTrain.length + fVal.length, seconds: secs(performance.now() - t0) };
  note(
    `auto: features of ${fTrain.length} train / ${fVal.length} val samples in ${features.seconds} s; ${Math.max(0, left()).toFixed(0)} s of the budget left`,
  );

  // 2. the head search
  const trials: AutoTrial[] = [];
  let best: { score: Score; net: Network; result: PhasesResult; trial: AutoTrial; cfg: GraftConfig } | undefined;
  let planned = AUTO_HEAD_SEARCH.length;
  /** The plan made after the first trial: the fine-tune's estimate (when measured), the time the search leaves, the decision. */
  const plan: { estimate?: number; left: number; fineTune: boolean; reason?: string } = { left: 0, fineTune: false };
  const featureLabels = Int32Array.from(fTrain.y);
  for (const [i, setting] of AUTO_HEAD_SEARCH.entries()) {
    if (i >= planned) break;
    const tcfg = headTrialConfig(cfg, setting);
    const net = withNewHead(job.base, tcfg, classes);
    // the first trial always completes; later ones stop (and are dropped) when the budget runs out
    const budget = new BudgetCallback(job.signal, i === 0 ? undefined : deadline);
    const ts = performance.now();
    const phaseJob: PhaseJob = {
      cfg: tcfg,
      net,
      train: fTrain,
      val: fVal,
      features: { train: fTrain, val: fVal },
      trainLabels: featureLabels,
      numClasses: K,
      threads: cfg.run.threads ?? HEAD_TRIAL_THREADS,
    };
    let aborted = false;
    const result = await trainPhases(phaseJob, {
      begin: () => ({ callbacks: [budget] }),
      end: (_p, r) => {
        aborted = !!r.cancelled;
      },
    });
    if (job.signal?.aborted) throw cancelled();
    const seconds = (performance.now() - ts) / 1000;
    if (aborted) {
      note(`auto: the budget ran out during head trial ${i + 1}; it is dropped (${trials.length} trial(s) done)`);
      planned = trials.length;
      break;
    }
    const score = scoreOf(tcfg, result);
    const trial: AutoTrial = {
      trial: i + 1,
      lr: tcfg.train.optimizer.lr,
      epochs: AUTO_HEAD_EPOCHS,
      weightDecay: setting.weightDecay,
      val_acc: score.acc,
      val_loss: score.loss,
      epochsRun: result.history.length,
      seconds: secs(seconds * 1000),
    };
    trials.push(trial);
    const isBest = !best || better(score, best.score);
    if (isBest) best = { score, net, result, trial, cfg: tcfg };
    if (i === 0) {
      // the plan, decided once from the first trial's time: the whole search comes first; the fine-tune's
      // estimate is measured only when the search leaves time, and it is planned only when the rest covers it
      const perTrial = Math.max(seconds, 1e-3);
      const searchNeed = (AUTO_HEAD_SEARCH.length - 1) * perTrial;
      if (left() > searchNeed) plan.estimate = await fineTuneEstimate(net.model, job.fineTuneTrain, job.val, cfg.train.batchSize);
      plan.left = Math.max(0, left() - searchNeed);
      if (plan.estimate !== undefined && plan.estimate <= plan.left) plan.fineTune = true;
      else if (plan.estimate !== undefined) plan.reason = `needs ~${Math.round(plan.estimate)} s, ${Math.round(plan.left)} s left after the head search`;
      else
        plan.reason = `the head search takes the budget (~${Math.round(searchNeed)} s for ${AUTO_HEAD_SEARCH.length - 1} more trials, ${Math.round(Math.max(0, left()))} s left)`;
      planned = Math.min(AUTO_HEAD_SEARCH.length, 1 + Math.max(0, Math.floor(left() / perTrial)));
      note(
        `auto: head search: ${planned} of ${AUTO_HEAD_SEARCH.length} trials planned (~${seconds.toFixed(1)} s each), lr × {0.3, 1, 3, 10} of ${cfg.train.optimizer.lr}, weight decay {0, 1e-4, 1e-3}, up to ${AUTO_HEAD_EPOCHS} epochs with early stopping; ` +
          (plan.fineTune
            ? `then the last-stages fine-tune (~${Math.round(plan.estimate!)} s)`
            : `last-stages fine-tune skipped: ${plan.reason} (raise --budget${
                plan.estimate === undefined ? '' : ` to about ${Math.ceil(cfg.train.budget + plan.estimate - plan.left)} s`
              } to run it)`),
      );
    }
    emit({ type: 'trial', trials: planned, best: isBest, ...trial });
  }
  const head = best!;
  note(
    `auto: best head: trial ${head.trial.trial} (lr ${head.trial.lr}, weight decay ${head.trial.weightDecay}, ${head.trial.epochsRun} epoch(s)): val_acc ${head.score.acc.toFixed(4)}, val_loss ${head.score.loss.toFixed(4)}`,
  );

  // 3. the last stages, when the plan made room for them and the search kept to its time
  const net = head.net;
  const leftNow = Math.max(0, left());
  const fineTune: AutoSummary['fineTune'] = { ran: false, left: Math.round(plan.left) };
  if (plan.estimate !== undefined) fineTune.estimate = Math.round(plan.estimate);
  const history = head.result.history;
  const phases = head.result.phases;
  let chosen: AutoSummary['chosen'] = 'head';
  if (!plan.fineTune || plan.estimate! > leftNow) {
    fineTune.reason = plan.reason ?? `the head search took longer than planned: needs ~${Math.round(plan.estimate!)} s, ${Math.round(leftNow)} s left`;
    if (plan.fineTune) note(`auto: last-stages fine-tune skipped: ${fineTune.reason}`);
  } else {
    note(
      `auto: last-stages fine-tune: ${AUTO_FINE_TUNE_EPOCHS} epoch(s) of the last ${cfg.train.lastStages} stage(s), ~${Math.round(plan.estimate!)} s of ${Math.round(leftNow)} s left`,
    );
    const headModel = net.model;
    const headTrainable = new Set(net.trainable);
    const ftCfg = fineTuneConfig(head.cfg);
    const budget = new BudgetCallback(job.signal, deadline);
    let spent = false;
    const r = await trainPhases(
      { cfg: ftCfg, net, train: job.fineTuneTrain, val: job.val, trainLabels: job.trainLabels, numClasses: K },
      {
        ...job.hooks,
        begin: (p, index, count) => {
          const b = job.hooks.begin?.(p, index, count) ?? {};
          return { ...b, callbacks: [...(b.callbacks ?? []), budget] };
        },
        end: (p, res) => {
          if (job.signal?.aborted) throw cancelled();
          spent = budget.spent;
          if (!spent) job.hooks.end?.(p, res);
        },
      },
    );
    fineTune.ran = true;
    fineTune.epochs = r.history.length;
    const score = scoreOf(ftCfg, r);
    Object.assign(fineTune, { val_acc: score.acc, val_loss: score.loss });
    history.push(...r.history);
    phases.push(...r.phases);
    if (spent) fineTune.reason = 'the budget ran out during the fine-tune: its unfinished epoch is not kept';
    else if (!better(score, head.score)) fineTune.reason = `val_acc ${score.acc.toFixed(4)} does not beat the head's ${head.score.acc.toFixed(4)}`;
    fineTune.kept = !fineTune.reason;
    if (fineTune.kept) chosen = 'last-stages';
    else {
      // keep the best by validation: back to the best head (and to a frozen backbone, so inference uses the features)
      net.model = headModel;
      for (const p of [...net.trainable]) if (!headTrainable.has(p)) net.trainable.delete(p);
    }
    note(
      `auto: last-stages fine-tune ${fineTune.kept ? 'kept' : 'not kept'}: val_acc ${score.acc.toFixed(4)}, val_loss ${score.loss.toFixed(4)}${fineTune.reason ? ` (${fineTune.reason})` : ''}`,
    );
  }
  const auto: AutoSummary = {
    budget: cfg.train.budget,
    seconds: secs(performance.now() - job.started),
    features,
    search: { planned, of: AUTO_HEAD_SEARCH.length, trials, best: head.trial.trial },
    fineTune,
    chosen,
  };
  return { net, history, phases, auto };
}

/** The config of a head trial: head mode, the setting's LR and weight decay, up to {@link AUTO_HEAD_EPOCHS} epochs. */
export function headTrialConfig(cfg: GraftConfig, s: HeadSetting): GraftConfig {
  const o = cfg.train.optimizer;
  const lr = Number((o.lr * s.lrMul).toPrecision(6));
  return { ...cfg, train: { ...cfg.train, mode: 'head', epochs: AUTO_HEAD_EPOCHS, optimizer: { ...o, lr, weightDecay: s.weightDecay } } };
}

/** The config of the fine-tune from the best head: the last stages, a tenth of the head's LR. */
function fineTuneConfig(head: GraftConfig): GraftConfig {
  const o = head.train.optimizer;
  return { ...head, train: { ...head.train, mode: 'last-stages', epochs: AUTO_FINE_TUNE_EPOCHS, optimizer: { ...o, lr: o.lr / 10 } } };
}

/** The validation score of a trained phase list: the epoch early stopping restored (else the last). */
function scoreOf(cfg: GraftConfig, r: PhasesResult): Score {
  const history = r.history as EpochMetrics[];
  const es = cfg.train.earlyStopping;
  const kept = es.enabled !== false && es.restoreBest ? restoredEpochOf(history, es.monitor, es.minDelta) : undefined;
  const m = (kept ? history[kept.epoch - 1] : history.at(-1)) ?? {};
  return { acc: Number(m.val_acc ?? Number.NaN), loss: Number(m.val_loss ?? Number.NaN) };
}

/**
 * Seconds the last-stages fine-tune would take: one batch of `train` decoded and run forward through the whole
 * network (timed), scaled to {@link AUTO_FINE_TUNE_EPOCHS} epochs of training steps ({@link STEP_COST} forward
 * passes each) and validation passes, plus the session setup the probe saw, once per compiled graph.
 */
async function fineTuneEstimate(model: Model, train: BatchSource, val: BatchSource, batchSize: number): Promise<number> {
  const t0 = performance.now();
  const s = await createSession(model);
  const setup = (performance.now() - t0) / 1000;
  let perSample = 0;
  try {
    const bufs = new BatchBuffers(train.sampleShape);
    const t1 = performance.now();
    for await (const b of batches(train, bufs, { batchSize: Math.min(batchSize, train.length), seed: 0, epoch: 0, shuffle: false })) {
      await runChecked(s, { [s.inputNames[0]!]: new ort.Tensor('float32', b.x.data as Float32Array, [...b.x.dims]) }, undefined, {
        what: 'the fine-tune estimate',
      });
      perSample = (performance.now() - t1) / 1000 / b.size;
      break;
    }
  } finally {
    await s.release();
  }
  const epoch = perSample * (STEP_COST * train.length + val.length);
  return AUTO_FINE_TUNE_EPOCHS * epoch + 3 * setup;
}
