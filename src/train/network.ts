/**
 * Network: the library's main object, a model plus what is trainable, its labels and its
 * preprocessing. It reads like the PyTorch transfer-learning recipe:
 *
 * ```ts
 * const net = await Network.load('resnet18.onnx');
 * net.freeze().replaceHead(mlp([256, 256], 10));
 * await net.fit(train, { epochs: 10, batchSize: 32, optimizer: sgd({ lr: 0.01, momentum: 0.9 }), val });
 * await net.save('out/model.onnx');
 * ```
 *
 * With a frozen backbone, `fit` trains the head on features computed once (the feature cache path);
 * otherwise it compiles one training-step graph for the trainable part and runs it in onnxruntime.
 */
import path from 'node:path';
import { type PreprocessConfig, parsePreprocessConfig } from '../data/preprocess.js';
import { readTokenizerFile, type TokenizerSpec, tokenizerPath, writeTokenizerFile } from '../data/tokenize.js';
import { computeFeatures, type HeadOnlySplit, headOnlySplit, isAugmented } from '../features/backbone.js';
import { loadAnyModel } from '../import/index.js';
import { type Model, withInitializers } from '../ir/model.js';
import { paramNames } from '../ir/params.js';
import { featureCut, recordedCut, stages } from '../ir/surgery.js';
import { cachePaths, cacheState, modelsDir } from '../models/fetch.js';
import { registryEntryOf } from '../models/name.js';
import type { ResolveModelOptions } from '../models/resolve.js';
import type { Module } from '../nn/module.js';
import { replaceHead as replaceHeadOp } from '../nn/replace-head.js';
import { saveModel } from '../onnx/io.js';
import { registerStandardOps } from '../ops/index.js';
import type { Optimizer, ParamGroup } from '../optim/optimizer.js';
import { createSession, ort, runChecked } from '../runtime/session.js';
import { BatchBuffers, type BatchSource, batches, batchesPerEpoch } from '../step/batches.js';
import { compileTrainStep, type LossSpec } from '../step/compile.js';
import { compileEvalStep } from '../step/eval-graph.js';
import { toInferenceModel } from '../step/export.js';
import type { RecomputeSpec } from '../step/recompute.js';
import { EvalRunner, StepRunner } from '../step/runner.js';
import type { Tensor } from '../tensor.js';
import { atomicWrite } from '../util/atomic-write.js';
import type { OnTaskProgress } from '../util/progress.js';
import { graftVersion } from '../util/version.js';
import type { Callback } from './callbacks.js';
import type { ImageClass } from './classify.js';
import { evaluateSource, type FitResult, fit, headStepsPerRun, headThreads, type LrSchedule } from './fit.js';
import { type FitProgress, progressCallback } from './progress.js';
import { phasesOf } from './recipes.js';
import { readSidecar, sidecarPath } from './sidecar.js';

/** How predict's and feature extraction's feed checks are worded (runtime/feeds.ts). */
const PREDICT_FEEDS = { what: 'Network.predict' };

/** Options of {@link Network.fit}. */
export interface FitConfig {
  epochs: number;
  batchSize: number;
  optimizer: Optimizer & { readonly lr: number };
  /** Base learning rate of this fit (default: the optimizer's `lr`). */
  lr?: number;
  loss?: LossSpec;
  schedule?: LrSchedule;
  val?: BatchSource;
  callbacks?: Callback[];
  seed?: number;
  clipNorm?: number;
  /** Gradient checkpointing of the step (see StepOptionsBase.recompute); default 'auto' at the fit's batch size (from ~1 GiB of activations per batch). */
  recompute?: RecomputeSpec;
  /**
   * Learning-rate groups: 'discriminative' spreads lrScale geometrically from 1/100 (first stage)
   * to 1 (head) over the model's stages, as fastai does; or explicit groups with `groupOf`.
   */
  groups?: 'single' | 'discriminative' | { groups: ParamGroup[]; groupOf: (param: string) => number };
  /** Train the head on features computed once when everything trainable is after the cut (default 'auto'). */
  featureCache?: 'auto' | boolean;
  /**
   * The backbone's features of `train` and `val`, computed beforehand (e.g. read back from the feature store
   * by a `graft tune` worker): a head-only fit trains on them instead of running the backbone.
   */
  features?: { train: BatchSource; val?: BatchSource };
  checkpointDir?: string;
  checkpointEvery?: number;
  resume?: boolean;
  /** Whether frozen BatchNorm layers use batch statistics (default false: frozen BN stays in inference mode). */
  trainFrozenBN?: boolean;
  /**
   * Keep every BatchNormalization in inference mode (running statistics, not updated), even in trainable layers;
   * their scale and shift still train. Keras's transfer-learning advice for fine-tuning on small data, and much
   * cheaper per step (no batch statistics and their backward). Default false (PyTorch's `model.train()`).
   */
  freezeBNStats?: boolean;
  /**
   * Batch size of the frozen backbone's feature extraction and of each epoch's validation. Default: `batchSize`,
   * which the training step proved fits; a larger one multiplies the memory of every activation (a MobileNetV2
   * at 224 px and batch 256 holds 1.2 GB in one of them).
   */
  evalBatchSize?: number;
  /** Metric that decides best.ckpt (default val_acc with a validation set, else train_loss). */
  monitor?: string;
  /**
   * Progress: one `step` report per optimizer step, one `epoch` per epoch, and `task` reports while a frozen
   * backbone's features are hashed and extracted. Nothing is printed; draw them as you like.
   */
  onProgress?: (p: FitProgress) => void;
  /** onnxruntime intra-op threads of the fit's sessions (default: the process default, see runtime/threads.ts; a head on cached features below batch 128, `headThreads` in train/fit.ts). */
  threads?: number;
  /**
   * Optimizer steps per `session.run` (K): K batches at a time through the step unrolled K times, bit-identical to
   * single steps (checkpoints, callbacks, early stopping and resume keep their step-by-step behaviour). Default: for a
   * head trained on cached features, {@link headStepsPerRun} (16 when the fit has ≥ 2,000 steps, else 1); otherwise 1.
   */
  stepsPerRun?: number;
}

/** Sidecar metadata stored beside an exported model (model.json). */
export interface NetworkMeta {
  labels?: string[];
  preprocess?: PreprocessConfig;
  /** The feature value (pooled features before the classifier). */
  cut?: string;
  /** Calibration temperature: graft's probabilities are softmax(logits / temperature) (fitted on val by `graft train`). */
  temperature?: number;
  /** A text model's tokenizer (its input is token ids); saved as `<model>.tokenizer.json` beside the model. */
  text?: TokenizerSpec;
}

export class Network {
  /** Names of trainable parameters. */
  readonly trainable = new Set<string>();
  labels?: string[];
  preprocess?: PreprocessConfig;
  cut?: string;
  /** Calibration temperature (see {@link NetworkMeta.temperature}); undefined means 1. */
  temperature?: number;
  /** A text model's tokenizer (see {@link NetworkMeta.text}). */
  text?: TokenizerSpec;
  /** History of the last fit. */
  lastFit?: FitResult;
  /** Features of the validation data computed by the last head-only fit, so evaluating it again runs only the head. */
  private cachedFeatures = new WeakMap<BatchSource, BatchSource>();

  constructor(
    public model: Model,
    meta: NetworkMeta = {},
  ) {
    // surgery (findCut, stages, suffixFrom) infers shapes, which needs the op table
    registerStandardOps();
    this.labels = meta.labels;
    this.preprocess = meta.preprocess;
    this.cut = recordedCut(model, meta.cut);
    this.temperature = meta.temperature;
    this.text = meta.text;
    for (const p of paramNames(model)) this.trainable.add(p);
  }

  /**
   * Loads a model: an .onnx file, a TensorFlow.js model.json (layers or graph model, converted on the fly),
   * or `nsfwjs:MobileNetV2` / `nsfwjs:InceptionV3`. Labels and preprocessing come from a `<name>.json`
   * sidecar or the model's metadata_props.
   */
  static load(ref: string): Network {
    registerStandardOps(); // the sidecar check below infers shapes (findCut) before the constructor runs
    const file = cachedModelFile(ref);
    const model = loadAnyModel(file);
    const meta: NetworkMeta = {};
    const sidecar = readSidecar(file, model);
    if (sidecar) Object.assign(meta, sidecar);
    else {
      if (model.metadata['graft.preprocess']) meta.preprocess = JSON.parse(model.metadata['graft.preprocess']);
      if (model.metadata['graft.labels']) meta.labels = JSON.parse(model.metadata['graft.labels']);
    }
    // A graft export has outputs logits/probabilities/features: train and re-export from the logits.
    const outs = model.graph.outputs.map((o) => o.name);
    if (outs.includes('logits') && outs.length > 1) {
      // a cut naming the exported "features" output (an Identity of the real cut value) survives the prune below
      const alias = meta.cut && meta.cut !== 'logits' && outs.includes(meta.cut) ? model.graph.producers().get(meta.cut) : undefined;
      if (alias?.op === 'Identity' && alias.inputs[0]) meta.cut = alias.inputs[0];
      model.graph.outputs = model.graph.outputs.filter((o) => o.name === 'logits');
      model.graph.prune();
    }
    meta.text = readTokenizerFile(file);
    if (meta.preprocess) meta.preprocess = parsePreprocessConfig(meta.preprocess, sidecar ? (sidecarPath(file) ?? file) : `${file} metadata`);
    return new Network(model, meta);
  }

  /**
   * Like {@link Network.load}, and a registry name not yet in the model cache (`mobilenetv2`) is fetched into it
   * first (one `onNote` line says so; offline, the error names the mirror setting GRAFT_MODEL_MIRROR).
   */
  static async fetch(ref: string, opts: ResolveModelOptions = {}): Promise<Network> {
    const { resolveModelRef } = await import('../models/resolve.js');
    return Network.load(await resolveModelRef(ref, opts));
  }

  /** Sets the model's parameters and BN statistics from trained state (checkpoint tensors); other names are ignored. */
  loadState(tensors: Iterable<readonly [string, Tensor]>): this {
    this.model = withInitializers(this.model, tensors);
    return this;
  }

  /** All parameter names (trainable or not). */
  get parameters(): string[] {
    return paramNames(this.model);
  }

  /** Freezes every parameter (or those whose name starts with one of `prefixes`). */
  freeze(prefixes?: string[]): this {
    for (const p of this.parameters) if (!prefixes || prefixes.some((x) => p.startsWith(x))) this.trainable.delete(p);
    return this;
  }

  /** Unfreezes every parameter, or only the last `lastStages` stages (see `graft inspect`), or named prefixes. */
  unfreeze(opts: { lastStages?: number; prefixes?: string[] } = {}): this {
    if (opts.prefixes) {
      for (const p of this.parameters) if (opts.prefixes.some((x) => p.startsWith(x))) this.trainable.add(p);
    } else if (opts.lastStages !== undefined) {
      const st = stages(this.model);
      for (const s of st.slice(Math.max(0, st.length - opts.lastStages))) for (const p of s.params) this.trainable.add(p);
    } else for (const p of this.parameters) this.trainable.add(p);
    return this;
  }

  /** Replaces everything after the feature cut with `head` (trainable, freshly initialised from `seed`). */
  replaceHead(head: Module, opts: { cut?: string; seed?: number } = {}): this {
    const cut = featureCut(this.model, opts.cut ?? this.cut).value;
    this.model = replaceHeadOp(this.model, head, { cut, seed: opts.seed });
    this.cut = this.model.metadata['graft.cut'] ?? cut;
    for (const p of [...this.trainable]) if (!this.model.graph.initializers.has(p)) this.trainable.delete(p);
    // the new head's parameters (they may reuse the old head's names, e.g. "head.weight") are trainable
    for (const p of this.headParameters) this.trainable.add(p);
    return this;
  }

  /** Parameters of the head added by the last replaceHead (empty if none). */
  get headParameters(): string[] {
    return JSON.parse(this.model.metadata['graft.head_params'] ?? '[]') as string[];
  }

  /** True when every trainable parameter lies after the cut (the backbone is frozen): see `headOnlySplit`. */
  headOnly(): boolean {
    return this.headOnlySplit() !== undefined;
  }

  private headOnlySplit(data?: BatchSource): HeadOnlySplit | undefined {
    return headOnlySplit({ model: this.model, cut: this.cut, trainable: this.trainable, augmented: data !== undefined && isAugmented(data) });
  }

  /** Trains the trainable parameters. Returns the epoch history. */
  async fit(train: BatchSource, cfg: FitConfig): Promise<FitResult> {
    if (this.trainable.size === 0) throw new Error('Nothing to train: every parameter is frozen. Call unfreeze() or replaceHead() first.');
    const split = (cfg.featureCache ?? 'auto') !== false ? this.headOnlySplit(train) : undefined;
    if (cfg.featureCache === true && !split)
      throw new Error('featureCache: true needs a frozen backbone (only parameters after the cut trainable) and no augmentation.');
    const evalBatchSize = cfg.evalBatchSize ?? cfg.batchSize;
    let model = this.model;
    let trainSrc = train;
    let valSrc = cfg.val;
    this.cachedFeatures = new WeakMap();
    const onProgress = cfg.onProgress;
    const onTask: OnTaskProgress | undefined = onProgress && ((t) => onProgress({ type: 'task', ...t }));
    if (split) {
      let backbone: Model | undefined;
      const features = (src: BatchSource) => computeFeatures((backbone ??= split.backbone()), src, evalBatchSize, onTask);
      trainSrc = cfg.features?.train ?? (await features(train));
      if (cfg.val) {
        const feats = cfg.features?.val ?? (await features(cfg.val));
        this.cachedFeatures.set(cfg.val, feats);
        valSrc = feats;
      }
      model = split.head;
    }
    const trainable = [...this.trainable].filter((p) => model.graph.initializers.has(p));
    let groups: ParamGroup[] | undefined;
    let groupOf: ((p: string) => number) | undefined;
    if (cfg.groups === 'discriminative') {
      const st = stages(this.model).filter((s) => s.params.some((p) => this.trainable.has(p)));
      const n = st.length;
      groups = st.map((_, i) => ({ lrScale: n === 1 ? 1 : 0.01 ** ((n - 1 - i) / (n - 1)) }));
      const of = new Map<string, number>();
      st.forEach((s, i) => {
        for (const p of s.params) of.set(p, i);
      });
      groupOf = (p) => of.get(p) ?? n - 1;
    } else if (cfg.groups && cfg.groups !== 'single') ({ groups, groupOf } = cfg.groups);
    if (cfg.trainFrozenBN && cfg.freezeBNStats)
      throw new Error('fit: trainFrozenBN and freezeBNStats contradict each other (batch statistics everywhere vs nowhere); set at most one.');
    const trainBN = cfg.trainFrozenBN ? () => true : cfg.freezeBNStats ? () => false : undefined;
    const step = compileTrainStep({
      model,
      trainable,
      optimizer: cfg.optimizer,
      loss: cfg.loss,
      groups,
      groupOf,
      clipNorm: cfg.clipNorm,
      trainBN,
      // 'auto' at the fit's batch size: recompute only where a batch's activations are large (RECOMPUTE_DEFAULTS)
      recompute: (cfg.recompute ?? 'auto') === 'auto' ? { batchSize: cfg.batchSize } : cfg.recompute,
    });
    const stepsPerRun =
      cfg.stepsPerRun ??
      (split
        ? headStepsPerRun(
            batchesPerEpoch(trainSrc.length, cfg.batchSize, trainSrc.length > cfg.batchSize) * cfg.epochs,
            Math.floor(trainSrc.length / cfg.batchSize),
          )
        : 1);
    // a head on cached features keeps its eval session open beside the step's: its activations are small and a
    // K-step session is slow to reopen; a step through the backbone holds one session at a time (peak memory)
    const runner = await StepRunner.create(step, compileEvalStep(model, step, cfg.loss), {
      threads: cfg.threads ?? (split ? headThreads(cfg.batchSize) : undefined),
      stepsPerRun,
      oneSession: !split,
    });
    try {
      const r = await fit(runner, trainSrc, {
        epochs: cfg.epochs,
        batchSize: cfg.batchSize,
        lr: cfg.lr ?? cfg.optimizer.lr,
        schedule: cfg.schedule,
        seed: cfg.seed,
        val: valSrc,
        callbacks: onProgress ? [...(cfg.callbacks ?? []), progressCallback(onProgress)] : cfg.callbacks,
        checkpointDir: cfg.checkpointDir,
        checkpointEvery: cfg.checkpointEvery,
        resume: cfg.resume,
        evalBatchSize,
        monitor: cfg.monitor,
      });
      // fold trained values back into the full model
      this.model = withInitializers(this.model, runner.state(['param', 'bn']));
      // a calibration fitted for the weights before this fit (e.g. a loaded model's sidecar) no longer holds
      if (r.steps > 0) this.temperature = undefined;
      this.lastFit = r;
      return r;
    } finally {
      await runner.release();
    }
  }

  /**
   * fastai's `fine_tune`, the default transfer-learning recipe: the head alone (backbone frozen, on features
   * computed once) for `freezeEpochs`, then everything unfrozen for `epochs` at half the LR, spread
   * discriminatively over the stages (lr/100 for the first, lr for the head). With `checkpointDir`, each
   * phase checkpoints into its own sub-folder, so `resume` continues a killed run where it stopped.
   *
   * ```ts
   * net.freeze().replaceHead(mlp([256], 10));
   * await net.fineTune(train, { epochs: 5, freezeEpochs: 1, batchSize: 32, optimizer: sgd({ lr: 0.01, momentum: 0.9 }), val });
   * ```
   * @returns each phase's name and fit result, in order.
   */
  async fineTune(train: BatchSource, cfg: Omit<FitConfig, 'groups'> & { freezeEpochs?: number }): Promise<{ phase: string; result: FitResult }[]> {
    const phases = phasesOf({ mode: 'fine-tune', epochs: cfg.epochs, freezeEpochs: cfg.freezeEpochs ?? 1, lastStages: 0 });
    const out: { phase: string; result: FitResult }[] = [];
    for (const p of phases) {
      p.setup(this);
      const dir = cfg.checkpointDir && path.join(cfg.checkpointDir, p.name);
      const result = await this.fit(train, { ...cfg, epochs: p.epochs, lr: (cfg.lr ?? cfg.optimizer.lr) * p.lrMul, groups: p.groups, checkpointDir: dir });
      out.push({ phase: p.name, result });
    }
    return out;
  }

  /**
   * The model and data to run inference on: with a frozen backbone (see {@link headOnly}) and unaugmented data,
   * the head on the data's features (those the last fit computed, or computed now through the feature cache),
   * which needs far less memory than the whole network; else the whole model on the data.
   */
  private async inferenceView(data: BatchSource, batchSize: number, onTask?: OnTaskProgress): Promise<{ model: Model; data: BatchSource }> {
    const split = this.headOnlySplit(data);
    if (!split) return { model: this.model, data };
    const feats = this.cachedFeatures.get(data) ?? (await computeFeatures(split.backbone(), data, batchSize, onTask));
    return { model: split.head, data: feats };
  }

  /** Mean loss and accuracy on a labelled source (inference mode); `onProgress` sees the feature extraction of a frozen backbone. */
  async evaluate(data: BatchSource, batchSize = 256, opts: { onProgress?: OnTaskProgress } = {}): Promise<{ loss: number; acc: number; n: number }> {
    const view = await this.inferenceView(data, batchSize, opts.onProgress);
    const runner = await EvalRunner.create(compileEvalStep(view.model));
    try {
      return await evaluateSource(runner, view.data, batchSize);
    } finally {
      await runner.release();
    }
  }

  /** Class probabilities for a batch source (labels ignored), as an n × classes matrix. */
  async predict(source: BatchSource, batchSize = 256): Promise<{ probabilities: Float32Array; classes: number }> {
    const { model, data } = await this.inferenceView(source, batchSize);
    const inf = toInferenceModel(model, { logits: false, temperature: this.temperature });
    const s = await createSession(inf);
    const out: Float32Array[] = [];
    let classes = 0;
    const bufs = new BatchBuffers(data.sampleShape);
    for await (const b of batches(data, bufs, { batchSize, seed: 0, epoch: 0, shuffle: false })) {
      const r = await runChecked(
        s,
        { [s.inputNames[0]!]: new ort.Tensor(b.x.dtype as 'float32', b.x.data as Float32Array, [...b.x.dims]) },
        undefined,
        PREDICT_FEEDS,
      );
      const p = r.probabilities!;
      classes = p.dims[1]!;
      out.push((p.data as Float32Array).slice());
    }
    await s.release();
    const probabilities = new Float32Array(out.reduce((a, o) => a + o.length, 0));
    let off = 0;
    for (const o of out) {
      probabilities.set(o, off);
      off += o.length;
    }
    return { probabilities, classes };
  }

  /**
   * Classifies images (file paths, or encoded images in Buffers) with the network's preprocessing, labels and
   * calibration temperature: one row per input with its top label, probability and top-k list. Rows whose top
   * probability is under `threshold` are labelled "unknown"; an undecodable image is an "unknown" row with `error`.
   */
  async classify(inputs: readonly (string | Buffer)[], opts: { topK?: number; threshold?: number; batchSize?: number } = {}): Promise<ImageClass[]> {
    const { classifierOf, classifyFiles, labelRows } = await import('./classify.js');
    const clf = await classifierOf(this);
    try {
      const r = await classifyFiles(clf, inputs, { batchSize: opts.batchSize });
      const names = inputs.map((x, i) => (typeof x === 'string' ? x : `buffer #${i}`));
      return labelRows(r, clf.labels, names, opts);
    } finally {
      await clf.session.release();
    }
  }

  /** The inference model: outputs logits, probabilities and (when the cut is known) features. */
  toInference(): Model {
    const m = toInferenceModel(this.model, { features: this.cut, temperature: this.temperature });
    if (this.preprocess) m.metadata['graft.preprocess'] = JSON.stringify(this.preprocess);
    if (this.labels) m.metadata['graft.labels'] = JSON.stringify(this.labels);
    return m;
  }

  /** Writes `file` (.onnx) and its JSON sidecar (labels, preprocessing, cut, extra fields such as metrics). */
  save(file: string, extra: Record<string, unknown> = {}): void {
    saveModel(this.toInference(), file);
    if (this.text) writeTokenizerFile(file, this.text);
    this.writeSidecar(file, extra);
  }

  /** Writes (or rewrites) only the JSON sidecar of `file` (.onnx), as {@link save} does. */
  writeSidecar(file: string, extra: Record<string, unknown> = {}): void {
    const sidecar = path.join(path.dirname(file), `${path.basename(file, '.onnx')}.json`);
    const text = this.text && { input: this.model.graph.inputs[0]?.name, tokenizer: path.basename(tokenizerPath(file)), kind: this.text.kind };
    const meta = { graft: graftVersion(), labels: this.labels, preprocess: this.preprocess, text, cut: this.cut, temperature: this.temperature, ...extra };
    atomicWrite(sidecar, `${JSON.stringify(meta, null, 2)}\n`);
  }
}

/**
 * The file behind a model reference for the synchronous {@link Network.load}: a path or `nsfwjs:` name as it is;
 * another registry name as its cached file.
 * @throws when the named model is not in the cache yet, naming the async call and the command that fetch it.
 */
function cachedModelFile(ref: string): string {
  const entry = registryEntryOf(ref);
  if (!entry) return ref;
  const dir = modelsDir();
  if (cacheState(entry, dir) === 'cached') return cachePaths(entry, dir).onnx;
  throw new Error(
    `${entry.name} is a registry model that is not in the model cache (${dir}) yet. Fetch it with \`await Network.fetch('${ref}')\` or \`graft models fetch ${entry.name}\`, then Network.load('${ref}') finds it.`,
  );
}
