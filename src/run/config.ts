/**
 * graft.yaml / graft.json: the training configuration of `graft train` (and `graft pretrain`, `graft lr-find`),
 * validated with zod. Every CLI flag of those commands maps to one config key ({@link FLAGS}); flags override
 * the file. Errors name the file, the key path (and the flag it came from) and say how to fix it.
 * See docs/config.md for every key.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { augmentSchema } from '../data/augment.js';
import { isModelName } from '../models/name.js';
import { findTextEncoder } from '../models/text-registry.js';
import { DEFAULT_LR } from '../optim/defaults.js';
import { DEVICES } from '../runtime/device.js';
import { TRAIN_MODES, type TrainMode } from '../train/recipes.js';
import { editDistance } from '../util/edit-distance.js';

const posInt = z.number().int().positive();
const file = z.string().min(1, 'must not be empty');

const dataSchema = z.strictObject({
  /** Image folder (`root/<class>/<images>`), manifest (.csv/.jsonl), or 'mnist'. */
  train: file.optional(),
  /** Manifest file of the training images (alternative to `train`). */
  manifest: file.optional(),
  /** Validation images: a folder or a manifest. Default: `valSplit` of the training data. */
  val: file.optional(),
  /** Fraction of each training class held out for validation when `val` is not given (0 for none). */
  valSplit: z.number().min(0).lt(1).default(0.15),
  /** Test images (folder, manifest, or 'mnist' for MNIST's test split), evaluated once at the end. */
  test: file.optional(),
  /** 'balanced' weighs the loss by n / (K · count_c) per class. */
  classWeights: z.enum(['balanced', 'none']).default('none'),
  /** Fixed class list (label = index); default: the folder names / distinct manifest labels, sorted. */
  classes: z.array(z.string().min(1)).min(2).optional(),
  /** Use at most this many training images (a seeded, stratified subset). */
  limit: posInt.optional(),
  /** Accept manifest paths (and symbolic links) that lead outside the manifest's folder. */
  allowOutside: z.boolean().default(false),
  /** Text data (with model.encoder): the column (CSV/TSV header, JSONL key) holding the text. */
  textColumn: z.string().min(1).default('text'),
  /** Text data: the column holding the label. */
  labelColumn: z.string().min(1).default('label'),
});

const headSchema = z.strictObject({
  type: z.enum(['mlp', 'linear']).default('mlp'),
  hidden: z.array(posInt).default([256, 256]),
  activation: z.enum(['relu', 'gelu', 'tanh']).default('relu'),
  dropout: z.number().min(0).lt(1).default(0),
  batchNorm: z.boolean().default(false),
});

/** Built-in architectures (`resnet18-style` is an alias of `resnet18`). */
export const ARCHS = ['small-cnn', 'resnet18', 'resnet18-style', 'lenet5'] as const;

/** Width of the CLI's built-in networks when none is given (`--width`; `graft train --arch`, `graft pretrain` and `graft adapt`). */
export const DEFAULT_ARCH_WIDTH = 16;

const modelSchema = z.strictObject({
  /** ONNX backbone file (its preprocessing comes from the sidecar .json or the model metadata). */
  backbone: file.optional(),
  /**
   * Text encoder (instead of `backbone`): a name (tfidf, glove, glove-sif) or an encoder .onnx with its
   * .tokenizer.json beside it. Then `data.*` holds texts (CSV/TSV/JSONL with text and label columns, or a folder
   * of .txt files per class) and the head trains on the encoder's cached embeddings.
   */
  encoder: file.optional(),
  /** A transformer text encoder's pooling of its hidden states: mean over the tokens, or the first ([CLS]) token. */
  pooling: z.enum(['mean', 'cls']).default('mean'),
  /** Built-in architecture, randomly initialised from the seed (instead of `backbone`). */
  arch: z.enum(ARCHS).optional(),
  /** Width of the built-in architecture (small-cnn: first conv channels; resnet18: stem channels). */
  width: posInt.optional(),
  /** Value or node name where the features end (default: found automatically, see `graft inspect`). */
  cut: z.string().min(1).optional(),
  /** Preprocessing fields overriding the backbone's (see the preprocessing config), e.g. { size: [64, 64] }. */
  preprocess: z.record(z.string(), z.unknown()).optional(),
  head: headSchema.prefault({}),
});

const optimizerSchema = z.strictObject({
  name: z.enum(['sgd', 'adam', 'adamw']).default('sgd'),
  /** Base learning rate (default {@link DEFAULT_LR}: 0.01 for sgd, 0.001 for adam/adamw; filled in by the schema). */
  lr: z.number().positive().optional(),
  /** SGD momentum (default 0.9). */
  momentum: z.number().min(0).lt(1).optional(),
  nesterov: z.boolean().optional(),
  weightDecay: z.number().min(0).optional(),
});

const scheduleSchema = z.strictObject({
  kind: z.enum(['constant', 'step', 'cosine', 'one-cycle', 'inv']).default('constant'),
  /** Linear warmup: a fraction of the run when < 1, else a number of steps. */
  warmup: z.number().min(0).default(0),
  stepSize: posInt.optional(),
  gamma: z.number().min(0).optional(),
  minFactor: z.number().min(0).max(1).optional(),
  pctStart: z.number().gt(0).lt(1).optional(),
  divFactor: z.number().positive().optional(),
  finalDivFactor: z.number().positive().optional(),
  power: z.number().min(0).optional(),
});

const earlyStoppingSchema = z.preprocess(
  (v) => (v === false ? { enabled: false } : v === true ? { enabled: true } : v),
  z
    .strictObject({
      /** Default: on when there is validation data. */
      enabled: z.boolean().optional(),
      monitor: z.string().min(1).default('val_loss'),
      patience: posInt.default(3),
      minDelta: z.number().min(0).default(0),
      restoreBest: z.boolean().default(true),
    })
    .prefault({}),
);

/** `train.budget`'s default: the seconds `graft train`'s auto mode may take (about a minute on 2 cores). */
export const DEFAULT_BUDGET_S = 60;

/**
 * A duration in seconds: a number, or a string such as "90", "90s", "1m", "1m30s" or "1h".
 * @returns the seconds, or the value unchanged when it is no duration (the schema then names it).
 */
export function parseDuration(v: unknown): unknown {
  if (typeof v !== 'string') return v;
  const m = /^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*$/i.exec(v);
  if (!m || (!m[1] && !m[2] && !m[3])) return v;
  return Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
}

const trainSchema = z.strictObject({
  /**
   * auto (the default; head with model.encoder): a seeded search over head settings on features computed once,
   * then the last stages when `budget` allows; head: frozen backbone; last-stages: head + last N stages; full:
   * everything; fine-tune: fastai's recipe. With model.encoder: head (default), last-stages (stages are the
   * transformer's blocks), full or fine-tune; not auto.
   */
  mode: z.enum(TRAIN_MODES).optional(),
  /** auto: the wall-clock seconds the search and fine-tune may take (a number, or "90s", "1m", "1m30s"). */
  budget: z
    .preprocess(parseDuration, z.number({ error: 'must be a number of seconds or a duration such as 90s, 1m or 1m30s' }).positive())
    .default(DEFAULT_BUDGET_S),
  epochs: posInt.default(10),
  /** fine-tune: epochs of the frozen-backbone phase before unfreezing (0 skips it). */
  freezeEpochs: z.number().int().min(0).default(1),
  /** last-stages: how many trailing stages (the head counts as one) are trained. */
  lastStages: posInt.default(2),
  batchSize: posInt.default(32),
  optimizer: optimizerSchema.prefault({}).transform((o) => ({ ...o, lr: o.lr ?? DEFAULT_LR[o.name] })),
  schedule: scheduleSchema.prefault({}),
  labelSmoothing: z.number().min(0).lt(1).default(0),
  clipNorm: z.number().positive().optional(),
  /**
   * Gradient checkpointing of a full fine-tune's first stages (step/recompute.ts): 'auto' (unset) recomputes them in
   * the backward when their activations are large (MobileNetV2 at 224 px: ~1.1 GB less peak at batch 32, ~10 % more
   * CPU per step); 'off' keeps every activation. Gradients are bit-identical either way.
   */
  recompute: z.enum(['auto', 'off']).optional(),
  /**
   * Optimizer steps per `session.run` (the step unrolled K times; bit-identical to single steps). Unset: 16 for a
   * head on cached features with ≥ 2,000 steps, else 1 (train/fit.ts `headStepsPerRun`).
   */
  stepsPerRun: posInt.optional(),
  /** Keep every BatchNorm in inference mode (running statistics) while its scale and shift train. */
  freezeBNStats: z.boolean().default(false),
  earlyStopping: earlyStoppingSchema,
  /** true for torchvision's RandomResizedCrop + flip, an object for details, false for none. */
  augment: z.preprocess((v) => (v === true ? {} : v === false || v === null ? undefined : v), augmentSchema.optional()),
  /**
   * With model.encoder (a transformer): SetFit's contrastive phase before the head — the encoder is fine-tuned on
   * pairs of training texts (same label → cosine 1, different → 0). A number is its `iterations` (pairs per text
   * are 2 × iterations); `epochs` (default 1) and `lr` (Adam, default 2e-5 as SetFit's body) refine it.
   */
  contrastive: z
    .preprocess(
      (v) => (typeof v === 'number' ? { iterations: v } : v),
      z.strictObject({ iterations: posInt, epochs: posInt.default(1), lr: z.number().positive().default(2e-5) }),
    )
    .optional(),
});

const runSchema = z.strictObject({
  /** Run folder name under `dir`. */
  name: z
    .string()
    .regex(/^[\w.-]+$/, 'use letters, digits, ".", "_" and "-" only')
    .optional(),
  dir: file.default('runs'),
  seed: z.number().int().min(0).default(0),
  /** Continue the run in runs/<name>/ from its last checkpoint. */
  resume: z.boolean().default(false),
  /** Also checkpoint every N optimizer steps (always at each epoch end). */
  checkpointEvery: posInt.optional(),
  /**
   * Keep every checkpoint of a finished phase. By default a finished phase keeps only its final.ckpt (the
   * weights it trained, which `--resume` restores): its last.ckpt, best.ckpt and early-best.ckpt are deleted.
   */
  keepCheckpoints: z.boolean().default(false),
  threads: posInt.optional(),
  /** Where onnxruntime runs the sessions: cpu, or webgpu (an error where no WebGPU adapter exists; never a silent CPU fall back). Default: env GRAFT_DEVICE, else cpu. */
  device: z.enum(DEVICES).optional(),
  /** Corrupt images are errors instead of being skipped with a warning. */
  strict: z.boolean().default(false),
  /** Replace an existing run folder of the same name. */
  overwrite: z.boolean().default(false),
  /** Also write the final model (and its .json sidecar) to this .onnx path. */
  export: file.regex(/\.onnx$/i, 'must end in .onnx').optional(),
});

const lrFindSchema = z
  .strictObject({
    startLr: z.number().positive().default(1e-7),
    endLr: z.number().positive().default(10),
    steps: z.number().int().min(5).default(100),
    /** Stop when the smoothed loss exceeds this multiple of the best loss. */
    divergence: z.number().gt(1).default(4),
    /** PNG plot of loss vs LR (default runs/<name>/lr-find.png). */
    plot: file.optional(),
  })
  .refine((o) => o.endLr > o.startLr, { message: 'endLr must be larger than startLr', path: ['endLr'] });

/** Checkpoint criteria of `graft adapt` (how a checkpoint is picked without target labels). */
export const ADAPT_SELECT = ['im', 'snd', 'entropy', 'source-val', 'last'] as const;

/** Validators of `graft adapt --method auto` (the same list as `VALIDATORS` in src/adapt/auto.ts). */
export const ADAPT_VALIDATORS = ['snd', 'entropy', 'im'] as const;

/**
 * `graft adapt`: unsupervised domain adaptation. The labelled source is `data.train` (split by `data.valSplit`,
 * cut by `data.limit`), the network `model.*`, the optimizer `train.*`, the seed and resume `run.*`; this section
 * holds what only adaptation has.
 */
const adaptSchema = z.strictObject({
  /** Unlabelled target: a folder of images (any layout), a manifest (labels ignored), 'mnist-style-shift' or 'mnist'. */
  target: file.optional(),
  /** Labelled target data, evaluated only (never trained on): a class folder, a labelled manifest or 'mnist-style-shift'. */
  targetEval: file.optional(),
  /** source-only, adabn, coral, dan, dann, cdan, cdan+e, mcc, self-training, fixmatch, or auto (pick among `candidates`). */
  method: z.string().min(1).default('mcc'),
  /** With method auto: the methods to try (default: every method that applies). */
  candidates: z.array(z.string().min(1)).min(1).optional(),
  /** With method auto: the unsupervised validator that picks the run (none reads target labels). */
  validator: z.enum(ADAPT_VALIDATORS).default('im'),
  /** With method auto: save the mean softmax of the top k runs by the validator as one model (default: the pick alone). */
  ensemble: posInt.optional(),
  /** Methods compared in one table (overrides `method`). */
  compare: z.array(z.string().min(1)).min(1).optional(),
  /** Seeds of the comparison (default: [run.seed]). */
  seeds: z.array(z.number().int().min(0)).min(1).optional(),
  /** How the checkpoint is picked without target labels. */
  select: z.enum(ADAPT_SELECT).default('im'),
  /** Score a checkpoint every n steps (default: each epoch). */
  evalEvery: posInt.optional(),
  /** Hidden width of the bottleneck head trained with `freezeBackbone`. */
  bottleneck: posInt.default(256),
  /** With model.backbone: freeze it and train a bottleneck head on cached features. */
  freezeBackbone: z.boolean().default(false),
  /** With model.backbone: train only its last k stages and the head. */
  unfreezeLast: posInt.optional(),
  /** Run folder (config.json, checkpoints/, results.json, report.md, model.onnx); default run.dir/run.name when run.name is set. */
  out: file.optional(),
});

/** The zod schema of a whole graft config. */
export const configSchema = z
  .strictObject({
    data: dataSchema.prefault({}),
    model: modelSchema.prefault({}),
    train: trainSchema.prefault({}),
    run: runSchema.prefault({}),
    lrFind: lrFindSchema.prefault({}),
    adapt: adaptSchema.prefault({}),
  })
  .superRefine((c, ctx) => {
    const issue = (p: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path: p, message });
    if (!c.data.train && !c.data.manifest)
      issue(['data', 'train'], "required: an image folder, a manifest (.csv/.jsonl) or 'mnist' (flag --data; graft adapt: --source)");
    if (c.data.train && c.data.manifest) issue(['data', 'manifest'], 'give data.train or data.manifest, not both');
    const models = (['backbone', 'arch', 'encoder'] as const).filter((k) => c.model[k]);
    if (models.length === 0)
      issue(['model', 'backbone'], 'required: an ONNX backbone file (--backbone), a built-in model.arch (--arch) or a text model.encoder (--encoder)');
    if (models.length > 1)
      issue(['model', models[1]!], `give one of model.backbone, model.arch and model.encoder, not ${models.map((k) => `model.${k}`).join(' and ')}`);
    if (c.model.encoder && c.train.mode === 'auto')
      issue(['train', 'mode'], 'a text encoder has no auto recipe yet: use mode head (the head on cached embeddings), last-stages, full or fine-tune');
    if (c.model.encoder && c.train.augment) issue(['train', 'augment'], 'image augmentation does not apply to text (model.encoder); remove it');
    if (c.train.contrastive && !c.model.encoder)
      issue(['train', 'contrastive'], 'the contrastive phase pairs texts: it needs a text model.encoder (--encoder); remove it for images');
    if (c.train.optimizer.name !== 'sgd')
      for (const k of ['momentum', 'nesterov'] as const)
        if (c.train.optimizer[k] !== undefined) issue(['train', 'optimizer', k], `applies to sgd only; remove it or set optimizer.name to sgd`);
    if (c.train.optimizer.nesterov && c.train.optimizer.momentum === 0) issue(['train', 'optimizer', 'nesterov'], 'needs momentum > 0');
    if (c.train.schedule.kind === 'step' && !c.train.schedule.stepSize)
      issue(['train', 'schedule', 'stepSize'], 'required by the step schedule (steps between LR drops)');
  })
  // the mode's default depends on the model: a text encoder trains its head only
  .transform((c) => ({ ...c, train: { ...c.train, mode: c.train.mode ?? (c.model.encoder ? 'head' : 'auto') } as typeof c.train & { mode: TrainMode } }));

/** A validated config with defaults filled in. */
export type GraftConfig = z.output<typeof configSchema>;

/** Keys whose values are paths: resolved against the config file's folder. */
const PATH_KEYS = [
  'data.train',
  'data.manifest',
  'data.val',
  'data.test',
  'model.backbone',
  'model.encoder',
  'run.dir',
  'run.export',
  'lrFind.plot',
  'adapt.target',
  'adapt.targetEval',
  'adapt.out',
];

/** Data names that are built in, not paths (never resolved against a folder). */
const BUILTIN_DATA = ['mnist', 'mnist-style-shift'];

/** A path value resolved against `base`, unless it names built-in data. */

/** Whether the value of a path key is resolved against `base`: not `mnist`, and not a model registry name (`mobilenetv2`, `nsfwjs:MobileNetV2`). */
/** Whether a config value is a path to resolve: not a built-in data set (mnist…), not a registry model name. */
function isPathValue(key: string, value: unknown, base: string): value is string {
  if (typeof value !== 'string' || BUILTIN_DATA.includes(value)) return false;
  if (key === 'model.encoder') return !findTextEncoder(value);
  return !(key === 'model.backbone' && isModelName(value, base));
}

/** Sets `obj.a.b.c = value` for key 'a.b.c', creating objects on the way. */
export function setPath(obj: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.');
  let o = obj;
  for (const p of parts.slice(0, -1)) {
    const next = o[p];
    if (next === false || next === true || next === undefined || next === null || typeof next !== 'object') o[p] = {};
    o = o[p] as Record<string, unknown>;
  }
  o[parts.at(-1)!] = value;
}

/** The value at a dotted key, or undefined. */
export function getPath(obj: unknown, key: string): unknown {
  let o = obj;
  for (const p of key.split('.')) {
    if (o === null || typeof o !== 'object') return undefined;
    o = (o as Record<string, unknown>)[p];
  }
  return o;
}

/**
 * Reads a YAML (.yaml/.yml) or JSON (.json) config file into a plain object.
 * @throws naming the file (and line) when it cannot be read or parsed, or is not a mapping.
 */
export function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`Cannot read config file ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); check the path given to --config.`);
  }
  let raw: unknown;
  const json = path.extname(file).toLowerCase() === '.json';
  try {
    raw = json ? JSON.parse(text) : parseYaml(text, { prettyErrors: true });
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0]!.replace(/:\s*$/, '');
    throw new Error(`Config file ${file} is not valid ${json ? 'JSON' : 'YAML'}: ${msg}. Fix the syntax (docs/config.md has a complete example).`);
  }
  if (raw === null || raw === undefined) return {};
  if (typeof raw !== 'object' || Array.isArray(raw))
    throw new Error(`Config file ${file} must hold a mapping with sections data, model, train, run; it holds ${Array.isArray(raw) ? 'a list' : typeof raw}.`);
  return raw as Record<string, unknown>;
}

/** The config file to use: `explicit`, else graft.yaml / graft.yml / graft.json in `cwd` if one exists. */
export function findConfigFile(explicit: string | undefined, cwd = process.cwd()): string | undefined {
  if (explicit) return path.resolve(cwd, explicit);
  for (const f of ['graft.yaml', 'graft.yml', 'graft.json']) if (fs.existsSync(path.join(cwd, f))) return path.join(cwd, f);
  return undefined;
}

/** The config file a run merges: its path, and whether it was found in the folder rather than passed with --config. */
export interface ConfigFileInfo {
  path: string;
  found: boolean;
}

/** The config file of a command: `explicit` (--config), else graft.yaml / graft.yml / graft.json found in `cwd`. */
export function configFileOf(explicit: string | undefined, cwd = process.cwd()): ConfigFileInfo | undefined {
  const file = findConfigFile(explicit, cwd);
  return file ? { path: file, found: !explicit } : undefined;
}

/**
 * The note every run prints about the config file it merges, so a file found in the folder is never merged
 * silently: "using config ./graft.yaml (found in the current folder; …)".
 */
export function configFileNote(info: ConfigFileInfo, cwd = process.cwd()): string {
  const rel = path.relative(cwd, info.path);
  const shown = rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? `./${rel}` : info.path;
  return info.found
    ? `using config ${shown} (found in the current folder; flags override it; pass --config <file> to use another, or run from another folder to use flags only)`
    : `using config ${shown} (flags override it)`;
}

/** The run name a config file implies when run.name is not set: its base name (graft.yaml → graft), else "train". */
export function defaultRunName(file: string | undefined): string {
  return file ? path.basename(file).replace(/\.(ya?ml|json)$/i, '') : 'train';
}

/** Options of {@link loadConfig}. */
export interface LoadConfigOptions {
  /** Config file (already resolved), if any. */
  file?: string;
  /** Values from CLI flags by config key (override the file). */
  flags?: Record<string, { value: unknown; flag: string }>;
  /** Values applied before the file (command-specific defaults such as pretrain's mode). */
  defaults?: Record<string, unknown>;
  /** Folder that relative paths from flags are resolved against (default cwd). */
  cwd?: string;
}

/**
 * Builds the config: command defaults, then the file (relative paths resolved against its folder), then the flags.
 * @throws listing every invalid key with its path, the flag it came from, and how to fix it.
 */
export function loadConfig(opts: LoadConfigOptions = {}): { config: GraftConfig; raw: Record<string, unknown>; source: string } {
  const raw: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(opts.defaults ?? {})) setPath(raw, k, v);
  const fromFile = opts.file ? readConfigFile(opts.file) : {};
  if (opts.file) resolvePaths(fromFile, path.dirname(opts.file));
  merge(raw, fromFile);
  const cwd = opts.cwd ?? process.cwd();
  const flagOf = new Map<string, string>();
  for (const [k, { value, flag }] of Object.entries(opts.flags ?? {})) {
    setPath(raw, k, PATH_KEYS.includes(k) && isPathValue(k, value, cwd) ? path.resolve(cwd, value) : value);
    flagOf.set(k, flag);
  }
  const source = opts.file ?? 'command-line options';
  return { config: parseConfig(raw, source, flagOf), raw, source };
}

/**
 * Validates a raw config object.
 * @param source the file name (or "command-line options") for messages.
 * @param flagOf config key → the flag that set it, to name it in messages.
 */
export function parseConfig(raw: unknown, source = 'config', flagOf: Map<string, string> = new Map()): GraftConfig {
  const r = configSchema.safeParse(raw);
  if (r.success) return r.data;
  const lines = r.error.issues.map((i) => {
    const key = i.path.join('.');
    if (i.code === 'unrecognized_keys') {
      const known = knownKeys(i.path.map(String));
      return i.keys
        .map((k) => {
          const guess = closest(k, known);
          const full = key ? `${key}.${k}` : k;
          return `  - ${full}: unknown key${guess ? ` (did you mean "${guess}"?)` : ''}; valid keys${key ? ` under ${key}` : ''}: ${known.join(', ')}`;
        })
        .join('\n');
    }
    const flag = flagOf.get(key);
    return `  - ${key || '(top level)'}${flag ? ` (from ${flag})` : ''}: ${i.message}`;
  });
  const fix =
    source === 'command-line options'
      ? 'with the flags, or in a config file (--config graft.yaml) for keys without a flag'
      : `in ${source} or with the matching flags`;
  throw new Error(`Invalid config in ${source}:\n${lines.join('\n')}\nFix these keys ${fix}; docs/config.md lists every key.`);
}

function merge(into: Record<string, unknown>, from: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(from)) {
    const cur = into[k];
    if (v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' && !Array.isArray(cur))
      merge(cur as Record<string, unknown>, v as Record<string, unknown>);
    else into[k] = v;
  }
}

function resolvePaths(raw: Record<string, unknown>, base: string): void {
  for (const k of PATH_KEYS) {
    const v = getPath(raw, k);
    if (isPathValue(k, v, base)) setPath(raw, k, path.resolve(base, v));
  }
}

/** Unwraps defaults, optionals and pipes down to an object schema's keys. */
function knownKeys(at: string[]): string[] {
  let s = unwrap(configSchema as unknown as ZodLike);
  for (const p of at) {
    const shape = s?._zod.def.shape;
    s = shape?.[p] ? unwrap(shape[p]) : undefined;
  }
  return Object.keys(s?._zod.def.shape ?? {});
}

interface ZodLike {
  _zod: { def: { type: string; innerType?: ZodLike; in?: ZodLike; out?: ZodLike; shape?: Record<string, ZodLike> } };
}

function unwrap(s: ZodLike | undefined, depth = 0): ZodLike | undefined {
  if (!s || depth > 8) return undefined;
  const d = s._zod.def;
  if (d.type === 'object') return s;
  // a pipe: z.preprocess has its object on the out side, .transform on the in side
  if (d.type === 'pipe') return unwrap(d.out, depth + 1) ?? unwrap(d.in, depth + 1);
  return unwrap(d.innerType, depth + 1);
}

/** The known key closest to `k` (edit distance ≤ 2 or a case-insensitive match), if any. */
function closest(k: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const c of known) {
    const d = c.toLowerCase() === k.toLowerCase() ? 0 : editDistance(k, c);
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best;
}
