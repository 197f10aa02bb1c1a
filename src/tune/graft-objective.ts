/**
 * The built-in objective of `graft tune`: one trial trains a graft network with the trial's settings and
 * returns its validation metric after the last epoch, reporting it after every epoch so the pruner can stop
 * it early.
 *
 * - Head-only trials (`unfreeze` 0, no augmentation) train only the new head on features the study process
 *   computed once into the feature store (see graft-prepare.ts): no backbone runs in the workers at all.
 * - Trials that unfreeze backbone stages load the data and the backbone from the graft config (once per
 *   worker process) and fine-tune through the whole trainable part.
 *
 * Parameters the space does not set come from the base graft config ({@link TrialSettings}).
 */

import { readStoredFeatures, type StoredFeatures } from '../features/backbone.js';
import { Graph } from '../ir/graph.js';
import { Model } from '../ir/model.js';
import { suffixFrom } from '../ir/surgery.js';
import { mlp } from '../nn/index.js';
import { replaceHead } from '../nn/replace-head.js';
import type { BatchSource } from '../step/batches.js';
import type { Callback, EpochMetrics, TrainState } from '../train/callbacks.js';
import { Network } from '../train/network.js';
import { type Objective, type TrialContext, TrialPruned } from './objective.js';
import type { Params } from './space.js';

/** Every setting a trial trains with; the space's parameters override the base config's values. */
export interface TrialSettings {
  optimizer: 'sgd' | 'adam' | 'adamw';
  lr: number;
  weightDecay: number;
  momentum: number;
  nesterov?: boolean;
  /** Hidden sizes of the MLP head ([] for a linear head). */
  hidden: number[];
  activation: 'relu' | 'gelu' | 'tanh';
  dropout: number;
  batchNorm: boolean;
  labelSmoothing: number;
  /** Backbone stages trained besides the head: 0 = head only, 'all' = everything. */
  unfreeze: number | 'all';
  batchSize: number;
  epochs: number;
  schedule: 'constant' | 'step' | 'cosine' | 'one-cycle' | 'inv';
  /** Linear warmup: a fraction of the run (< 1) or steps. */
  warmup: number;
  /** Other schedule options of the base config (stepSize, gamma, …). */
  scheduleOptions?: Record<string, number>;
  clipNorm?: number;
  classWeights?: number[];
  /** Seed of the head initialisation, shuffling and dropout. */
  seed: number;
}

/** Parameter names the built-in objective understands, with what they set. */
export const KNOWN_PARAMS: Record<string, string> = {
  lr: 'base learning rate (> 0)',
  weightDecay: 'weight decay (≥ 0)',
  momentum: 'SGD momentum in [0, 1)',
  optimizer: "'sgd', 'adam' or 'adamw'",
  hidden: 'hidden sizes of the MLP head, a list such as [256, 256] ([] for a linear head)',
  hiddenSize: 'width of each hidden layer of the head (with hiddenLayers; 0 for a linear head)',
  hiddenLayers: 'number of hidden layers of the head (with hiddenSize)',
  activation: "'relu', 'gelu' or 'tanh'",
  dropout: 'dropout after each hidden layer, in [0, 1)',
  labelSmoothing: 'label smoothing in [0, 1)',
  unfreeze: "backbone stages trained besides the head (0 = head only on cached features, 'all' = everything)",
  batchSize: 'minibatch size (≥ 1)',
  epochs: 'training epochs (≥ 1)',
  schedule: "LR schedule: 'constant', 'cosine', 'inv', 'one-cycle' or 'step'",
  warmup: 'linear LR warmup: a fraction (< 1) of the run or a number of steps',
  adapt: "reserved: domain-adaptation method (only 'none' for now)",
  adaptLambda: 'reserved: weight of the adaptation loss',
};

/** The checks of each known parameter's values: a message when the value is invalid. */
export const PARAM_CHECKS: Record<string, (v: unknown) => string | undefined> = {
  lr: (v) => (typeof v === 'number' && v > 0 ? undefined : 'must be a number > 0'),
  weightDecay: (v) => (typeof v === 'number' && v >= 0 ? undefined : 'must be a number ≥ 0'),
  momentum: (v) => (typeof v === 'number' && v >= 0 && v < 1 ? undefined : 'must be in [0, 1)'),
  optimizer: (v) => (v === 'sgd' || v === 'adam' || v === 'adamw' ? undefined : "must be 'sgd', 'adam' or 'adamw'"),
  hidden: (v) => (Array.isArray(v) && v.every((h) => Number.isInteger(h) && h > 0) ? undefined : 'must be a list of positive integers such as [256] or []'),
  hiddenSize: (v) => (Number.isInteger(v) && (v as number) >= 0 ? undefined : 'must be an integer ≥ 0'),
  hiddenLayers: (v) => (Number.isInteger(v) && (v as number) >= 0 ? undefined : 'must be an integer ≥ 0'),
  activation: (v) => (v === 'relu' || v === 'gelu' || v === 'tanh' ? undefined : "must be 'relu', 'gelu' or 'tanh'"),
  dropout: (v) => (typeof v === 'number' && v >= 0 && v < 1 ? undefined : 'must be in [0, 1)'),
  labelSmoothing: (v) => (typeof v === 'number' && v >= 0 && v < 1 ? undefined : 'must be in [0, 1)'),
  unfreeze: (v) => (v === 'all' || (Number.isInteger(v) && (v as number) >= 0) ? undefined : "must be an integer ≥ 0 or 'all'"),
  batchSize: (v) => (Number.isInteger(v) && (v as number) >= 1 ? undefined : 'must be an integer ≥ 1'),
  epochs: (v) => (Number.isInteger(v) && (v as number) >= 1 ? undefined : 'must be an integer ≥ 1'),
  schedule: (v) =>
    ['constant', 'step', 'cosine', 'one-cycle', 'inv'].includes(v as string) ? undefined : "must be 'constant', 'cosine', 'inv', 'one-cycle' or 'step'",
  warmup: (v) => (typeof v === 'number' && v >= 0 ? undefined : 'must be a number ≥ 0'),
  adapt: (v) =>
    v === 'none' || v === null
      ? undefined
      : "is reserved for domain-adaptation methods, which graft tune's built-in objective cannot train yet; use 'none' (or remove adapt/adaptLambda from the space, or tune them with your own objective.module)",
  adaptLambda: (v) => (typeof v === 'number' && v >= 0 ? undefined : 'must be a number ≥ 0'),
};

/** The settings of one trial: the base settings with the trial's parameters applied. */
export function trialSettings(base: TrialSettings, params: Params): TrialSettings {
  const s: TrialSettings = { ...base };
  for (const [k, v] of Object.entries(params)) {
    const bad = PARAM_CHECKS[k]?.(v);
    if (bad) throw new Error(`parameter ${k} = ${JSON.stringify(v)} ${bad}.`);
    if (k === 'hiddenSize' || k === 'hiddenLayers' || k === 'adapt' || k === 'adaptLambda') continue;
    if (k in PARAM_CHECKS) (s as unknown as Record<string, unknown>)[k] = v;
  }
  if ('hiddenSize' in params || 'hiddenLayers' in params) {
    const size = Number(params.hiddenSize ?? base.hidden[0] ?? 0);
    const layers = Number(params.hiddenLayers ?? (size > 0 ? Math.max(1, base.hidden.length) : 0));
    s.hidden = size > 0 ? Array.from({ length: layers }, () => size) : [];
  }
  return s;
}

/** Options of the built-in objective (sent to every worker). */
export interface GraftObjectiveOptions {
  /** Settings used where the space sets nothing. */
  base: TrialSettings;
  /** Metric to report and return (e.g. val_acc). */
  metric: string;
  /** Where the study process stored the train and val features in the feature cache (head-only trials). */
  features?: { train: StoredFeatures; val: StoredFeatures };
  /** The validated graft config (JSON) and its source, for trials that unfreeze the backbone. */
  config?: unknown;
  source?: string;
}

/** Reports each epoch's metric and stops the run when the pruner says so. */
class PruneCallback implements Callback {
  readonly name = 'tune-prune';
  pruned = false;
  last?: { step: number; value: number };
  constructor(
    private readonly metric: string,
    private readonly ctx?: Pick<TrialContext, 'report'>,
  ) {}
  async onEpochEnd(s: TrainState, m: EpochMetrics): Promise<void> {
    const v = m[this.metric];
    if (v === undefined)
      throw new Error(`study.metric is ${this.metric}, but an epoch reports only ${Object.keys(m).join(', ')}. Set study.metric to one of those.`);
    this.last = { step: m.epoch!, value: v };
    // a prune decision after the last epoch changes nothing: the trial is complete
    if (this.ctx && (await this.ctx.report(m.epoch!, v)) && m.epoch! < s.epochs) {
      this.pruned = true;
      s.stop = true;
    }
  }
}

/** A model from features to logits: the head alone, initialised exactly as `replaceHead` on the full network would. */
export function headModel(dims: number, classes: number, s: TrialSettings): Model {
  const g = new Graph();
  g.inputs.push({ name: 'input', dtype: 'float32', shape: ['N', dims] });
  g.addNode('Identity', ['input'], ['features']);
  g.outputs.push({ name: 'features', dtype: 'float32', shape: ['N', dims] });
  const head = mlp(s.hidden, classes, { activation: s.activation, dropout: s.dropout, batchNorm: s.batchNorm });
  return suffixFrom(replaceHead(new Model(g, 17), head, { cut: 'features', seed: s.seed }), 'features');
}

/** Fit settings shared by both kinds of trial. */
export async function fitConfig(s: TrialSettings, val: BatchSource, cb: Callback) {
  const setup = await import('../run/setup.js');
  return {
    epochs: s.epochs,
    batchSize: s.batchSize,
    optimizer: setup.makeOptimizer({
      name: s.optimizer,
      lr: s.lr,
      weightDecay: s.weightDecay,
      momentum: s.optimizer === 'sgd' ? s.momentum : undefined,
      nesterov: s.optimizer === 'sgd' ? s.nesterov : undefined,
    }),
    loss: { kind: 'cross-entropy' as const, labelSmoothing: s.labelSmoothing || undefined, classWeights: s.classWeights },
    schedule: setup.makeLrSchedule({ kind: s.schedule, warmup: s.warmup, ...s.scheduleOptions }),
    val,
    callbacks: [cb],
    seed: s.seed,
    clipNorm: s.clipNorm,
  };
}

/** What a trial produced (the trained network is kept only when asked, e.g. for export). */
export interface TrialRun {
  value: number;
  pruned: boolean;
  step: number;
  history: EpochMetrics[];
  /** Head-only trials: the trained head (features → logits). */
  head?: Network;
  /** Other trials: the whole trained network. */
  net?: Network;
}

/** Lazily loaded, per-process state of the objective. */
export class GraftTrials {
  private feats?: { train: BatchSource; val: BatchSource; dims: number; classes: number };
  private full?: Promise<import('./graft-prepare.js').FullSetup>;
  constructor(readonly o: GraftObjectiveOptions) {}

  /** True when a trial with these settings trains the head on prepared features. */
  usesFeatures(s: TrialSettings): boolean {
    return s.unfreeze === 0 && !!this.o.features;
  }

  /** Trains one trial; `ctx` reports epochs to the pruner (omit it to train to the end, e.g. for export). */
  async run(params: Params, ctx?: Pick<TrialContext, 'report'>): Promise<TrialRun> {
    const s = trialSettings(this.o.base, params);
    const cb = new PruneCallback(this.o.metric, ctx);
    let head: Network | undefined;
    let net: Network | undefined;
    let history: EpochMetrics[];
    if (this.usesFeatures(s)) {
      if (!this.feats) {
        const train = readStoredFeatures(this.o.features!.train);
        const val = readStoredFeatures(this.o.features!.val);
        this.feats = { train, val, dims: train.sampleShape[0]!, classes: train.numClasses! };
      }
      head = new Network(headModel(this.feats.dims, this.feats.classes, s));
      history = (await head.fit(this.feats.train, { ...(await fitConfig(s, this.feats.val, cb)), featureCache: false })).history;
    } else {
      if (!this.o.config) throw new Error(`unfreeze = ${s.unfreeze} needs the backbone, but the objective has only prepared features; give objective.config.`);
      const { loadFullSetup, networkFor } = await import('./graft-prepare.js');
      this.full ??= loadFullSetup(this.o.config, this.o.source ?? 'graft config');
      const st = await this.full;
      net = networkFor(st, s);
      history = (await net.fit(st.train, { ...(await fitConfig(s, st.val, cb)), groups: 'single' })).history;
    }
    const last = cb.last ?? { step: 0, value: Number.NaN };
    return { value: last.value, step: last.step, pruned: cb.pruned, history, head, net };
  }
}

/** The objective module entry point (see objective.ts). */
export function createObjective(options: GraftObjectiveOptions): Objective {
  const trials = new GraftTrials(options);
  return async (params, ctx) => {
    const r = await trials.run(params, ctx);
    if (r.pruned) throw new TrialPruned(r.value, r.step);
    return r.value;
  };
}
