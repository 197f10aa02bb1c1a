/**
 * A training run, the one every surface drives: `graft train`, `graft pretrain`, a UI or a server start it from
 * a validated config, receive its {@link RunEvent}s, cancel it with an AbortSignal and continue it with
 * `run.resume`. It loads and splits the data, builds the network, locks the run folder, trains the recipe's
 * phases with early stopping and atomic checkpoints, writes model.onnx + model.json first and then evaluates.
 */

import fs from 'node:fs';
import path from 'node:path';
import { bufferNames } from '../ir/params.js';
import { argmaxRows } from '../report/metrics.js';
import { setDefaultDevice } from '../runtime/device.js';
import { setDefaultThreads } from '../runtime/threads.js';
import type { BatchSource } from '../step/batches.js';
import type { Network } from '../train/network.js';
import { type Phase, phasesOf } from '../train/recipes.js';
import { AlreadyStopped, MetricsLog, PersistentEarlyStopping, RunDir } from '../train/run-dir.js';
import type { TaskProgress } from '../util/progress.js';
import { graftVersion } from '../util/version.js';
import { autoTrain } from './auto.js';
import { calibrateOnVal } from './calibrate.js';
import { type ConfigFileInfo, configFileNote, type GraftConfig } from './config.js';
import { EventCallback, RunCancelled, type RunEvent, type RunListener, type TrainSummary } from './events.js';
import { type PhaseHooks, type PhasesResult, trainPhases } from './phases.js';
import { writeTrainReport } from './report.js';
import { buildNetwork, loadRunData, makeSource, type RunData, withNewHead } from './setup.js';

/** Options of {@link runTraining}. */
export interface RunTrainingOptions {
  /** Where the config came from (a file name, or "command-line options"), for messages. */
  source: string;
  /** The config file merged into the config, if any: the run says so (a note) and records it in config.json as `source`. */
  configFile?: ConfigFileInfo;
  /** `graft pretrain`: train the built-in architecture's own classifier from scratch, no head replacement. */
  pretrain?: boolean;
  /** Run name when run.name is not set (default "train"). */
  defaultName?: string;
  /** Receives every event of the run. */
  onEvent?: RunListener;
  /** Cancels the run at the next step; its position is checkpointed and the run rejects with {@link RunCancelled}. */
  signal?: AbortSignal;
}

/**
 * Runs a whole training job from a validated config and returns its summary.
 * @throws with a one-line, actionable message on bad input (data, model, config, run folder);
 *   {@link RunCancelled} when `signal` was aborted.
 */
export async function runTraining(cfg: GraftConfig, opts: RunTrainingOptions): Promise<TrainSummary> {
  const emit = opts.onEvent ?? (() => {});
  try {
    const summary = await trainRun(cfg, opts, emit);
    emit({ type: 'finished', summary });
    return summary;
  } catch (e) {
    if (e instanceof RunCancelled) emit({ type: 'cancelled', run: e.run });
    else emit({ type: 'failed', error: (e as Error).message });
    throw e;
  }
}

/** The run folder a config trains into. */
export function runFolder(cfg: GraftConfig, defaultName = 'train'): string {
  return path.join(cfg.run.dir, cfg.run.name ?? defaultName);
}

async function trainRun(cfg: GraftConfig, opts: RunTrainingOptions, emit: RunListener): Promise<TrainSummary> {
  const started = performance.now();
  let auto = cfg.train.mode === 'auto' && !opts.pretrain;
  if (auto && cfg.run.resume)
    throw new Error(
      'train.mode auto cannot --resume: its search is not checkpointed and takes about its budget (train.budget) again. Run it again with --overwrite, or resume a run of an explicit recipe (--mode head|last-stages|full|fine-tune).',
    );
  if (cfg.run.threads) setDefaultThreads(cfg.run.threads);
  if (cfg.run.device) setDefaultDevice(cfg.run.device);
  if (opts.configFile) emit({ type: 'note', message: configFileNote(opts.configFile) });
  const io = { warn: (message: string) => emit({ type: 'warning', message }), progress: (t: TaskProgress) => emit({ type: 'progress', ...t }) };
  const data = await loadRunData(cfg, io);
  const mnist = data.train.kind === 'arrays';
  // auto: the backbone without a head, which each trial of its search copies and gives a fresh head
  const { net: built, preprocess } = await buildNetwork(cfg, data.classes, {
    pretrain: opts.pretrain || auto,
    mnist,
    source: opts.source,
    onNote: (message) => emit({ type: 'note', message }),
    onWarning: io.warn,
    progress: io.progress,
    trainTexts: data.train.kind === 'texts' ? data.train.texts : undefined,
    trainLabels: data.train.kind === 'texts' ? data.train.labels : undefined,
  });
  const net = auto ? withNewHead(built, cfg, data.classes) : built;
  const K = data.classes.length;
  const srcOpts = { strict: cfg.run.strict, io };
  const train = await makeSource(data.train, preprocess, K, { ...srcOpts, augment: cfg.train.augment });
  const val = data.val ? await makeSource(data.val, preprocess, K, srcOpts) : undefined;
  if (auto && !val) {
    // nothing to pick by: the head recipe with the configured settings, recorded as such in config.json
    emit({
      type: 'warning',
      message:
        'train.mode auto picks by validation accuracy, but there is no validation data (data.valSplit is 0 and no data.val): training the head alone (mode head, train.epochs). Set --val-split > 0 or --val for the search.',
    });
    cfg = { ...cfg, train: { ...cfg.train, mode: 'head' } };
    auto = false;
  }
  // auto computes the features of the training images once: unaugmented, whatever the fine-tune trains on
  const featureTrain = auto && cfg.train.augment ? await makeSource(data.train, preprocess, K, srcOpts) : train;
  const test = data.test ? await makeSource(data.test, preprocess, K, srcOpts) : undefined;
  const es = cfg.train.earlyStopping;
  if ((es.enabled ?? !!val) && es.monitor.startsWith('val_') && !val)
    throw new Error(
      `train.earlyStopping monitors ${es.monitor} but there is no validation data. Set data.valSplit > 0 or data.val, monitor train_loss, or disable early stopping (--no-early-stopping).`,
    );
  const rd = RunDir.open(runFolder(cfg, opts.defaultName), {
    resume: cfg.run.resume,
    overwrite: cfg.run.overwrite,
    // where the config came from (resume-neutral): the config file merged into it, else the caller's source
    config: { source: opts.configFile?.path ?? opts.source, ...cfg },
    onNote: io.warn,
  });
  try {
    return await trainInRunDir(cfg, opts, emit, { data, net, train, val, test, rd, auto: auto ? { base: built, featureTrain, started } : undefined });
  } finally {
    rd.release();
  }
}

/** The part of a run that happens while its folder is locked. */
async function trainInRunDir(
  cfg: GraftConfig,
  opts: RunTrainingOptions,
  emit: RunListener,
  ctx: {
    data: RunData;
    net: Network;
    train: BatchSource;
    val?: BatchSource;
    test?: BatchSource;
    rd: RunDir;
    /** train.mode auto: the backbone without a head, the unaugmented training images, and when the run started. */
    auto?: { base: Network; featureTrain: BatchSource; started: number };
  },
): Promise<TrainSummary> {
  const { data, train, val, test, rd } = ctx;
  let net = ctx.net;
  const K = data.classes.length;
  const es = cfg.train.earlyStopping;
  const note = (message: string) => emit({ type: 'note', message });
  // auto: its head search, then the last stages (run/auto.ts)
  const phases = ctx.auto ? [...phasesOf(cfg.train), ...phasesOf({ ...cfg.train, mode: 'last-stages' })] : phasesOf(cfg.train, !!opts.pretrain);
  if (cfg.run.resume) {
    const completed = Object.fromEntries(phases.map((p) => [p.name, rd.completedEpochs(p.name)]));
    if (Object.values(completed).some((n) => n > 0))
      note(`resuming ${rd.root} (${phases.map((p) => `${p.name}: ${completed[p.name]} epoch(s) done`).join(', ')})`);
    rd.truncateMetrics(completed);
  }
  const samples = { train: train.length, val: val?.length ?? 0, test: test?.length ?? 0 };
  emit({ type: 'start', run: rd.root, classes: data.classes, samples, phases: phases.map((p) => p.name) });
  note(
    `${rd.root}: ${K} classes, ${train.length} train / ${samples.val} val${test ? ` / ${test.length} test` : ''} samples; ` +
      `${cfg.model.backbone ?? cfg.model.arch ?? `text encoder ${cfg.model.encoder}`}, mode ${opts.pretrain ? 'pretrain' : cfg.train.mode}`,
  );

  const dirOf = (p: Phase) => rd.phaseDir(p.name);
  const hooks: PhaseHooks = {
    begin: (p, index, count) => {
      const done = cfg.run.resume ? rd.finishedPhase(p.name) : undefined;
      emit({ type: 'phase', phase: p.name, index, count, epochs: p.epochs, resumed: !!done });
      if (done) return { done };
      if (net.headOnly() && !cfg.train.augment) note(`${p.name}: backbone frozen, training the head on features computed once`);
      return { callbacks: [new EventCallback(p.name, emit, opts.signal), new MetricsLog(rd.metricsFile, p.name)], checkpointDir: dirOf(p) };
    },
    earlyStopping: (p, o) => new PersistentEarlyStopping(o, path.join(dirOf(p), 'early-best.ckpt')),
    recover: (p, e) => {
      if (!(e instanceof AlreadyStopped)) throw e;
      // killed between early stopping's last checkpoint and the end of the phase: rebuild the phase's result
      const st = rd.stoppedPhase(p.name, es.restoreBest);
      net.loadState(st.tensors);
      return { ...st, stoppedEarly: st.history.length < p.epochs };
    },
    end: (p, r) => {
      if (r.cancelled) throw new RunCancelled(rd.root);
      rd.savePhase(p.name, net.model, [...net.trainable, ...bufferNames(net.model)], r);
    },
  };
  let trained: PhasesResult & { auto?: TrainSummary['auto'] };
  if (ctx.auto) {
    const a = ctx.auto;
    const r = await autoTrain({
      cfg,
      base: a.base,
      classes: data.classes,
      train: a.featureTrain,
      fineTuneTrain: train,
      val: val!,
      trainLabels: data.train.labels,
      started: a.started,
      run: rd.root,
      emit,
      signal: opts.signal,
      hooks,
    });
    net = r.net;
    trained = r;
    rd.writeJson('auto.json', r.auto);
  } else {
    trained = await trainPhases(
      {
        cfg,
        net,
        train,
        val,
        trainLabels: data.train.labels,
        numClasses: K,
        pretrain: opts.pretrain,
        // steps and epochs come from EventCallback; the feature path's hashing and extraction become progress events
        onProgress: (e) => void (e.type === 'task' && emit({ ...e, type: 'progress' })),
      },
      hooks,
    );
  }
  const { history, phases: phaseInfo } = trained;

  // The model is written first: a final evaluation that runs out of memory must not lose a finished training.
  const modelFile = path.join(rd.root, 'model.onnx');
  net.temperature = undefined; // a backbone's calibration does not hold for the trained model; calibrateOnVal fits a new one
  const extra = { version: graftVersion(), config: cfg, metrics: { history }, phases: phaseInfo, ...(trained.auto ? { auto: trained.auto } : {}) };
  net.save(modelFile, extra);
  // evaluated at the training batch size (the run proved it fits), on the cached features in head mode
  const bs = cfg.train.batchSize;
  const metrics: TrainSummary['metrics'] = {};
  const progress = (t: TaskProgress) => emit({ type: 'progress', ...t });
  if (val) metrics.val = pickLossAcc(await net.evaluate(val, bs, { onProgress: progress }));
  if (test) metrics.test = pickLossAcc(await net.evaluate(test, bs, { onProgress: progress }));
  const bad = Object.entries(metrics).filter(([, m]) => !Number.isFinite(m.loss) || !Number.isFinite(m.acc));
  if (bad.length) {
    for (const f of [modelFile, modelFile.replace(/\.onnx$/, '.json')]) fs.rmSync(f, { force: true });
    const what = bad.map(([k, m]) => `${k} loss ${m.loss}, ${k} acc ${m.acc}`).join('; ');
    throw new Error(
      `The trained model's final metrics are not finite (${what}): its outputs are NaN or infinite, so model.onnx was not kept. ${rd.lastGoodCheckpoint(phases.map((p) => p.name))}`,
    );
  }
  const calibrated = await calibrateOnVal(net, val, bs);
  const calibration = calibrated?.fit;
  if (calibration) net.save(modelFile, extra); // re-exported: its "probabilities" output now divides the logits by the temperature
  const valProbs = calibrated?.probabilities ?? (val ? (await net.predict(val, bs)).probabilities : undefined);
  if (val && valProbs && (data.val?.kind === 'files' || data.val?.kind === 'texts')) writePredictions(rd, val, valProbs, data.classes);
  const full = { ...extra, metrics: { ...metrics, history }, ...(calibration ? { calibration } : {}) };
  net.writeSidecar(modelFile, full);
  if (cfg.run.export) net.save(cfg.run.export, full);
  const summary: TrainSummary = { run: rd.root, model: modelFile, export: cfg.run.export, classes: data.classes, samples, phases: phaseInfo, metrics, history };
  if (calibration) summary.calibration = calibration;
  if (trained.auto) summary.auto = trained.auto;
  summary.report = await writeTrainReport({
    run: rd.root,
    model: modelFile,
    classes: data.classes,
    history,
    phases: phaseInfo,
    preprocess: net.preprocess,
    temperature: calibration,
    val:
      val && valProbs
        ? {
            probabilities: valProbs,
            labels: labelsOf(val),
            paths: (val as { paths?: readonly string[] }).paths,
            source: cfg.data.val ?? cfg.data.train ?? cfg.data.manifest ?? 'the data',
          }
        : undefined,
  });
  return summary;
}

/**
 * The validation predictions beside the model (predictions.jsonl): path (an image, or a text's file:line), label,
 * predicted label and the calibrated probabilities.
 */
function writePredictions(rd: RunDir, val: BatchSource, probabilities: Float32Array, classes: string[]): void {
  const K = classes.length;
  const pred = argmaxRows({ probabilities, classes: K });
  const v = val as unknown as { paths?: readonly string[]; origins?: readonly string[]; labels: Int32Array };
  const labels = v.labels;
  const paths = v.paths ?? v.origins ?? [];
  const rows = paths.map((p, i) => {
    const pr = Array.from(probabilities.subarray(i * K, (i + 1) * K));
    return { path: p, label: classes[labels[i]!], pred: classes[pred[i]!], probabilities: pr };
  });
  rd.writeJsonl('predictions.jsonl', rows);
}

/** The labels of an image or array source. */
function labelsOf(src: BatchSource): ArrayLike<number> {
  const s = src as { labels?: ArrayLike<number>; y?: ArrayLike<number> };
  return s.labels ?? s.y ?? [];
}

function pickLossAcc(r: { loss: number; acc: number }): { loss: number; acc: number } {
  return { loss: r.loss, acc: r.acc };
}

/** A started run: its events, a way to cancel it, and its result. */
export interface RunHandle {
  /** Adds a listener for the run's events (events before it was added are not replayed). */
  on(listener: RunListener): () => void;
  /** Stops the run at its next step, after checkpointing its position; `done` then rejects with {@link RunCancelled}. */
  cancel(): void;
  /** The run's summary, or its error. */
  readonly done: Promise<TrainSummary>;
}

/**
 * Starts a training run in the background (the same run as {@link runTraining}) and returns at once, so a UI or a
 * server can stream its events and cancel it. Resume a cancelled or killed run by starting it again with
 * `run.resume: true`.
 */
export function startRun(cfg: GraftConfig, opts: Omit<RunTrainingOptions, 'signal' | 'onEvent'>): RunHandle {
  const listeners = new Set<RunListener>();
  const abort = new AbortController();
  const onEvent = (e: RunEvent) => {
    for (const l of listeners) l(e);
  };
  // started on the next tick, so listeners added right after startRun see every event
  const done = Promise.resolve().then(() => runTraining(cfg, { ...opts, onEvent, signal: abort.signal }));
  done.catch(() => {}); // the caller sees the error through `done`; no unhandled rejection meanwhile
  return {
    on(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    cancel: () => abort.abort(),
    done,
  };
}
