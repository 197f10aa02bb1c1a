/**
 * `adapt()`: one unsupervised domain-adaptation run from the library — compile the joint step for a method,
 * train on labelled source + unlabelled target, pick a checkpoint without target labels, return the model.
 * With a frozen backbone (every trainable parameter after the model's `graft.cut`), the backbone runs once
 * over every image and only the head (e.g. a bottleneck MLP) trains on the cached features.
 */

import { computeFeatures, headOnlySplit } from '../features/backbone.js';
import { type Model, withInitializers } from '../ir/model.js';
import { paramNames } from '../ir/params.js';
import { DEFAULT_LR } from '../optim/defaults.js';
import type { Optimizer } from '../optim/optimizer.js';
import { invSchedule } from '../optim/schedule.js';
import { sgd } from '../optim/sgd.js';
import { type BatchSource, subsetSource } from '../step/batches.js';
import { compileEvalStep } from '../step/eval-graph.js';
import { StepRunner } from '../step/runner.js';
import type { Tensor } from '../tensor.js';
import type { Callback } from '../train/callbacks.js';
import { fit } from '../train/fit.js';
import { adaBN } from './adabn.js';
import type { AutoReport, Validator } from './auto.js';
import { compileAdaptStep } from './compile.js';
import { assertUnlabelled, checkDomains, sampleIndices, type UnlabelledSource, unlabelled } from './data.js';
import { JointBatchSource } from './joint.js';
import { METHOD_INFO, type MethodName, type MethodSpec, parseMethod } from './methods.js';
import { CheckpointSelection, type EvalRecord, type Scores, type SelectBy, scoreModel } from './select.js';

/** Options of {@link adapt}. Defaults follow the reference protocol (shared/ref/exp_da_shift.py). */
export interface AdaptOptions {
  /** Forward model (x → logits): pretrained, or freshly built to train from scratch with the source. */
  model: Model;
  /** Labelled source data. */
  source: BatchSource;
  /** Unlabelled target data; wrap images with `unlabelled()` — a labelled source is refused. */
  target: BatchSource;
  /**
   * The method, or 'auto': run the `candidates` (default: every method that applies) for every seed in `seeds`
   * (default [seed]) and pick one run by the unsupervised `validator` (docs/cli/adapt.md, src/adapt/auto.ts).
   */
  method: MethodName | MethodSpec | 'auto';
  /** With method 'auto': the methods to try. */
  candidates?: (MethodName | MethodSpec)[];
  /** With method 'auto': the seeds to try (each method × seed is one candidate). */
  seeds?: number[];
  /** With method 'auto': the validator that picks (default 'im'). */
  validator?: Validator;
  /** With method 'auto': export the mean softmax of the top k candidates by the validator as one model (default 1, the pick alone). */
  ensemble?: number;
  /** Parameters to train (default: all). */
  trainable?: string[];
  /** Feature value for the adaptation term (default: the input of the final classifier). */
  features?: string;
  /** Labelled source validation data (reported; `select: 'source-val'` selects with it). */
  sourceVal?: BatchSource;
  /** Labelled target data, evaluated only: never trained on, never used to select. */
  targetEval?: BatchSource;
  /** Default 2. */
  epochs?: number;
  /** Source rows per step, and target rows per step (default 64 each). */
  batchSize?: number;
  targetBatchSize?: number;
  /** SGD with momentum 0.9, weight decay 5e-4, lr 0.01 annealed as (1 + 10p)^−0.75 by default. */
  lr?: number;
  momentum?: number;
  weightDecay?: number;
  schedule?: (step: number, total: number) => number;
  /** The optimizer, in place of SGD with `lr`, `momentum` and `weightDecay` (e.g. `adam({ lr: 0.003 })` for a head on text embeddings). */
  optimizer?: Optimizer & { readonly lr: number };
  seed?: number;
  /** Checkpoint criterion (default 'im'; SND picked near-uniform checkpoints on the public shift, docs/benchmarks.md). */
  select?: SelectBy;
  /** Score a checkpoint every this many steps (default: each epoch). */
  evalEvery?: number;
  /** Target images scored by the unsupervised criteria (default 1000, a fixed seeded subset). */
  targetSamples?: number;
  /** Target images AdaBN re-estimates the statistics on (default 10000). */
  adabnSamples?: number;
  /** Train the head on cached features when the backbone is frozen (default 'auto'). */
  featureCache?: 'auto' | boolean;
  onStep?: (step: number, total: number, r: { loss: number; metrics: Record<string, number> }) => void;
  /** Called with each scored checkpoint as soon as it is scored. */
  onEval?: (r: EvalRecord) => void;
  /** More training callbacks (progress, logs), run by the same `fit` loop as `graft train`'s. */
  callbacks?: Callback[];
  /** Folder for last.ckpt (every epoch, and every `checkpointEvery` steps), as `fit`'s; with `resume`, continue from it exactly. */
  checkpointDir?: string;
  checkpointEvery?: number;
  resume?: boolean;
  /** Stop after this many steps (tests: an interrupted run). */
  maxSteps?: number;
}

/** Result of one {@link adapt} run. */
export interface AdaptResult {
  method: MethodName;
  seed: number;
  /** The selected checkpoint as a full forward model (for AdaBN, with the re-estimated statistics). */
  model: Model;
  /** The last checkpoint (the same object as `model` when it was selected). */
  lastModel: Model;
  selectBy: SelectBy;
  /** Scores of the selected model, and of the last checkpoint. */
  selected: EvalRecord;
  last: EvalRecord;
  history: EvalRecord[];
  /** Mean training losses/metrics over the run. */
  train: Record<string, number>;
  steps: number;
  /** Wall time of the run (training, scoring and AdaBN). */
  seconds: number;
  featureCache: boolean;
  /** With method 'auto': every candidate's validator scores, the pick and why. */
  auto?: AutoReport;
}

/** The default bottleneck-free behaviour: train everything. */
function checkOptions(o: AdaptOptions & { method: MethodName | MethodSpec }): { spec: MethodSpec; epochs: number; n: number; m: number } {
  const spec = typeof o.method === 'string' ? { name: parseMethod(o.method) } : { ...o.method, name: parseMethod(o.method.name) };
  const epochs = o.epochs ?? 2;
  const n = o.batchSize ?? 64;
  const m = o.targetBatchSize ?? n;
  if (!(Number.isInteger(epochs) && epochs >= 1)) throw new Error(`adapt: epochs must be a positive integer, got ${epochs}.`);
  if (!(Number.isInteger(n) && n >= 2 && Number.isInteger(m) && m >= 2))
    throw new Error(`adapt: batch sizes must be integers ≥ 2 (got ${n} source, ${m} target).`);
  return { spec, epochs, n, m };
}

/**
 * Runs one adaptation. Throws before training on: labelled target data, mismatched source/target samples,
 * AdaBN on a model without BatchNorm, an empty target, or a feature-aligning method on frozen features.
 */
export async function adapt(opts: AdaptOptions): Promise<AdaptResult> {
  if (opts.method === 'auto') {
    const { autoAdapt } = await import('./auto.js');
    const { method: _m, seed, seeds, ...rest } = opts;
    return autoAdapt({ ...rest, seeds: seeds ?? [seed ?? 0] });
  }
  if (opts.candidates || opts.seeds || opts.validator || opts.ensemble !== undefined)
    throw new Error(`adapt: candidates, seeds, validator and ensemble apply to method 'auto' only; remove them, or set method: 'auto'.`);
  const o = opts as AdaptOptions & { method: MethodName | MethodSpec };
  const t0 = performance.now();
  const { spec, epochs, n, m } = checkOptions(o);
  assertUnlabelled(o.target, 'adapt');
  const target: UnlabelledSource = o.target;
  if (target.length === 0) throw new Error('adapt: the target has no images; point it at the unlabelled target-domain images.');
  checkDomains(o.source, target);
  if (o.targetEval) checkDomains(o.source, o.targetEval, { source: 'source', target: 'target evaluation data' });
  if (spec.name === 'adabn') {
    checkHasBN(o.model);
    return withAdaBN(await adapt({ ...o, method: { ...spec, name: 'source-only' } }), o);
  }
  const info = METHOD_INFO[spec.name];
  const trainable = o.trainable ?? paramNames(o.model);
  const seed = o.seed ?? 0;
  const select = o.select ?? 'im';
  if (select === 'source-val' && !o.sourceVal)
    throw new Error("adapt: select 'source-val' needs sourceVal (labelled source validation data); pass it or choose 'im'.");
  const targetSample = subsetOf(target, sampleIndices(target.length, o.targetSamples ?? 1000, seed + 1));

  // frozen backbone → cached features, head only
  const cut = o.model.metadata['graft.cut'];
  let forward = o.model;
  let data = { source: o.source, target, sourceVal: o.sourceVal, targetEval: o.targetEval, targetSample: targetSample as BatchSource };
  let cached = false;
  // FixMatch's two augmented target views need the images: no features computed once
  const split = (o.featureCache ?? 'auto') !== false ? headOnlySplit({ model: o.model, cut, trainable, augmented: info.targetViews === 2 }) : undefined;
  if (split) {
    const backbone = split.backbone();
    const f = (s: BatchSource) => computeFeatures(backbone, s);
    data = {
      source: await f(o.source),
      target: unlabelled(await f(target)),
      sourceVal: o.sourceVal && (await f(o.sourceVal)),
      targetEval: o.targetEval && (await f(o.targetEval)),
      targetSample: await f(targetSample),
    };
    forward = split.head;
    cached = true;
  }
  // token ids (a text encoder's input) are embedded once: only the head adapts, on the cached embeddings
  if (!cached && o.source.sampleDtype === 'int64')
    throw new Error(
      `adapt: text is adapted on cached embeddings, so the encoder must be frozen (every trainable parameter after its graft.cut) and the method one that needs no augmented views (${spec.name} given). ` +
        'Build the model with textAdaptModel (a frozen encoder and a bottleneck head), and use coral, dan, dann, cdan, mcc, self-training or source-only.',
    );
  if (o.featureCache === true && !cached)
    throw new Error('adapt: featureCache: true needs a model with a graft.cut (replaceHead) and only parameters after the cut trainable, and not FixMatch.');

  if (data.source.length < n) throw new Error(`The source has ${data.source.length} samples, fewer than one batch of ${n}; lower the batch size.`);
  const total = epochs * Math.floor(data.source.length / n);
  const optimizer = o.optimizer ?? sgd({ lr: o.lr ?? DEFAULT_LR.sgd, momentum: o.momentum ?? 0.9, weightDecay: o.weightDecay ?? 5e-4 });
  const step = compileAdaptStep({
    model: forward,
    features: o.features,
    trainable: trainable.filter((p) => forward.graph.initializers.has(p)),
    optimizer,
    method: spec,
    sourceBatch: n,
    targetBatch: m,
    totalSteps: total,
    seed,
  });
  // one loop: `fit` over the joint batches [source | target (| strong view)], checkpoints picked by a callback
  const joint = new JointBatchSource(data.source, info.targetViews ? data.target : undefined, { views: info.targetViews, targetBatch: m, seed });
  const selection = new CheckpointSelection({
    forward,
    data: { sourceVal: data.sourceVal, targetSample: data.targetSample, targetEval: data.targetEval },
    select,
    evalEvery: o.evalEvery,
    labelledRows: n,
    onStep: o.onStep,
    onEval: o.onEval,
  });
  const runner = await StepRunner.create(step, compileEvalStep(forward, step));
  let steps: number;
  let lastState: Map<string, Tensor>;
  try {
    const r = await fit(runner, joint, {
      epochs,
      batchSize: n,
      dropLast: true,
      lr: optimizer.lr,
      schedule: o.schedule ?? invSchedule(),
      seed,
      callbacks: [joint, selection, ...(o.callbacks ?? [])],
      checkpointDir: o.checkpointDir,
      checkpointEvery: o.checkpointEvery,
      resume: o.resume,
      maxSteps: o.maxSteps,
    });
    steps = r.steps;
    lastState = runner.state(['param', 'bn']);
  } finally {
    await runner.release();
  }
  const loop = { selected: selection.best!, selectedState: selection.bestState!, last: selection.history.at(-1)!, lastState };
  const fold = (state: Map<string, Tensor>) => withInitializers(o.model, state);
  // the selected checkpoint's parameters and BN statistics, folded into the full model
  const model = fold(loop.selectedState);
  const lastModel = loop.selected.step === loop.last.step ? model : fold(loop.lastState);
  const selected = loop.selected;
  const last = loop.last;
  return {
    method: spec.name,
    seed,
    model,
    lastModel,
    selectBy: select,
    selected,
    last,
    history: selection.history,
    train: selection.train(steps),
    steps,
    seconds: (performance.now() - t0) / 1000,
    featureCache: cached,
  };
}

/** Throws when AdaBN cannot apply: the model has no BatchNormalization layer. */
export function checkHasBN(model: Model): void {
  if (!model.graph.nodes.some((x) => x.op === 'BatchNormalization'))
    throw new Error('AdaBN re-estimates BatchNorm statistics, and this model has no BatchNormalization layer. Use another method (e.g. coral or mcc).');
}

/**
 * AdaBN on top of a finished run (normally source-only): re-estimates every BatchNorm's statistics on the
 * unlabelled target (at most `adabnSamples` images, default 10000) and re-scores the model.
 */
export async function withAdaBN(
  base: AdaptResult,
  o: Pick<AdaptOptions, 'target' | 'sourceVal' | 'targetEval' | 'targetSamples' | 'adabnSamples'>,
): Promise<AdaptResult> {
  const t0 = performance.now();
  checkHasBN(base.model);
  assertUnlabelled(o.target, 'AdaBN');
  const target = o.target;
  const targetSample = subsetOf(target, sampleIndices(target.length, o.targetSamples ?? 1000, base.seed + 1));
  const rescore = async (m: Model, rec: EvalRecord) => {
    const model = await adaBN(m, target, { maxSamples: o.adabnSamples ?? 10000 });
    const sc: Scores = await scoreModel(model, { sourceVal: o.sourceVal, targetSample, targetEval: o.targetEval });
    return { model, rec: { ...rec, ...sc } };
  };
  const sel = await rescore(base.model, base.selected);
  const last = base.lastModel === base.model ? sel : await rescore(base.lastModel, base.last);
  return {
    ...base,
    method: 'adabn',
    model: sel.model,
    lastModel: last.model,
    selected: sel.rec,
    last: last.rec,
    seconds: base.seconds + (performance.now() - t0) / 1000,
  };
}

/** A source over some samples of `src` (indices sorted), unlabelled when `src` is: {@link subsetSource} keeping the target's marks. */
export function subsetOf(src: UnlabelledSource, idx: Int32Array): UnlabelledSource {
  return Object.assign(subsetSource(src, idx), { unlabelled: true as const, preprocess: src.preprocess });
}
