/**
 * Turns a validated {@link GraftConfig} into what a training run needs: the labelled data (image folder,
 * manifest or MNIST) split into train/val/test, the network (ONNX backbone or built-in architecture with a
 * new head) and its preprocessing, and the batch sources, optimizer, schedule and loss. Shared by
 * `graft train`, `graft pretrain` and `graft lr-find`.
 */

import fs from 'node:fs';
import path from 'node:path';
import type { PreprocessConfig } from '../data/preprocess.js';
import { classWeights } from '../data/split.js';
import type { TokenizerSpec } from '../data/tokenize.js';
import type { Model } from '../ir/model.js';
import { mlp } from '../nn/index.js';
import type { Module } from '../nn/module.js';
import { adam, adamw, sgd } from '../optim/index.js';
import type { Optimizer } from '../optim/optimizer.js';
import { makeSchedule, type Schedule, type ScheduleSpec } from '../optim/schedule.js';
import type { BatchSource } from '../step/batches.js';
import type { LossSpec } from '../step/compile.js';
import { Network } from '../train/network.js';
import type { OnTaskProgress } from '../util/progress.js';
import { DEFAULT_ARCH_WIDTH, type GraftConfig } from './config.js';

/** Labelled examples: image files, in-memory MNIST arrays ([1, 28, 28] values in [0, 1]), or texts (each with its file:line). */
export type LabelledData =
  | { kind: 'files'; where: string; paths: string[]; labels: Int32Array }
  | { kind: 'arrays'; where: string; x: Float32Array; labels: Int32Array }
  | { kind: 'texts'; where: string; texts: string[]; origins: string[]; labels: Int32Array };

/** What turns a sample into the network's input: an image preprocessing, or (text encoders) the tokenizer. */
export type NetworkInput = PreprocessConfig | { tokenizer: TokenizerSpec };

/** The data of a run, before decoding. */
export interface RunData {
  classes: string[];
  train: LabelledData;
  val?: LabelledData;
  test?: LabelledData;
}

/** Where messages go. */
export interface SetupIo {
  warn(message: string): void;
  /** Progress of the long parts (validating images); the run layer turns it into `progress` events. */
  progress?: OnTaskProgress;
}

/** The preprocessing matching loadMnist's arrays: 28×28 grayscale in [0, 1]. */
export const MNIST_PREPROCESS = { size: [28, 28], channels: 1, resize: 'stretch', scale: 255, mean: [0], std: [1] } as const;

function pick(d: LabelledData, idx: ArrayLike<number>, where: string): LabelledData {
  const labels = Int32Array.from(idx, (i) => d.labels[i]!);
  if (d.kind === 'files') return { kind: 'files', where, paths: Array.from(idx, (i) => d.paths[i]!), labels };
  if (d.kind === 'texts') return { kind: 'texts', where, texts: Array.from(idx, (i) => d.texts[i]!), origins: Array.from(idx, (i) => d.origins[i]!), labels };
  const x = new Float32Array(idx.length * 784);
  for (let k = 0; k < idx.length; k++) x.set(d.x.subarray(idx[k]! * 784, (idx[k]! + 1) * 784), k * 784);
  return { kind: 'arrays', where, x, labels };
}

/** Loads one labelled set: 'mnist' (`split`), a manifest file (.csv/.jsonl/.ndjson) or an image folder. */
async function loadSet(
  ref: string,
  key: string,
  classes: readonly string[] | undefined,
  io: SetupIo,
  split: 'train' | 'test',
  allowOutside: boolean,
  text?: { textColumn: string; labelColumn: string; strict: boolean },
): Promise<{ data: LabelledData; classes: string[] }> {
  const data = await import('../data/index.js');
  if (text) {
    const { loadTextData } = await import('../data/text.js');
    const t = await loadTextData(ref, { classes, textColumn: text.textColumn, labelColumn: text.labelColumn, strict: text.strict, onWarning: io.warn });
    if (t.classes.length < 2 && !classes)
      throw new Error(`${key}: ${ref} has a single class (${t.classes[0]}); a classifier needs at least two classes. Add texts of other classes.`);
    return { data: { kind: 'texts', where: t.where, texts: t.texts, origins: t.origins, labels: t.labels! }, classes: t.classes };
  }
  if (ref === 'mnist') {
    const m = await data.loadMnist();
    const s = split === 'train' ? m.train : m.test;
    return { data: { kind: 'arrays', where: `MNIST ${split}`, x: s.x, labels: Int32Array.from(s.y) }, classes: [...m.classes] };
  }
  let st: fs.Stats;
  try {
    st = fs.statSync(ref);
  } catch (e) {
    throw new Error(`${key}: ${ref} does not exist (${(e as NodeJS.ErrnoException).code}); give an image folder, a manifest (.csv/.jsonl) or 'mnist'.`);
  }
  const ds = st.isDirectory()
    ? await data.ImageFolderDataset.load(ref, { classes, onWarning: io.warn })
    : await data.ManifestDataset.load(ref, { classes, onWarning: io.warn, allowOutside });
  const labels = ds.labels();
  if (!labels) throw new Error(`${key}: manifest ${ref} has no "label" column; training needs a label per image (header "path,label").`);
  if (ds.classes.length < 2)
    throw new Error(`${key}: ${ref} has a single class (${ds.classes[0]}); a classifier needs at least two classes. Add images of other classes.`);
  return { data: { kind: 'files', where: ref, paths: [...(ds as { paths: readonly string[] }).paths], labels }, classes: [...ds.classes] };
}

/**
 * Loads and splits the data: train (optionally limited), val (given or a stratified seeded split), test.
 * @throws naming the key and path for missing/unreadable folders, empty or single classes, unknown labels.
 */
export async function loadRunData(cfg: GraftConfig, io: SetupIo): Promise<RunData> {
  const { splitTrainVal } = await import('../data/split.js');
  const d = cfg.data;
  const trainRef = (d.train ?? d.manifest)!;
  // with a text encoder, every data set is text
  const text = cfg.model.encoder ? { textColumn: d.textColumn, labelColumn: d.labelColumn, strict: cfg.run.strict } : undefined;
  const { data: all, classes } = await loadSet(trainRef, d.train ? 'data.train' : 'data.manifest', d.classes, io, 'train', d.allowOutside, text);
  const split = splitTrainVal(all.labels, { val: d.val ? 0 : d.valSplit, seed: cfg.run.seed, limit: d.limit || undefined, classes });
  const train = split.train.length === all.labels.length ? all : pick(all, split.train, all.where);
  let val: LabelledData | undefined;
  if (d.val) val = (await loadSet(d.val, 'data.val', classes, io, 'test', d.allowOutside, text)).data;
  else if (split.val.length) val = pick(all, split.val, `${all.where} (val split)`);
  const test = d.test ? (await loadSet(d.test, 'data.test', classes, io, 'test', d.allowOutside, text)).data : undefined;
  await warnLeaks({ train, val, test }, io);
  return { classes, train, val, test };
}

/** Warns, with counts, about files (same path or same content) in two of train/val/test. */
async function warnLeaks(sets: Record<'train' | 'val' | 'test', LabelledData | undefined>, io: SetupIo): Promise<void> {
  const texts = Object.entries(sets).flatMap(([name, d]) => (d?.kind === 'texts' ? [{ name, data: d }] : []));
  if (texts.length > 1) {
    const { textLeakWarnings } = await import('../data/text.js');
    for (const w of textLeakWarnings(texts)) io.warn(w);
  }
  const files = Object.entries(sets).flatMap(([name, d]) => (d?.kind === 'files' ? [{ name, paths: d.paths }] : []));
  if (files.length < 2) return;
  const { findSplitLeaks, leakWarning } = await import('../data/leakage.js');
  for (const l of await findSplitLeaks(files)) io.warn(leakWarning(l));
}

/** Default preprocessing of a built-in architecture. */
function archPreprocess(arch: string, mnist: boolean): Record<string, unknown> {
  if (mnist) return { ...MNIST_PREPROCESS };
  const size = arch === 'lenet5' ? 28 : arch === 'small-cnn' ? 32 : 64;
  const channels = arch === 'lenet5' ? 1 : 3;
  return { size: [size, size], channels, resize: 'stretch', mean: [0.5], std: [0.5] };
}

/** Builds a built-in architecture with `classes` outputs for the given preprocessing. */
async function buildArch(cfg: GraftConfig, pre: PreprocessConfig, classes: number): Promise<Model> {
  const nn = await import('../nn/index.js');
  const arch = cfg.model.arch!;
  const [h, w] = pre.size;
  const c = pre.channels;
  const width = cfg.model.width;
  if (pre.layout !== 'NCHW') throw new Error(`model.preprocess.layout: built-in architectures take NCHW input, not ${pre.layout}; remove the layout key.`);
  let mod: Module;
  if (arch === 'small-cnn') {
    if (h !== w || h % 4)
      throw new Error(`model.preprocess.size: small-cnn needs a square input whose side is a multiple of 4, got ${h}x${w}; use e.g. --image-size 28 or 32.`);
    mod = nn.smallCNN({ width: width ?? DEFAULT_ARCH_WIDTH, inChannels: c, imageSize: h, classes });
  } else if (arch === 'lenet5') {
    if (h !== 28 || w !== 28) throw new Error(`model.preprocess.size: lenet5 takes 28x28 input, got ${h}x${w}; use --image-size 28 or another arch.`);
    mod = nn.lenet5({ inChannels: c, classes });
  } else mod = nn.resnet18({ width: width ?? DEFAULT_ARCH_WIDTH, inChannels: c, classes });
  return mod.build({ inputShape: ['N', c, h, w], seed: cfg.run.seed });
}

/**
 * Builds the network: loads the ONNX backbone (its preprocessing from the sidecar/metadata, overridden by
 * model.preprocess) or a built-in architecture; then, unless `pretrain`, freezes it and replaces the head.
 * @throws when the backbone has no preprocessing and none is configured, or the input shapes disagree.
 */
export async function buildNetwork(
  cfg: GraftConfig,
  classes: string[],
  opts: {
    pretrain?: boolean;
    mnist?: boolean;
    source: string;
    onNote?: (message: string) => void;
    onWarning?: (message: string) => void;
    /**
     * Progress of fetching a registry backbone not in the cache yet (`fetching <name>`, in KiB); without it, the
     * fetch draws its own bar on stderr.
     */
    progress?: OnTaskProgress;
    /** The training texts, for a text encoder fitted on them (tfidf's IDF). */
    trainTexts?: readonly string[];
    /** Their labels, for the contrastive phase (train.contrastive). */
    trainLabels?: Int32Array;
  },
): Promise<{ net: Network; preprocess: NetworkInput }> {
  if (cfg.model.encoder) {
    const { resolveTextEncoder } = await import('../models/text-registry.js');
    const enc = await resolveTextEncoder(cfg.model.encoder, { trainTexts: opts.trainTexts, onNote: opts.onNote, pooling: cfg.model.pooling });
    const c = cfg.train.contrastive;
    if (c && opts.trainTexts && opts.trainLabels) {
      // SetFit: the encoder learns from pairs of the training texts before any head sees them
      const { contrastiveTune } = await import('../train/contrastive.js');
      const { adam } = await import('../optim/index.js');
      const r = await contrastiveTune(enc.model, opts.trainTexts, opts.trainLabels, enc.tokenizer, {
        ...c,
        batchSize: cfg.train.batchSize,
        optimizer: adam({ lr: c.lr }),
        seed: cfg.run.seed,
        threads: cfg.run.threads,
      });
      opts.onNote?.(
        `contrastive phase: ${r.pairs} pairs (${c.iterations} iteration(s)), ${c.epochs} epoch(s), mean loss by epoch ${r.losses.map((l) => l.toFixed(4)).join(', ')}`,
      );
      enc.model = r.encoder;
    }
    const net = new Network(enc.model);
    net.text = enc.tokenizer;
    net.labels = classes;
    graftHead(net, cfg, classes.length);
    return { net, preprocess: { tokenizer: enc.tokenizer } };
  }
  const { parsePreprocessConfig } = await import('../data/preprocess.js');
  const { featureCut } = await import('../ir/surgery.js');
  const override = cfg.model.preprocess ?? {};
  let net: Network;
  let preprocess: PreprocessConfig;
  const parse = (json: unknown) => parsePreprocessConfig(json, `model.preprocess (from ${opts.source} and the backbone)`);
  if (cfg.model.backbone) {
    // a registry name (mobilenetv2) is fetched into the model cache on first use; a path is used as it is
    const { downloadTaskProgress, resolveModelRef } = await import('../models/resolve.js');
    const fetching = opts.progress && { progress: false, onProgress: downloadTaskProgress(cfg.model.backbone, opts.progress) };
    net = Network.load(await resolveModelRef(cfg.model.backbone, { onNote: opts.onNote, onWarning: opts.onWarning, ...fetching }));
    if (!net.preprocess && override.size === undefined)
      throw new Error(
        `The backbone ${cfg.model.backbone} has no preprocessing config (no ${path.basename(cfg.model.backbone, '.onnx')}.json sidecar, no graft.preprocess metadata). ` +
          'Add model.preprocess to the config (at least size, and mean/std if the model was trained normalised), or pass --image-size.',
      );
    preprocess = parse({ ...(net.preprocess ?? {}), ...override });
  } else {
    preprocess = parse({ ...archPreprocess(cfg.model.arch!, !!opts.mnist), ...override });
    const model = await buildArch(cfg, preprocess, classes.length);
    net = new Network(model);
    net.cut = featureCut(model, cfg.model.cut).value;
  }
  checkInput(net.model, preprocess, cfg.model.backbone ?? `model.arch ${cfg.model.arch}`);
  net.preprocess = preprocess;
  net.labels = classes;
  if (!opts.pretrain) graftHead(net, cfg, classes.length);
  return { net, preprocess };
}

/** The configured head (`model.head`) of `classes` outputs, as an nn module. */
export function headModule(cfg: GraftConfig, classes: number): Module {
  const h = cfg.model.head;
  return mlp(h.type === 'linear' ? [] : h.hidden, classes, { activation: h.activation, dropout: h.dropout, batchNorm: h.batchNorm });
}

/** Freezes the network and grafts the configured head at the cut, initialised from `run.seed`. */
export function graftHead(net: Network, cfg: GraftConfig, classes: number): Network {
  return net.freeze().replaceHead(headModule(cfg, classes), { cut: cfg.model.cut ?? net.cut, seed: cfg.run.seed });
}

/**
 * A fresh network of its own: a copy of `base` (a backbone before any head replacement, e.g. built with
 * `pretrain: true`) frozen, with the config's new head. `graft tune`'s trials and `graft train`'s auto search
 * each train one.
 * @param cut where the head goes when the config names none (default: `base`'s recorded cut).
 */
export function withNewHead(base: Network, cfg: GraftConfig, classes: string[], cut = base.cut): Network {
  const net = new Network(base.model.clone(), { labels: classes, preprocess: base.preprocess, cut });
  return graftHead(net, cfg, classes.length);
}

function checkInput(model: Model, pre: PreprocessConfig, where: string): void {
  const shape = model.graph.inputs[0]?.shape;
  if (!shape) return;
  const [h, w] = pre.size;
  const want = pre.layout === 'NCHW' ? [pre.channels, h, w] : [h, w, pre.channels];
  const ok = shape.length === 4 && shape.slice(1).every((d, i) => typeof d !== 'number' || d === want[i]);
  if (!ok)
    throw new Error(
      `${where} expects input [${shape.map((d) => d ?? '?').join(', ')}] but the preprocessing gives [N, ${want.join(', ')}]. ` +
        'Fix model.preprocess (size, channels, layout) to match the model.',
    );
}

/** Makes a batch source of labelled data; image files are validated first (corrupt ones dropped or, with strict, an error). */
export async function makeSource(
  d: LabelledData,
  input: NetworkInput,
  numClasses: number,
  opts: { augment?: GraftConfig['train']['augment']; strict: boolean; io: SetupIo },
): Promise<BatchSource> {
  if (d.kind === 'texts' || 'tokenizer' in input) {
    if (d.kind !== 'texts' || !('tokenizer' in input))
      throw new Error(`${d.where}: a text encoder takes text data and an image model takes images; use --encoder with texts, --backbone/--arch with images.`);
    const { TextSource } = await import('../features/text.js');
    return new TextSource(d.texts, d.labels, input.tokenizer, numClasses, d.origins);
  }
  const pre = input;
  if (d.kind === 'arrays') {
    const { ArraySource } = await import('../step/batches.js');
    if (pre.channels !== 1 || pre.size[0] !== 28 || pre.size[1] !== 28 || pre.layout !== 'NCHW')
      throw new Error(
        `${d.where} gives 1x28x28 grayscale images but the model takes ${pre.channels}x${pre.size.join('x')} (${pre.layout}); use an MNIST-sized model.`,
      );
    // the arrays hold pixel/255; apply the model's scale, mean and std like decoding a file would
    const a = 255 / pre.scale / pre.std[0]!;
    const b = -pre.mean[0]! / pre.std[0]!;
    const x = a === 1 && b === 0 ? d.x : d.x.map((v) => v * a + b);
    return new ArraySource(x, d.labels, [1, 28, 28], numClasses);
  }
  const { ImageSource } = await import('../data/image-source.js');
  const { source } = await ImageSource.create(d.paths, d.labels, {
    preprocess: pre,
    augment: opts.augment,
    numClasses,
    strict: opts.strict,
    onWarning: opts.io.warn,
    onValidated: opts.io.progress && ((done, total) => opts.io.progress?.({ task: 'validating images', done, total, unit: 'img' })),
  });
  return source;
}

/** The optimizer of `train.optimizer`, with its LR multiplied by `lrMul`. */
export function makeOptimizer(o: GraftConfig['train']['optimizer'], lrMul = 1): Optimizer & { readonly lr: number } {
  if (o.name === 'sgd') return sgd({ lr: o.lr * lrMul, momentum: o.momentum ?? 0.9, nesterov: o.nesterov, weightDecay: o.weightDecay });
  return (o.name === 'adam' ? adam : adamw)({ lr: o.lr * lrMul, weightDecay: o.weightDecay });
}

/** The LR schedule of `train.schedule` (undefined for a constant LR without warmup). */
export function makeLrSchedule(s: GraftConfig['train']['schedule']): Schedule | undefined {
  const { kind, warmup, ...rest } = s;
  const opts = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined));
  if (kind === 'constant' && !warmup && Object.keys(opts).length === 0) return undefined;
  let spec = { kind: kind === 'one-cycle' ? 'onecycle' : kind, ...opts } as ScheduleSpec;
  // biome-ignore lint/suspicious/noThenProperty: 'then' is makeSchedule's name for the schedule after the warmup
  if (warmup > 0) spec = { kind: 'warmup', ...(warmup < 1 ? { fraction: warmup } : { steps: warmup }), then: spec };
  try {
    return makeSchedule(spec);
  } catch (e) {
    throw new Error(`train.schedule: ${(e as Error).message.replace(/^makeSchedule: /, '')}`);
  }
}

/** Cross-entropy with the configured label smoothing and (balanced) class weights. */
export function makeLoss(cfg: GraftConfig, trainLabels: Int32Array, numClasses: number): LossSpec {
  const loss: LossSpec = { kind: 'cross-entropy', labelSmoothing: cfg.train.labelSmoothing || undefined };
  if (cfg.data.classWeights === 'balanced') {
    loss.classWeights = Array.from(classWeights(trainLabels, numClasses));
  }
  return loss;
}
