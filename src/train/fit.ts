/**
 * The training loop: epochs of minibatch steps on a StepRunner, per-epoch validation, LR
 * schedules, callbacks, and checkpoints that make `resume` continue exactly where a killed run
 * stopped (the batch order, dropout masks and LR are pure functions of seed, epoch and step).
 * A runner with `stepsPerRun` K > 1 takes K batches per `session.run` where that changes nothing but speed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { smallWorkThreads } from '../runtime/threads.js';
import { BatchBuffers, type BatchRun, type BatchSource, batches, batchesPerEpoch, batchRuns, groupBatch } from '../step/batches.js';
import { loadCheckpoint, saveCheckpoint } from '../step/checkpoint.js';
import { type BatchEvaluator, NonFiniteLossError, type StepResult, type StepRunner } from '../step/runner.js';
import type { Tensor } from '../tensor.js';
import { type Callback, type EpochMetrics, metricMode, type TrainState } from './callbacks.js';

/** LR multiplier as a function of (step, totalSteps); step is 0-based. */
export type LrSchedule = (step: number, total: number) => number;

export interface FitOptions {
  epochs: number;
  batchSize: number;
  /** Base learning rate; each parameter group gets lr × its lrScale × schedule. */
  lr: number;
  schedule?: LrSchedule;
  seed?: number;
  /** Validation data, evaluated after every epoch (val_loss, val_acc). */
  val?: BatchSource;
  evalBatchSize?: number;
  callbacks?: Callback[];
  /** Drop the last partial batch of each epoch (default true when the dataset is larger than a batch). */
  dropLast?: boolean;
  /** Folder for last.ckpt (every epoch, and every `checkpointEvery` steps) and best.ckpt. */
  checkpointDir?: string;
  checkpointEvery?: number;
  /** Continue from checkpointDir/last.ckpt if it exists. */
  resume?: boolean;
  /** Stop after this many steps in total (used by tests to simulate an interrupted run). */
  maxSteps?: number;
  /**
   * Metric that decides best.ckpt, in the direction {@link metricMode} gives it (default val_loss when val is
   * given, else train_loss: the same default and rule as {@link EarlyStopping}, so both agree on the best epoch).
   */
  monitor?: string;
}

export interface FitResult {
  history: EpochMetrics[];
  steps: number;
  stoppedEarly: boolean;
  /** True when a callback aborted the run mid-epoch (see TrainState.abort); its position is in last.ckpt. */
  cancelled?: boolean;
  seconds: number;
}

/**
 * Steps per `session.run` of a head trained on cached features (K, see step/repeat.ts): 16 measured best on the
 * bench head (docs/benchmarks.md, "Session 7: K steps per run"); 32 saves little more and takes twice as long to open.
 */
export const HEAD_STEPS_PER_RUN = 16;

/** The smallest K {@link headStepsPerRun} picks to divide an epoch evenly. */
export const HEAD_MIN_STEPS_PER_RUN = 8;

/**
 * The default K of a head-on-features fit of `totalSteps` steps with `fullBatches` full batches per epoch: 1 when the
 * fit is too short to repay opening the K-step session (0.5–2.3 s at K = 16 on the loaded 2-core machine; a step
 * saves ~0.9 ms of CPU at batch 32 and ~1.3 ms at batch 256), else the K from {@link HEAD_STEPS_PER_RUN} down to
 * {@link HEAD_MIN_STEPS_PER_RUN} that leaves the fewest full batches of an epoch over (ties: the larger K). A group
 * never crosses an epoch's end, so the batches left over run one per `session.run` at several times the cost of a
 * step inside a group: at batch 256 on 10,000 samples, K = 16 leaves 7 of each epoch's 39 full batches to single
 * steps, K = 13 none (docs/benchmarks.md, "Session 9"). Without `fullBatches`, {@link HEAD_STEPS_PER_RUN}.
 */
export function headStepsPerRun(totalSteps: number, fullBatches?: number): number {
  if (totalSteps < 2000) return 1;
  if (fullBatches === undefined) return HEAD_STEPS_PER_RUN;
  if (fullBatches < 2) return 1;
  let best = Math.min(HEAD_STEPS_PER_RUN, fullBatches);
  for (let k = best; k >= Math.min(HEAD_MIN_STEPS_PER_RUN, fullBatches); k--) if (fullBatches % k < fullBatches % best) best = k;
  return best;
}

/**
 * Batches below this size train a head on cached features on {@link smallWorkThreads} (1 thread on a quiet machine);
 * from it up, on every core: bench:head on the 2-core VM, K = 16, quiet: batch 32 1 thread 1.6 s against 2 threads
 * 2.2 s; batch 256 1.0 s against 0.85 s (docs/benchmarks.md, head section, session 8).
 */
export const HEAD_PARALLEL_BATCH = 128;

/**
 * The intra-op threads of a head-on-features fit at `batchSize` when the caller names none: {@link smallWorkThreads}
 * below {@link HEAD_PARALLEL_BATCH}, else undefined (the session default, runtime/threads.ts).
 */
export function headThreads(batchSize: number): number | undefined {
  return batchSize < HEAD_PARALLEL_BATCH ? smallWorkThreads() : undefined;
}

/** Evaluates a dataset with the runner's eval graph: loss (mean) and accuracy. */
export async function evaluateSource(runner: BatchEvaluator, src: BatchSource, batchSize = 256): Promise<{ loss: number; acc: number; n: number }> {
  const bufs = new BatchBuffers(src.sampleShape);
  let loss = 0;
  let correct = 0;
  for await (const b of batches(src, bufs, { batchSize, seed: 0, epoch: 0, shuffle: false })) {
    const r = await runner.evaluate({ x: b.x, y: b.y });
    loss += r.loss * b.size;
    correct += r.metrics.correct ?? 0;
  }
  return { loss: loss / src.length, acc: correct / src.length, n: src.length };
}

/** Trains `runner` on `train`. */
export async function fit(runner: StepRunner, train: BatchSource, opts: FitOptions): Promise<FitResult> {
  const t0 = performance.now();
  const seed = opts.seed ?? 0;
  const dropLast = opts.dropLast ?? train.length > opts.batchSize;
  const stepsPerEpoch = batchesPerEpoch(train.length, opts.batchSize, dropLast);
  const totalSteps = stepsPerEpoch * opts.epochs;
  const callbacks = opts.callbacks ?? [];
  const monitor = opts.monitor ?? (opts.val ? 'val_loss' : 'train_loss');
  const better = (a: number, b: number) => (metricMode(monitor) === 'min' ? a < b : a > b);
  const st: TrainState = { runner, epoch: 0, step: 0, totalSteps, epochs: opts.epochs, stepsPerEpoch, stop: false, history: [], seed };
  let startBatch = 0;
  let best = Number.NaN;
  // Running sums of the current epoch (kept in mid-epoch checkpoints so resumed metrics are exact).
  let acc = { lossSum: 0, correct: 0, seen: 0 };
  const lastFile = opts.checkpointDir ? path.join(opts.checkpointDir, 'last.ckpt') : undefined;
  const bestFile = opts.checkpointDir ? path.join(opts.checkpointDir, 'best.ckpt') : undefined;

  if (opts.resume && lastFile && fs.existsSync(lastFile)) {
    const ck = loadCheckpoint(lastFile);
    const m = ck.meta as {
      step: number;
      epoch: number;
      batch: number;
      history: EpochMetrics[];
      best: number;
      callbacks: Record<string, unknown>;
      totalSteps: number;
      partial: typeof acc;
      stopped?: boolean;
    };
    if (m.totalSteps !== totalSteps)
      throw new Error(
        `${lastFile} was written by a run with ${m.totalSteps} total steps, this run has ${totalSteps}. Resume with the same epochs, batch size and data, or start a new run.`,
      );
    runner.load(splitCallbackTensors(ck.tensors, callbacks), m.step);
    st.step = m.step;
    st.epoch = m.epoch;
    st.history = m.history;
    startBatch = m.batch;
    best = m.best ?? Number.NaN;
    if (m.partial) acc = m.partial;
    if (m.stopped) st.stop = true; // early stopping had already ended that run
    for (const cb of callbacks) if (cb.loadState && m.callbacks?.[cb.name] !== undefined) cb.loadState(m.callbacks[cb.name]);
  }

  const writeCheckpoint = async (file: string, epoch: number, batch: number) => {
    const cbs: Record<string, unknown> = {};
    for (const cb of callbacks) if (cb.saveState) cbs[cb.name] = cb.saveState();
    saveCheckpoint(file, {
      meta: { step: st.step, epoch, batch, history: st.history, best, callbacks: cbs, totalSteps, seed, partial: batch ? acc : undefined, stopped: st.stop },
      tensors: withCallbackTensors(runner.state(), callbacks),
    });
    for (const cb of callbacks) await cb.onCheckpoint?.(st, file);
  };

  for (const cb of callbacks) await cb.onTrainBegin?.(st);
  const bufs = new BatchBuffers(train.sampleShape, train.batchRows?.bind(train));
  let stoppedEarly = st.stop && st.epoch < opts.epochs;
  const lrsAt = (step: number) => {
    const mult = opts.schedule ? opts.schedule(step, totalSteps) : 1;
    return runner.step.lrScales.map((s) => opts.lr * s * mult);
  };
  // K steps per run (runner.stepsPerRun): only where every step of the group would have run the same way one at a
  // time, so nothing but speed changes. A group never crosses a checkpoint (checkpointEvery), maxSteps or the end of
  // an epoch, and a joint (adaptation) batch source runs single steps.
  const k = train.batchRows ? 1 : runner.stepsPerRun;
  const groupAt = (): number => {
    if (k < 2) return 1;
    if (opts.maxSteps !== undefined && st.step + k > opts.maxSteps) return 1;
    if (opts.checkpointEvery) for (let j = 1; j < k; j++) if ((st.step + j) % opts.checkpointEvery === 0) return 1;
    return k;
  };
  /** After a step (its result, batch size and LR): the running sums, the callbacks; true when a callback aborted. */
  const stepEnd = async (r: StepResult, size: number, lr: number): Promise<boolean> => {
    acc.lossSum += r.loss * size;
    acc.correct += r.metrics.correct ?? 0;
    acc.seen += size;
    for (const cb of callbacks) await cb.onStepEnd?.(st, { loss: r.loss, metrics: r.metrics, lr });
    return !!st.abort;
  };
  const cancelled = async (epoch: number, batch: number): Promise<FitResult> => {
    if (lastFile) await writeCheckpoint(lastFile, epoch, batch);
    return { history: st.history, steps: st.step, stoppedEarly: false, cancelled: true, seconds: (performance.now() - t0) / 1000 };
  };
  /** One step on batch `index`; true when a callback aborted the run. */
  const oneStep = async (x: Tensor, y: Tensor, index: number, size: number): Promise<boolean> => {
    const lrs = lrsAt(st.step);
    let r: StepResult;
    try {
      r = await runner.train({ x, y }, lrs, seed);
    } catch (e) {
      if (e instanceof NonFiniteLossError && lastFile)
        throw new Error(
          `${e.message} Epoch ${st.epoch + 1}, batch ${index + 1}. ` +
            (fs.existsSync(lastFile)
              ? `The last good checkpoint is ${lastFile}.`
              : 'No checkpoint was written before it (the first comes at the end of epoch 1, or after --checkpoint-every steps); lower the learning rate (--lr) or clip gradients (--clip-norm) and start again with --overwrite.'),
        );
      throw e;
    }
    st.step = runner.stepCount;
    return stepEnd(r, size, lrs[lrs.length - 1]!);
  };
  /**
   * K steps in one run over a stacked group. Returns the batches it took: all K, or 1..j+1 when a callback aborted
   * at step j, with the runner's state then that after step j (as if the steps had run one at a time).
   */
  const groupSteps = async (run: BatchRun): Promise<{ batches: number; aborted: boolean }> => {
    const first = st.step;
    const lrs = Array.from({ length: run.count }, (_, j) => lrsAt(first + j));
    const rs = await runner.trainSteps({ x: run.x, y: run.y }, lrs, seed);
    if (!rs) {
      // a NaN/Inf loss inside: take the group one step at a time, which stops at that step with its error
      for (let j = 0; j < run.count; j++) {
        const b = groupBatch(run, j);
        if (await oneStep(b.x, b.y, run.index + j, run.size)) return { batches: j + 1, aborted: true };
      }
      return { batches: run.count, aborted: false };
    }
    for (let j = 0; j < run.count; j++) {
      st.step = first + j + 1;
      if (await stepEnd(rs[j]!, run.size, lrs[j]![lrs[j]!.length - 1]!)) {
        if (j + 1 < run.count) {
          // stopped inside the group: back to its start and on to step j one step at a time (bit-identical)
          runner.rewind();
          for (let i = 0; i <= j; i++) await runner.train(groupBatch(run, i), lrs[i]!, seed);
        }
        return { batches: j + 1, aborted: true };
      }
    }
    return { batches: run.count, aborted: false };
  };
  outer: for (; st.epoch < opts.epochs && !(st.stop && startBatch === 0); st.epoch++) {
    if (startBatch === 0) acc = { lossSum: 0, correct: 0, seen: 0 };
    for await (const run of batchRuns(train, bufs, { batchSize: opts.batchSize, seed, epoch: st.epoch, dropLast, startBatch, groupAt })) {
      if (opts.maxSteps !== undefined && st.step >= opts.maxSteps) break outer;
      const r = run.count > 1 ? await groupSteps(run) : { batches: 1, aborted: await oneStep(run.x, run.y, run.index, run.size) };
      const batch = run.index + r.batches; // batches of this epoch done
      if (r.aborted) return cancelled(st.epoch, batch);
      if (lastFile && opts.checkpointEvery && st.step % opts.checkpointEvery === 0 && batch < stepsPerEpoch) await writeCheckpoint(lastFile, st.epoch, batch);
    }
    startBatch = 0;
    const m: EpochMetrics = { epoch: st.epoch + 1, step: st.step };
    if (acc.seen > 0) {
      m.train_loss = acc.lossSum / acc.seen;
      m.train_acc = acc.correct / acc.seen;
    }
    if (opts.val) {
      const v = await evaluateSource(runner, opts.val, opts.evalBatchSize);
      m.val_loss = v.loss;
      m.val_acc = v.acc;
    }
    st.history.push(m);
    for (const cb of callbacks) await cb.onEpochEnd?.(st, m);
    const mv = m[monitor];
    const improved = mv !== undefined && (Number.isNaN(best) || better(mv, best));
    if (improved) best = mv!;
    if (lastFile) {
      await writeCheckpoint(lastFile, st.epoch + 1, 0);
      if (improved && bestFile) await writeCheckpoint(bestFile, st.epoch + 1, 0);
    }
    if (st.stop) {
      stoppedEarly = st.epoch + 1 < opts.epochs;
      st.epoch++;
      break;
    }
  }
  for (const cb of callbacks) await cb.onTrainEnd?.(st);
  return { history: st.history, steps: st.step, stoppedEarly, seconds: (performance.now() - t0) / 1000 };
}

/** Checkpoint names of callbacks' tensors: "callback:<name>:<key>" (no runner state name has this form). */
const cbKey = (cb: Callback, k: string) => `callback:${cb.name}:${k}`;

/** The runner's state plus every callback's tensors, for one checkpoint. */
function withCallbackTensors(state: Map<string, Tensor>, callbacks: Callback[]): Map<string, Tensor> {
  for (const cb of callbacks) for (const [k, v] of cb.saveTensors?.() ?? []) state.set(cbKey(cb, k), v);
  return state;
}

/** Hands each callback its tensors from a checkpoint and returns the rest (the runner's state). */
function splitCallbackTensors(tensors: Map<string, Tensor>, callbacks: Callback[]): Map<string, Tensor> {
  const rest = new Map([...tensors].filter(([k]) => !k.startsWith('callback:')));
  for (const cb of callbacks) {
    const prefix = cbKey(cb, '');
    const own = new Map([...tensors].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
    if (own.size) cb.loadTensors?.(own);
  }
  return rest;
}
