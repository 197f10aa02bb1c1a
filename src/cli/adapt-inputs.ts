/**
 * The two input kinds of `graft adapt`: images (folders, manifests, MNIST built-ins; a SmallCNN or --model) and
 * texts (--encoder: tables or .txt folders on a frozen text encoder with a new bottleneck head). Each gives its
 * run-folder settings, its method checks, then its domains as batch sources and the model per seed; the rest of
 * the command (methods, seeds, progress, tables, saving) is one path for both (commands/adapt.ts).
 */
import type { Command } from 'commander';
import type { UnlabelledSource } from '../adapt/data.js';
import type { MethodName } from '../adapt/methods.js';
import type { Model } from '../ir/model.js';
import { DEFAULT_ARCH_WIDTH, type GraftConfig } from '../run/config.js';
import type { BatchSource } from '../step/batches.js';
import type { Network } from '../train/network.js';
import { CliError, note } from './context.js';

const num = (v: unknown, flag: string, ok: (x: number) => boolean, want: string) => {
  const x = Number(v);
  if (typeof v !== 'number' || !Number.isFinite(x) || !ok(x)) throw new CliError(`${flag} must be ${want} (got ${JSON.stringify(v)}).`);
  return x;
};

/** What the image and the text path share with the rest of graft adapt. */
export interface PrepareContext {
  cmd: Command;
  config: GraftConfig;
  given: (key: string) => boolean;
  seeds: number[];
  warn: (message: string) => void;
}

/** The domains as batch sources, the model per seed and how a result is saved. */
interface Loaded {
  src: { train: BatchSource; val?: BatchSource; classes: string[] };
  target: UnlabelledSource;
  targetEval?: BatchSource;
  makeModel: (seed: number) => Model;
  /** The parameters to train (undefined: all of them). */
  trainable?: string[];
  /** The network a result's model is saved as (its preprocessing or tokenizer, and the labels). */
  network: (model: Model) => Network;
  /** 'images' or 'texts', for messages. */
  unit: string;
}

/** One input kind's part of graft adapt: its run-folder settings, its checks, then its data and model. */
interface Prepared {
  runConfig: Record<string, unknown>;
  load: () => Promise<Loaded>;
  /** The candidates of --method auto without --candidates. */
  candidates: (model: Model) => MethodName[];
  /** Throws when a chosen method cannot apply. */
  check: (methods: MethodName[], makeModel: (seed: number) => Model) => void;
}

/** Images: folders, manifests or the MNIST built-ins, decoded with the model's (or the given) preprocessing. */
export async function prepareImages({ config, given, seeds, warn }: PrepareContext): Promise<Prepared> {
  const lib = await import('../adapt/index.js');
  const { data, model, adapt: a } = config;
  const sourceRef = data.train!;
  const target = a.target!;
  const { bottleneck } = a;
  const lastStages = a.unfreezeLast;
  const width = model.width ?? DEFAULT_ARCH_WIDTH;
  if (model.backbone && given('model.width'))
    throw new CliError('--width sets the width of the SmallCNN built without --model; remove it (the network comes from --model).');
  // preprocessing: the model's, or MNIST's for the built-in source, or --image-size/--channels for folders
  const { parsePreprocessConfig } = await import('../data/preprocess.js');
  const { MNIST_ARRAYS_PREPROCESS, loadSource, loadTarget, loadTargetEval } = await import('../adapt/sources.js');
  const { Network } = await import('../train/network.js');
  const base = model.backbone ? Network.load(model.backbone) : undefined;
  if (base && !base.preprocess)
    throw new CliError(
      `--model ${model.backbone} has no preprocessing config (no .json sidecar or graft.preprocess metadata); export it with graft train, or add the sidecar.`,
    );
  const extra = Object.keys(model.preprocess ?? {}).filter((k) => k !== 'size' && k !== 'channels');
  if (extra.length)
    throw new CliError(
      `model.preprocess.${extra[0]} does not apply to graft adapt: only model.preprocess.size and channels (--image-size, --channels) do; remove it.`,
    );
  const sizeOf = (v: unknown) => (Array.isArray(v) && v.length === 2 && v[0] === v[1] ? v[0] : v);
  const size = num(
    sizeOf(model.preprocess?.size ?? 32),
    '--image-size (model.preprocess.size)',
    (x) => Number.isInteger(x) && x >= 4 && x % 4 === 0,
    'a multiple of 4 (≥ 4)',
  );
  const channels = num(model.preprocess?.channels ?? 3, '--channels (model.preprocess.channels)', (x) => x === 1 || x === 3, '1 or 3');
  // --image-size/--channels decode image folders without --model; elsewhere they would be silently ignored
  const fixed = base?.preprocess
    ? { size: base.preprocess.size?.[0], channels: base.preprocess.channels, from: `the preprocessing of --model ${model.backbone}` }
    : sourceRef === 'mnist'
      ? { size: 28, channels: 1, from: '--source mnist (28×28 grayscale)' }
      : undefined;
  for (const [flag, key, value] of [
    ['--image-size', 'size', size],
    ['--channels', 'channels', channels],
  ] as const)
    if (fixed && given(`model.preprocess.${key}`) && value !== fixed[key])
      throw new CliError(
        `${flag} ${value} does not apply: the input is fixed by ${fixed.from}. ${flag} only sets how image folders are decoded without --model; remove it.`,
      );
  const pre = parsePreprocessConfig(
    base?.preprocess ?? (sourceRef === 'mnist' ? MNIST_ARRAYS_PREPROCESS : { size: [size, size], channels, resize: 'stretch', mean: [0.5], std: [0.5] }),
    model.backbone ? `the preprocessing of ${model.backbone}` : 'the adapt preprocessing',
  );
  return {
    runConfig: {
      model: model.backbone,
      'freeze-backbone': a.freezeBackbone,
      'unfreeze-last': lastStages,
      'image-size': size,
      channels,
      width,
    },
    candidates: (m) => lib.defaultCandidates(m),
    check: (methods, makeModel) => {
      if (methods.includes('adabn')) lib.checkHasBN(makeModel(seeds[0]!));
    },
    load: async () => {
      const src = await loadSource(sourceRef, pre, { valSplit: data.valSplit, seed: seeds[0]!, warn, limit: data.limit });
      const tgt = await loadTarget(target, pre, warn);
      const targetEval = a.targetEval ? await loadTargetEval(a.targetEval, pre, src.classes, warn) : undefined;
      const { smallCNN, mlp, linear } = await import('../nn/index.js');
      const classes = src.classes.length;
      const trainableOf = new Map<Model, string[]>();
      const makeModel = (seed: number) => {
        if (!base)
          return smallCNN({ width, classes, inChannels: pre.channels, imageSize: pre.size[0] }).build({ inputShape: ['N', pre.channels, ...pre.size], seed });
        const net = new Network(base.model.clone(), { preprocess: base.preprocess, cut: base.cut });
        const out = net.model.graph.info(net.model.graph.outputs[0]!.name)?.shape?.at(-1);
        if (a.freezeBackbone) net.freeze().replaceHead(mlp([bottleneck], classes), { seed });
        else if (out !== classes) net.replaceHead(linear(null, classes), { seed });
        if (lastStages) net.freeze().unfreeze({ lastStages });
        trainableOf.set(net.model, [...net.trainable]);
        return net.model;
      };
      return {
        src,
        target: tgt,
        targetEval,
        makeModel,
        trainable: trainableOf.get(makeModel(seeds[0]!)),
        network: (m) => new Network(m, { preprocess: pre, labels: src.classes }),
        unit: 'images',
      };
    },
  };
}

/**
 * Text (--encoder): a table or .txt folder per domain, embedded once by the frozen encoder; a new bottleneck
 * head adapts on the cached embeddings (src/adapt/text.ts). Image-only flags are refused.
 */
export async function prepareTexts({ cmd, config, given, seeds, warn }: PrepareContext): Promise<Prepared> {
  const lib = await import('../adapt/index.js');
  const { Network } = await import('../train/network.js');
  const { data, model, adapt: a } = config;
  const imageOnly: [boolean, string][] = [
    [!!model.backbone, '--model (model.backbone)'],
    [given('model.width'), '--width (model.width)'],
    [given('model.preprocess.size') || given('model.preprocess.channels'), '--image-size/--channels (model.preprocess)'],
    [!!a.unfreezeLast, '--unfreeze-last (adapt.unfreezeLast)'],
  ];
  const bad = imageOnly.filter(([on]) => on).map(([, flag]) => flag);
  if (bad.length)
    throw new CliError(
      `${bad.join(', ')} ${bad.length > 1 ? 'do' : 'does'} not apply with --encoder: text adaptation keeps the encoder frozen and trains a new bottleneck head (--bottleneck) on its cached embeddings. Remove ${bad.length > 1 ? 'them' : 'it'}.`,
    );
  const pooling = model.pooling as import('../models/transformer.js').TransformerPooling | undefined;
  return {
    runConfig: { encoder: model.encoder, pooling, 'text-column': data.textColumn, 'label-column': data.labelColumn },
    candidates: () => [...lib.TEXT_METHODS],
    check: (methods) => {
      const no = methods.filter((m) => !lib.TEXT_METHODS.includes(m));
      if (no.length)
        throw new CliError(
          `${no.join(', ')} cannot adapt text: FixMatch's two views are image augmentations, and AdaBN re-estimates BatchNorm statistics, which a frozen encoder with a new head has none of. Use ${lib.TEXT_METHODS.join(', ')}.`,
        );
    },
    load: async () => {
      const d = await lib.loadTextDomains({
        source: data.train!,
        target: a.target!,
        targetEval: a.targetEval,
        encoder: model.encoder!,
        pooling,
        valSplit: data.valSplit,
        seed: seeds[0]!,
        limit: data.limit,
        textColumn: data.textColumn,
        labelColumn: data.labelColumn,
        warn,
        onNote: (m) => note(cmd, m),
      });
      const classes = d.classes.length;
      const first = lib.textAdaptModel(d.encoder.model, classes, { bottleneck: a.bottleneck, seed: seeds[0]! });
      return {
        src: { train: d.train, val: d.val, classes: d.classes },
        target: d.target,
        targetEval: d.targetEval,
        makeModel: (seed) => (seed === seeds[0] ? first.model : lib.textAdaptModel(d.encoder.model, classes, { bottleneck: a.bottleneck, seed }).model),
        trainable: first.trainable,
        network: (m) => new Network(m, { labels: d.classes, text: d.encoder.tokenizer }),
        unit: 'texts',
      };
    },
  };
}
