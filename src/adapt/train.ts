/**
 * The adaptation loop: each step fills one joint batch [source | target (| strong target view)] and runs the
 * compiled step once. The protocol follows shared/ref/exp_da_shift.py: epochs run over the source (⌊n/bs⌋
 * steps each), the target is drawn from its own seeded permutation (re-drawn when it runs out), the learning
 * rate is the base LR times a host schedule. Every `evalEvery` steps (default: each epoch) the current
 * model is scored without target labels and the best checkpoint under the chosen criterion is kept.
 */
import type { Model } from '../ir/model.js';
import { type BatchSource, epochOrder } from '../step/batches.js';
import type { StepResult, StepRunner } from '../step/runner.js';
import { Rng, Tensor } from '../tensor.js';
import { strongAugment, weakAugment } from './augment.js';
import type { CompiledAdaptStep } from './compile.js';
import type { UnlabelledSource } from './data.js';
import { better, type Scores, type SelectBy, scoreModel } from './select.js';

/** One scored checkpoint. */
export interface EvalRecord extends Scores {
  step: number;
  epoch: number;
}

/** Options of {@link adaptLoop}. */
export interface AdaptLoopOptions {
  epochs: number;
  /** Base learning rate. */
  lr: number;
  /** LR multiplier (step, total) → factor; default constant. */
  schedule?: (step: number, total: number) => number;
  seed: number;
  /** The forward model the runner's state belongs to (for scoring checkpoints). */
  forward: Model;
  sourceVal?: BatchSource;
  /** A fixed subset of the (unlabelled) target for the unsupervised criteria. */
  targetSample: BatchSource;
  /** Labelled target data: evaluated at each checkpoint, never trained on nor used to select. */
  targetEval?: BatchSource;
  select: SelectBy;
  /** Score every this many steps (default: at the end of each epoch). */
  evalEvery?: number;
  onStep?: (step: number, total: number, r: StepResult) => void;
  onEval?: (r: EvalRecord) => void;
}

/** What {@link adaptLoop} returns; the runner is left holding the selected checkpoint. */
export interface AdaptLoopResult {
  history: EvalRecord[];
  selected: EvalRecord;
  /** Parameters and BN statistics of the selected checkpoint, and of the last one. */
  selectedState: Map<string, Tensor>;
  lastState: Map<string, Tensor>;
  last: EvalRecord;
  steps: number;
  /** Mean training losses over the run. */
  train: Record<string, number>;
}

/** Number of steps of a run: epochs × ⌊source / batch⌋ (at least one step per epoch). */
export function totalSteps(sourceLength: number, batch: number, epochs: number): number {
  return epochs * Math.max(1, Math.floor(sourceLength / batch));
}

/** Runs the adaptation loop on `runner` (created from a {@link CompiledAdaptStep}). */
export async function adaptLoop(
  runner: StepRunner,
  step: CompiledAdaptStep,
  source: BatchSource,
  target: UnlabelledSource | undefined,
  o: AdaptLoopOptions,
): Promise<AdaptLoopResult> {
  const { source: n, target: m, targetViews, rows } = step.batch;
  if (source.length < n) throw new Error(`The source has ${source.length} samples, fewer than one batch of ${n}; lower the batch size.`);
  if (targetViews && (!target || target.length < m))
    throw new Error(`The target has ${target?.length ?? 0} samples, fewer than one batch of ${m}; lower the batch size or add target images.`);
  const shape = source.sampleShape;
  const per = shape.reduce((a, b) => a * b, 1);
  const x = Tensor.f32([rows, ...shape]);
  const xd = x.data as Float32Array;
  const y = new Tensor('int64', [n], new BigInt64Array(n));
  const scratch = new BigInt64Array(Math.max(m, 1));
  const spe = Math.max(1, Math.floor(source.length / n));
  const total = o.epochs * spe;
  const evalEvery = o.evalEvery ?? spe;
  const trng = new Rng((o.seed * 7919 + 1000) >>> 0);
  const arng = new Rng((o.seed * 104729 + 7) >>> 0);
  let tperm = target ? trng.permutation(target.length) : new Int32Array(0);
  let tpos = 0;
  const history: EvalRecord[] = [];
  let best: { rec: EvalRecord; state: Map<string, Tensor> } | undefined;
  const sums: Record<string, number> = {};
  let stepNo = 0;
  const score = async (epoch: number) => {
    const sc = await scoreModel(runner.exportForward(o.forward), { sourceVal: o.sourceVal, targetSample: o.targetSample, targetEval: o.targetEval });
    const rec: EvalRecord = { step: stepNo, epoch, ...sc };
    history.push(rec);
    o.onEval?.(rec);
    if (o.select === 'last' || !best || better(rec, best.rec, o.select)) best = { rec, state: runner.state(['param', 'bn']) };
  };
  for (let epoch = 0; epoch < o.epochs; epoch++) {
    const order = epochOrder(source.length, o.seed, epoch);
    for (let b = 0; b < spe; b++) {
      await source.fill(order.subarray(b * n, (b + 1) * n), xd.subarray(0, n * per), y.data as BigInt64Array, { epoch, seed: o.seed });
      if (targetViews && target) {
        if (tpos + m > target.length) {
          tperm = trng.permutation(target.length);
          tpos = 0;
        }
        const weak = xd.subarray(n * per, (n + m) * per);
        await target.fill(tperm.subarray(tpos, tpos + m), weak, scratch, { epoch, seed: o.seed });
        tpos += m;
        if (targetViews === 2) {
          const strong = xd.subarray((n + m) * per, (n + 2 * m) * per);
          strong.set(weak);
          weakAugment(weak, m, shape, arng);
          strongAugment(strong, m, shape, arng);
        }
      }
      const mult = o.schedule ? o.schedule(stepNo, total) : 1;
      const r = await runner.train(
        { x, y },
        step.lrScales.map((s) => o.lr * s * mult),
        o.seed,
      );
      stepNo = runner.stepCount;
      sums.loss = (sums.loss ?? 0) + r.loss;
      for (const [k, v] of Object.entries(r.metrics)) sums[k] = (sums[k] ?? 0) + v;
      o.onStep?.(stepNo, total, r);
      if (stepNo % evalEvery === 0 || stepNo === total) await score(epoch + 1);
    }
  }
  if (history.at(-1)?.step !== stepNo) await score(o.epochs);
  const last = history.at(-1)!;
  const lastState = runner.state(['param', 'bn']);
  runner.load(best!.state);
  const train: Record<string, number> = {};
  for (const [k, v] of Object.entries(sums)) train[k] = k === 'correct' ? v / (stepNo * n) : v / stepNo;
  return { history, selected: best!.rec, selectedState: best!.state, last, lastState, steps: stepNo, train };
}
