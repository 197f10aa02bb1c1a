/**
 * The unsupervised domain-adaptation methods graft knows: each one is a loss term added to the source
 * cross-entropy inside the same training-step graph, built from the features and logits of the joint
 * (source + target) batch.
 */
import type { Emitter } from '../ir/emit.js';
import { domainAdversarialLoss } from './adversarial.js';
import { coralLoss, type MmdOptions, mccLoss, mmdLoss, pseudoLabelLoss } from './losses.js';

/** Every method name, in the order tables list them. */
export const METHODS = ['source-only', 'adabn', 'coral', 'dan', 'dann', 'cdan', 'cdan+e', 'mcc', 'self-training', 'fixmatch'] as const;

/** A method name. */
export type MethodName = (typeof METHODS)[number];

/** A method and its hyperparameters (unset ones take the defaults listed in docs/cli/adapt.md). */
export interface MethodSpec {
  name: MethodName;
  /** Trade-off weight of the adaptation term (default 1). */
  weight?: number;
  /** MCC temperature T (default 2.5). */
  temperature?: number;
  /** MCC: detach the entropy weights, as TLlib does (default false: differentiated, as the reference). */
  detachWeights?: boolean;
  /** Confidence threshold of pseudo-labels (self-training 0.9, FixMatch 0.95). */
  threshold?: number;
  /** DAN kernel bandwidth (default 'mean'). */
  bandwidth?: MmdOptions['bandwidth'];
  /** DAN kernel multipliers (default 2^-3 … 2^1). */
  multipliers?: number[];
  /** Hidden width of the DANN/CDAN discriminator (default 256). */
  hidden?: number;
}

/** What a method's loss is built from: features and logits of each part of the step's batch. */
export interface MethodContext {
  e: Emitter;
  /** Rows of the labelled source part (first in the batch). */
  n: number;
  /** Rows of one target view. */
  m: number;
  classes: number;
  /** Features [n + m, d] and logits [n + m, C] of source + (weak) target, source rows first. */
  joint: { features: string; logits: string };
  source: { features: string; logits: string };
  target: { features: string; logits: string };
  /** The strongly augmented target view (FixMatch only). */
  strong?: { features: string; logits: string };
  /** Declares (once) and returns the float32 scalar input holding the GRL coefficient λ of the step. */
  lambda(): string;
  /** Seed for parameters the method adds (discriminator). */
  seed: number;
}

/** A method's contribution to the step graph. */
export interface MethodTerm {
  /** The weighted adaptation loss (scalar). */
  loss: string;
  /** Extra scalar metrics (e.g. domain_acc). */
  metrics?: Record<string, string>;
  /** Parameters the method added (trained with the model, never exported). */
  params?: string[];
}

/** Static facts about a method. */
export interface MethodInfo {
  /** One line for tables and --help. */
  description: string;
  /** Target views in each step's batch: 0 (source only), 1, or 2 (FixMatch's weak + strong). */
  targetViews: 0 | 1 | 2;
  /** The loss acts on the features (so they must depend on trainable parameters). */
  alignsFeatures: boolean;
  /** Builds the loss term (absent for source-only and AdaBN). */
  build?: (ctx: MethodContext, spec: MethodSpec) => MethodTerm;
}

const w = (spec: MethodSpec) => spec.weight ?? 1;

function adversarial(ctx: MethodContext, spec: MethodSpec, conditional: boolean, entropyWeight: boolean): MethodTerm {
  const r = domainAdversarialLoss(ctx.e, ctx.joint.features, ctx.n, {
    lambda: ctx.lambda(),
    hidden: spec.hidden,
    seed: ctx.seed,
    conditional,
    entropyWeight,
    logits: ctx.joint.logits,
  });
  return { loss: ctx.e.mul(r.loss, ctx.e.scalar(w(spec))), metrics: { domain_acc: r.domainAcc }, params: r.params };
}

/** Method table. */
export const METHOD_INFO: Record<MethodName, MethodInfo> = {
  'source-only': { description: 'source cross-entropy only (the baseline)', targetViews: 0, alignsFeatures: false },
  adabn: { description: 'source-only, then BatchNorm statistics re-estimated on the target', targetViews: 0, alignsFeatures: false },
  coral: {
    description: 'Deep CORAL: match feature means and covariances',
    targetViews: 1,
    alignsFeatures: true,
    build: (c, s) => ({ loss: c.e.mul(coralLoss(c.e, c.source.features, c.target.features), c.e.scalar(w(s))) }),
  },
  dan: {
    description: 'DAN: multi-kernel MMD between feature distributions',
    targetViews: 1,
    alignsFeatures: true,
    build: (c, s) => ({ loss: c.e.mul(mmdLoss(c.e, c.joint.features, c.n, { bandwidth: s.bandwidth, multipliers: s.multipliers }), c.e.scalar(w(s))) }),
  },
  dann: {
    description: 'DANN: domain discriminator behind a gradient reversal layer',
    targetViews: 1,
    alignsFeatures: true,
    build: (c, s) => adversarial(c, s, false, false),
  },
  cdan: {
    description: 'CDAN: discriminator on features ⊗ predictions',
    targetViews: 1,
    alignsFeatures: true,
    build: (c, s) => adversarial(c, s, true, false),
  },
  'cdan+e': {
    description: 'CDAN+E: CDAN with entropy-weighted samples',
    targetViews: 1,
    alignsFeatures: true,
    build: (c, s) => adversarial(c, s, true, true),
  },
  mcc: {
    description: 'MCC: minimum class confusion on target predictions (T = 2.5)',
    targetViews: 1,
    alignsFeatures: false,
    build: (c, s) => ({ loss: c.e.mul(mccLoss(c.e, c.target.logits, s.temperature ?? 2.5, { detachWeights: s.detachWeights }), c.e.scalar(w(s))) }),
  },
  'self-training': {
    description: 'self-training on confident target pseudo-labels (p ≥ 0.9)',
    targetViews: 1,
    alignsFeatures: false,
    build: (c, s) => {
      const r = pseudoLabelLoss(c.e, c.target.logits, c.target.logits, s.threshold ?? 0.9);
      return { loss: c.e.mul(r.loss, c.e.scalar(w(s))), metrics: { pseudo_rate: r.rate } };
    },
  },
  fixmatch: {
    description: 'FixMatch: pseudo-labels from a weak view (p ≥ 0.95) train a strong view',
    targetViews: 2,
    alignsFeatures: false,
    build: (c, s) => {
      const r = pseudoLabelLoss(c.e, c.strong!.logits, c.target.logits, s.threshold ?? 0.95);
      return { loss: c.e.mul(r.loss, c.e.scalar(w(s))), metrics: { pseudo_rate: r.rate } };
    },
  },
};

/** Parses a method name (case-insensitive; 'source_only', 'cdan_e' and 'st' accepted); throws listing the names. */
export function parseMethod(name: string, where = 'method'): MethodName {
  const k = name
    .trim()
    .toLowerCase()
    .replace(/_/g, '-')
    .replace(/^cdan-e$/, 'cdan+e')
    .replace(/^st$/, 'self-training');
  if ((METHODS as readonly string[]).includes(k)) return k as MethodName;
  throw new Error(`${where}: unknown adaptation method "${name}". Use one of: ${METHODS.join(', ')}.`);
}
