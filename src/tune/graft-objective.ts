/**
 * The built-in objective of `graft tune`: a trial is the base graft config with the trial's parameters set
 * as config overrides (params.ts; the one schema validates them), trained by the run layer's phase loop
 * (run/phases.ts `trainPhases`, the loop `graft train` runs) in any train mode, the default fine-tune
 * included. It returns the validation metric after the last epoch and reports it after every epoch, counted
 * across phases, so the pruner can stop it early.
 *
 * - Head-mode trials (no augmentation, the data, backbone and seed of the base config) train the head on
 *   the features the study process computed once into the feature store (graft-prepare.ts), given to
 *   `Network.fit` as its features: the workers load the backbone's graph but read no image and run no backbone.
 * - Other trials load the data and the backbone of their config (once per worker process) and train the
 *   recipe's phases; a head-only phase (fine-tune's first) trains on the same prepared features.
 */

import { readStoredFeatures, type StoredFeatures } from '../features/backbone.js';
import type { GraftConfig } from '../run/config.js';
import { type PhaseJob, type PhasesResult, trainPhases } from '../run/phases.js';
import type { ArraySource } from '../step/batches.js';
import type { Callback, EpochMetrics, TrainState } from '../train/callbacks.js';
import type { Network } from '../train/network.js';
import { type Objective, type TrialContext, TrialPruned } from './objective.js';
import { trialConfig } from './params.js';
import { canonicalJson, type Params } from './space.js';

/** Options of the built-in objective (sent to every worker). */
export interface GraftObjectiveOptions {
  /** The base graft config, raw (paths resolved): each trial sets its parameters on it and validates the result. */
  config: Record<string, unknown>;
  /** Where the config came from, for messages. */
  source?: string;
  /** Metric to report and return (e.g. val_acc). */
  metric: string;
  /**
   * The train and val features of the base config's backbone, in the feature cache (computed once by the
   * study process): head-mode trials with the base config's data, backbone, cut, preprocessing and seed
   * train on them.
   */
  features?: { train: StoredFeatures; val: StoredFeatures; classes: string[] };
}

/** What the features of a config depend on: trials that agree on it can share the prepared features. */
export function featureKey(cfg: GraftConfig): string {
  return canonicalJson({ data: cfg.data, model: { ...cfg.model, head: null }, seed: cfg.run.seed, augment: cfg.train.augment ?? null });
}

/** Reports each epoch's metric and stops the run when the pruner says so. */
class PruneCallback implements Callback {
  readonly name = 'tune-prune';
  pruned = false;
  last?: { step: number; value: number };
  /** Epochs reported so far, over all phases: the pruner's step. */
  private epochs = 0;
  /** True while the last phase of the recipe trains. */
  lastPhase = true;
  constructor(
    private readonly metric: string,
    private readonly ctx?: Pick<TrialContext, 'report'>,
  ) {}
  async onEpochEnd(s: TrainState, m: EpochMetrics): Promise<void> {
    const v = m[this.metric];
    if (v === undefined)
      throw new Error(`study.metric is ${this.metric}, but an epoch reports only ${Object.keys(m).join(', ')}. Set study.metric to one of those.`);
    const step = ++this.epochs;
    this.last = { step, value: v };
    // a prune decision after the last epoch changes nothing: the trial is complete
    if (this.ctx && (await this.ctx.report(step, v)) && !(this.lastPhase && m.epoch! >= s.epochs)) {
      this.pruned = true;
      s.stop = true;
    }
  }
}

/** What a trial produced. */
export interface TrialRun {
  value: number;
  pruned: boolean;
  step: number;
  /** Every epoch's metrics over all phases. */
  history: PhasesResult['history'];
  /** The trial's validated config. */
  config: GraftConfig;
  /** The trained network (backbone and head). */
  net: Network;
  /** True when it trained on the prepared features. */
  headOnly: boolean;
}

/** Lazily loaded, per-process state of the objective. */
export class GraftTrials {
  private feats?: { train: ArraySource; val: ArraySource };
  private readonly setups = new Map<string, Promise<import('./graft-prepare.js').FullSetup>>();
  private readonly backbones = new Map<string, Promise<import('./graft-prepare.js').BackboneSetup>>();
  private baseKey?: string;
  constructor(readonly o: GraftObjectiveOptions) {}

  /** The config of a trial with these parameters (the base config with them set; validated). */
  configOf(params: Params): GraftConfig {
    return trialConfig(this.o.config, params, this.o.source);
  }

  /** The prepared features, when they are this config's (its data, backbone, cut, preprocessing and seed; no augmentation). */
  private featuresOf(cfg: GraftConfig): { train: ArraySource; val: ArraySource } | undefined {
    const f = this.o.features;
    if (!f || cfg.train.augment) return undefined;
    this.baseKey ??= featureKey(trialConfig(this.o.config, {}, this.o.source));
    if (featureKey(cfg) !== this.baseKey) return undefined;
    this.feats ??= { train: readStoredFeatures(f.train), val: readStoredFeatures(f.val) };
    return this.feats;
  }

  /** True when a trial of this config trains only the head, on the prepared features (no data, no backbone run). */
  usesFeatures(cfg: GraftConfig): boolean {
    return cfg.train.mode === 'head' && this.featuresOf(cfg) !== undefined;
  }

  /** The data and backbone of a config, loaded once per process (and per data, backbone and seed). */
  setupOf(cfg: GraftConfig): Promise<import('./graft-prepare.js').FullSetup> {
    const key = featureKey(cfg);
    if (!this.setups.has(key))
      this.setups.set(
        key,
        import('./graft-prepare.js').then((m) => m.loadFullSetup(cfg, this.o.source ?? 'graft config')),
      );
    return this.setups.get(key)!;
  }

  /** The network and data of a trial. */
  private async job(cfg: GraftConfig): Promise<{ job: PhaseJob; headOnly: boolean }> {
    const { loadBackbone, networkFor } = await import('./graft-prepare.js');
    const features = this.featuresOf(cfg);
    if (features && cfg.train.mode === 'head') {
      const classes = this.o.features!.classes;
      const key = featureKey(cfg);
      if (!this.backbones.has(key)) this.backbones.set(key, loadBackbone(cfg, classes, this.o.source ?? 'graft config'));
      const net = networkFor(await this.backbones.get(key)!, cfg);
      const { train, val } = features;
      return { job: { cfg, net, train, val, features, trainLabels: Int32Array.from(train.y), numClasses: classes.length }, headOnly: true };
    }
    // other modes: the data and the backbone; a head-only phase (fine-tune's first) still trains on the prepared features
    const st = await this.setupOf(cfg);
    const net = networkFor(st, cfg);
    const job = { cfg, net, train: st.train, val: st.val, features, trainLabels: st.data.train.labels, numClasses: st.classes.length };
    return { job, headOnly: false };
  }

  /** Trains one trial; `ctx` reports epochs to the pruner (omit it to train to the end, e.g. for export). */
  async run(params: Params, ctx?: Pick<TrialContext, 'report'>): Promise<TrialRun> {
    const config = this.configOf(params);
    const { job, headOnly } = await this.job(config);
    const cb = new PruneCallback(this.o.metric, ctx);
    const { history } = await trainPhases(job, {
      begin: (_p, index, count) => {
        cb.lastPhase = index === count - 1;
        return { callbacks: [cb] };
      },
      stop: () => cb.pruned,
    });
    const last = cb.last ?? { step: 0, value: Number.NaN };
    return { value: last.value, step: last.step, pruned: cb.pruned, history, config, net: job.net, headOnly };
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
