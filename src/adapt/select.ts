/**
 * Scoring a model without target labels, for checkpoint selection: source-validation accuracy, the mean
 * prediction entropy on the target, and SND (soft neighborhood density, Saito et al., ICCV 2021). With labelled
 * target data for evaluation only, also the target accuracy (never used to select).
 */
import type { Model } from '../ir/model.js';
import { createSession, ort, runChecked } from '../runtime/session.js';
import { BatchBuffers, type BatchSource, batches } from '../step/batches.js';
import { toInferenceModel } from '../step/export.js';
import type { Tensor } from '../tensor.js';
import type { Callback, EpochMetrics, TrainState } from '../train/callbacks.js';

/** Unsupervised (and, when labels are given for evaluation, supervised) scores of one model. */
export interface Scores {
  /** Accuracy on the labelled source validation set, in [0, 1]. */
  source_val_acc?: number;
  /** Mean Shannon entropy (nats) of the target predictions: lower = more confident. */
  target_entropy: number;
  /** Soft neighborhood density of the target predictions: higher = better clustered (the default selector). */
  snd: number;
  /** Information maximization of the target predictions, H(mean p) − mean H(p) in nats: higher = confident and diverse. */
  target_im: number;
  /** Accuracy on the labelled target evaluation set (reported only; never used for selection). */
  target_acc?: number;
}

/**
 * How a checkpoint is picked: IM (max; the default), SND (max), target entropy (min), source-validation accuracy
 * (max), or the last one. IM is the default because on the public shift SND picked near-uniform predictions
 * (docs/benchmarks.md, "Adapt --method auto").
 */
export type SelectBy = 'im' | 'snd' | 'entropy' | 'source-val' | 'last';

/** True when scores `a` are better than `b` under `by`. */
export function better(a: Scores, b: Scores, by: SelectBy): boolean {
  if (by === 'im') return a.target_im > b.target_im;
  if (by === 'snd') return a.snd > b.snd;
  if (by === 'entropy') return a.target_entropy < b.target_entropy;
  if (by === 'source-val') return (a.source_val_acc ?? 0) > (b.source_val_acc ?? 0);
  return true;
}

/**
 * SND of row-wise probabilities p [n, C]: normalise each row to unit length, take cosine similarities to the
 * other rows scaled by 1/τ, softmax each row (self excluded) and return the mean entropy of those rows.
 */
export function snd(p: Float32Array, n: number, c: number, tau = 0.05): number {
  if (n < 2) return 0;
  const q = new Float32Array(n * c);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = 0; k < c; k++) s += p[i * c + k]! ** 2;
    const inv = 1 / Math.sqrt(s || 1);
    for (let k = 0; k < c; k++) q[i * c + k] = p[i * c + k]! * inv;
  }
  let total = 0;
  const row = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let max = -Infinity;
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      let d = 0;
      for (let k = 0; k < c; k++) d += q[i * c + k]! * q[j * c + k]!;
      row[j] = d / tau;
      if (row[j]! > max) max = row[j]!;
    }
    let z = 0;
    for (let j = 0; j < n; j++) if (j !== i) z += Math.exp(row[j]! - max);
    let h = 0;
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      const pr = Math.exp(row[j]! - max) / z;
      if (pr > 0) h -= pr * Math.log(pr);
    }
    total += h;
  }
  return total / n;
}

/** Mean Shannon entropy of row-wise probabilities p [n, C]. */
export function meanEntropy(p: Float32Array, n: number, c: number): number {
  let h = 0;
  for (let i = 0; i < n * c; i++) if (p[i]! > 0) h -= p[i]! * Math.log(p[i]!);
  return n ? h / n : 0;
}

/**
 * Information maximization score of row-wise probabilities p [n, C] (the IM objective of SHOT, Liang et al.
 * 2020, as a validator): the entropy of the mean prediction minus the mean entropy of the predictions. High when
 * each prediction is confident and the classes are used evenly; 0 for identical or uniform predictions.
 */
export function imScore(p: Float32Array, n: number, c: number): number {
  if (!n) return 0;
  const mean = new Float64Array(c);
  for (let i = 0; i < n; i++) for (let k = 0; k < c; k++) mean[k]! += p[i * c + k]! / n;
  let hMean = 0;
  for (let k = 0; k < c; k++) if (mean[k]! > 0) hMean -= mean[k]! * Math.log(mean[k]!);
  return hMean - meanEntropy(p, n, c);
}

/** Probabilities and accuracy of `session` (an inference model) over a batch source. */
async function runProbabilities(session: ort.InferenceSession, src: BatchSource, labelled: boolean): Promise<{ p: Float32Array; c: number; acc: number }> {
  const bufs = new BatchBuffers(src.sampleShape);
  const chunks: Float32Array[] = [];
  let c = 0;
  let hit = 0;
  for await (const b of batches(src, bufs, { batchSize: 500, seed: 0, epoch: 0, shuffle: false })) {
    // float32 images or features; int64 token ids of a text model
    const x =
      b.x.dtype === 'int64'
        ? new ort.Tensor('int64', b.x.data as BigInt64Array, [...b.x.dims])
        : new ort.Tensor('float32', b.x.data as Float32Array, [...b.x.dims]);
    const out = await runChecked(session, { [session.inputNames[0]!]: x }, undefined, {
      what: 'adaptation scoring',
    });
    const p = out.probabilities!;
    c = p.dims[1]!;
    const d = p.data as Float32Array;
    chunks.push(d.slice());
    if (labelled) {
      const y = b.y.data as BigInt64Array;
      for (let i = 0; i < b.size; i++) {
        let arg = 0;
        for (let k = 1; k < c; k++) if (d[i * c + k]! > d[i * c + arg]!) arg = k;
        if (BigInt(arg) === y[i]) hit++;
      }
    }
  }
  const p = new Float32Array(chunks.reduce((a, x) => a + x.length, 0));
  let off = 0;
  for (const x of chunks) {
    p.set(x, off);
    off += x.length;
  }
  return { p, c, acc: src.length ? hit / src.length : 0 };
}

/**
 * The softmax probabilities [n, C] of a forward model (x → logits, inference mode) over `src`, in its order; with
 * `labelled`, also the accuracy against its labels (otherwise 0).
 */
export async function predictProbabilities(model: Model, src: BatchSource, labelled = false): Promise<{ p: Float32Array; classes: number; acc: number }> {
  const session = await createSession(toInferenceModel(model, { logits: false }));
  try {
    const r = await runProbabilities(session, src, labelled);
    return { p: r.p, classes: r.c, acc: r.acc };
  } finally {
    await session.release();
  }
}

/** The unsupervised scores (entropy, SND, IM) of probabilities p [n, C]. */
export function probabilityScores(p: Float32Array, n: number, c: number): Pick<Scores, 'target_entropy' | 'snd' | 'target_im'> {
  return { target_entropy: meanEntropy(p, n, c), snd: snd(p, n, c), target_im: imScore(p, n, c) };
}

/** Scores a forward model (inference mode) on the given data; `targetSample` should be a fixed subset (≤ ~2000). */
export async function scoreModel(model: Model, data: { sourceVal?: BatchSource; targetSample: BatchSource; targetEval?: BatchSource }): Promise<Scores> {
  const session = await createSession(toInferenceModel(model, { logits: false }));
  try {
    const t = await runProbabilities(session, data.targetSample, false);
    const n = data.targetSample.length;
    const s: Scores = probabilityScores(t.p, n, t.c);
    if (data.sourceVal) s.source_val_acc = (await runProbabilities(session, data.sourceVal, true)).acc;
    if (data.targetEval) s.target_acc = (await runProbabilities(session, data.targetEval, true)).acc;
    return s;
  } finally {
    await session.release();
  }
}

/** One scored checkpoint. */
export interface EvalRecord extends Scores {
  step: number;
  epoch: number;
}

/** Options of {@link CheckpointSelection}. */
export interface SelectionOptions {
  /** The forward model the runner's state belongs to (scored with the current state folded in). */
  forward: Model;
  data: { sourceVal?: BatchSource; targetSample: BatchSource; targetEval?: BatchSource };
  select: SelectBy;
  /** Score every this many steps (default: at the end of each epoch). */
  evalEvery?: number;
  /** Labelled rows per step (the source batch), for the mean source accuracy. */
  labelledRows: number;
  onStep?: (step: number, total: number, r: { loss: number; metrics: Record<string, number> }) => void;
  /** Called with each checkpoint's scores as soon as they are computed. */
  onEval?: (r: EvalRecord) => void;
}

/**
 * Checkpoint selection without target labels, as a training callback: every `evalEvery` steps (and at the last
 * step) the current model is scored ({@link scoreModel}) and the best checkpoint under `select` is kept. The
 * history, the best checkpoint's weights and the running training-loss sums are checkpoint state, so a resumed
 * run selects exactly what an uninterrupted one would.
 */
export class CheckpointSelection implements Callback {
  readonly name = 'adapt-selection';
  history: EvalRecord[] = [];
  /** The selected checkpoint's record and parameters/BN statistics. */
  best?: EvalRecord;
  bestState?: Map<string, Tensor>;
  private sums: Record<string, number> = {};
  constructor(private readonly o: SelectionOptions) {}

  async onStepEnd(st: TrainState, r: { loss: number; metrics: Record<string, number> }): Promise<void> {
    this.sums.loss = (this.sums.loss ?? 0) + r.loss;
    for (const [k, v] of Object.entries(r.metrics)) this.sums[k] = (this.sums[k] ?? 0) + v;
    this.o.onStep?.(st.step, st.totalSteps, r);
    if (st.step % (this.o.evalEvery ?? st.stepsPerEpoch) === 0 || st.step === st.totalSteps) await this.score(st, st.epoch + 1);
  }

  /** Adds the epoch's latest scores to its metrics (when it was scored at its last step). */
  onEpochEnd(st: TrainState, m: EpochMetrics): void {
    const last = this.history.at(-1);
    if (last?.step !== st.step) return;
    for (const [k, v] of Object.entries(last)) if (k !== 'step' && k !== 'epoch' && typeof v === 'number') m[k] = v;
  }

  async onTrainEnd(st: TrainState): Promise<void> {
    if (st.step > 0 && this.history.at(-1)?.step !== st.step) await this.score(st, st.epoch);
  }

  /** Mean training losses and metrics over `steps` steps (correct: the source accuracy). */
  train(steps: number): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(this.sums)) out[k] = k === 'correct' ? v / (steps * this.o.labelledRows) : v / steps;
    return out;
  }

  private async score(st: TrainState, epoch: number): Promise<void> {
    const sc = await scoreModel(st.runner.exportForward(this.o.forward), this.o.data);
    const rec: EvalRecord = { step: st.step, epoch, ...sc };
    this.history.push(rec);
    this.o.onEval?.(rec);
    if (this.o.select === 'last' || !this.best || better(rec, this.best, this.o.select)) {
      this.best = rec;
      this.bestState = st.runner.state(['param', 'bn']);
    }
  }

  saveState(): unknown {
    return { history: this.history, best: this.best, sums: this.sums };
  }
  loadState(state: unknown): void {
    const s = state as { history: EvalRecord[]; best?: EvalRecord; sums: Record<string, number> };
    this.history = s.history;
    this.best = s.best;
    this.sums = s.sums;
  }
  saveTensors(): Map<string, Tensor> {
    return this.bestState ?? new Map();
  }
  loadTensors(tensors: Map<string, Tensor>): void {
    this.bestState = tensors;
  }
}
