/**
 * Adversarial domain adaptation as graph ops: a domain discriminator MLP behind a gradient reversal layer
 * (DANN, Ganin & Lempitsky 2015), optionally conditioned on the class predictions through the multilinear map
 * f ⊗ softmax(logits) (CDAN, Long et al. 2018) with entropy weights (CDAN+E).
 */
import type { Emitter } from '../ir/emit.js';
import { sequential } from '../nn/container.js';
import { relu } from '../nn/functional.js';
import { linear } from '../nn/layers.js';
import { gradReverse, stopGradient } from '../ops/grl.js';
import { binaryCrossEntropyWithLogits } from '../step/loss.js';
import { Rng, Tensor } from '../tensor.js';
import { dims2, entropyRows } from './losses.js';

/** Prefix of the discriminator's parameter names in the step graph. */
export const DISC_PREFIX = 'adapt.disc';

/** Options of {@link domainAdversarialLoss}. */
export interface AdversarialOptions {
  /** Name of the float32 scalar input holding the GRL coefficient λ for this step. */
  lambda: string;
  /** Hidden width of the discriminator Linear(d, h)-ReLU-Linear(h, 1) (default 256, the reference's). */
  hidden?: number;
  /** Seed of the discriminator's initial weights. */
  seed?: number;
  /** CDAN: condition on the predictions, h = f ⊗ softmax(logits) (predictions detached, as in CDAN). */
  conditional?: boolean;
  /** CDAN+E: weight each sample by 1 + exp(−H(p)) (detached), normalised to mean 1 over the batch. */
  entropyWeight?: boolean;
  /** Logits [n + m, C] of the joint batch (needed by `conditional` and `entropyWeight`). */
  logits?: string;
}

/** Result of {@link domainAdversarialLoss}. */
export interface AdversarialLoss {
  /** BCE of the discriminator, source labelled 1 and target 0 (mean over the joint batch). */
  loss: string;
  /** Fraction of the joint batch the discriminator classifies correctly. */
  domainAcc: string;
  /** The discriminator's parameters (initializers added to the graph): train them with the model. */
  params: string[];
}

/**
 * The discriminator's loss on the joint features [n + m, d] (source rows first) behind a GRL: minimising it
 * trains the discriminator to tell the domains apart, while the reversed gradient trains the features to fool it.
 */
export function domainAdversarialLoss(e: Emitter, all: string, n: number, opts: AdversarialOptions): AdversarialLoss {
  const who = opts.conditional ? 'CDAN' : 'DANN';
  const [rows, d] = dims2(e, all, who);
  let h = all;
  let inF = d;
  let probs: string | undefined;
  if (opts.conditional || opts.entropyWeight) {
    if (!opts.logits) throw new Error(`${who}: conditioning and entropy weights need the joint logits; pass opts.logits.`);
    probs = stopGradient(e, e.op('Softmax', [opts.logits], { axis: 1 }));
  }
  if (opts.conditional) {
    const [, c] = dims2(e, opts.logits!, who);
    const outer = e.mul(e.unsqueeze(all, [2]), e.unsqueeze(probs!, [1])); // [N, d, C]
    h = e.op('Reshape', [outer, e.ints([rows, d * c])]);
    inF = d * c;
  }
  const before = new Set(e.graph.initializers.keys());
  const hidden = opts.hidden ?? 256;
  const disc = sequential(linear(inF, hidden), relu(), linear(hidden, 1));
  const saved = e.prefix;
  const out = disc.emit(e, gradReverse(e, h, opts.lambda), DISC_PREFIX, new Rng(opts.seed ?? 0));
  e.prefix = saved;
  const params = [...e.graph.initializers.keys()].filter((k) => !before.has(k) && k.startsWith(`${DISC_PREFIX}.`));
  const labels = Tensor.f32([rows, 1]);
  (labels.data as Float32Array).fill(1, 0, n);
  const target = e.constTensor(labels, 'domain_labels');
  let loss: string;
  if (opts.entropyWeight) {
    const w0 = e.add(e.scalar(1), e.op('Exp', [e.neg(stopGradient(e, entropyRows(e, opts.logits!)))])); // [N,1]
    const w = e.div(e.mul(w0, e.scalar(rows)), e.reduceSum(w0, 'all', false));
    loss = weightedBce(e, out, target, w);
  } else loss = binaryCrossEntropyWithLogits(e, out, target).loss;
  const hit = e.op('Equal', [e.op('Greater', [out, e.scalar(0)]), e.op('Greater', [target, e.scalar(0.5)])]);
  const domainAcc = e.reduceMean(e.op('Cast', [hit], { to: 1 }), 'all', false);
  return { loss, domainAcc, params };
}

/** mean_i w_i·BCE(x_i, t_i) in the stable form (1 − t)·x + log(1 + e^(−|x|)) + max(−x, 0). */
function weightedBce(e: Emitter, x: string, t: string, w: string): string {
  const softplusNeg = e.add(e.op('Log', [e.add(e.scalar(1), e.op('Exp', [e.neg(e.op('Abs', [x]))]))]), e.op('Relu', [e.neg(x)]));
  const l = e.add(e.mul(e.sub(e.scalar(1), t), x), softplusNeg);
  return e.reduceMean(e.mul(l, w), 'all', false);
}

/** The GRL coefficient schedule of DANN: λ(p) = 2/(1 + exp(−γ·p)) − 1 for training progress p ∈ [0, 1] (γ = 10). */
export function grlLambda(progress: number, gamma = 10): number {
  return 2 / (1 + Math.exp(-gamma * progress)) - 1;
}
