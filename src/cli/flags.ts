/**
 * The command-line side of the config: one flag per config key ({@link FLAGS}), registered on a commander
 * command by {@link addConfigFlags} and read back, keyed by config key, by {@link flagValues}.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_LR } from '../optim/defaults.js';

/** One CLI flag and the config key it sets. */
export interface FlagSpec {
  /** Commander flags, e.g. '--lr <x>'. */
  flags: string;
  /** Dotted config key, e.g. 'train.optimizer.lr'. */
  key: string;
  help: string;
  /** How the argument is parsed (default: string; booleans take no argument). */
  type?: 'number' | 'int' | 'list' | 'bool';
  /** A valid value, shown when a 'list' flag gets a bad one (default 256,256). */
  example?: string;
  /** Maps the flag's value to the config value (e.g. --no-early-stopping → false). */
  value?: (v: unknown) => unknown;
}

/** Every config flag of `graft train` and `graft lr-find`; `graft pretrain` takes a subset. */
export const FLAGS: FlagSpec[] = [
  { flags: '--data <path>', key: 'data.train', help: "training images: a class-per-folder folder, a manifest (.csv/.jsonl) or 'mnist'" },
  { flags: '--manifest <file>', key: 'data.manifest', help: 'training manifest (.csv with path,label or .jsonl)' },
  { flags: '--val <path>', key: 'data.val', help: 'validation folder or manifest (default: --val-split of the training data)' },
  { flags: '--val-split <f>', key: 'data.valSplit', type: 'number', help: 'fraction of each class held out for validation (default 0.15)' },
  { flags: '--test <path>', key: 'data.test', help: 'test folder or manifest, evaluated at the end' },
  { flags: '--class-weights <w>', key: 'data.classWeights', help: "'balanced' or 'none'" },
  { flags: '--limit <n>', key: 'data.limit', type: 'int', help: 'use at most n training images (seeded, stratified)' },
  { flags: '--allow-outside', key: 'data.allowOutside', type: 'bool', help: "accept manifest paths that lead outside the manifest's folder" },
  {
    flags: '--backbone <model.onnx|name>',
    key: 'model.backbone',
    help: 'ONNX backbone file, or a registry name (graft models) fetched into the cache on first use, e.g. mobilenetv2 or nsfwjs:MobileNetV2',
  },
  {
    flags: '--encoder <name|encoder.onnx>',
    key: 'model.encoder',
    help: 'text encoder: tfidf, glove, glove-sif, or an encoder .onnx with its .tokenizer.json; --data is then a text CSV/TSV/JSONL or a folder of .txt files per class',
  },
  { flags: '--pooling <mean|cls>', key: 'model.pooling', help: 'transformer text encoder: mean over the tokens (default) or the first ([CLS]) token' },
  { flags: '--text-column <name>', key: 'data.textColumn', help: "text data: the column holding the text (default 'text')" },
  { flags: '--label-column <name>', key: 'data.labelColumn', help: "text data: the column holding the label (default 'label')" },
  { flags: '--arch <name>', key: 'model.arch', help: 'built-in architecture: small-cnn, resnet18 (alias resnet18-style) or lenet5' },
  { flags: '--width <n>', key: 'model.width', type: 'int', help: 'width of the built-in architecture' },
  { flags: '--cut <value>', key: 'model.cut', help: 'where the backbone features end (default: automatic)' },
  { flags: '--image-size <n>', key: 'model.preprocess.size', type: 'int', help: 'input height and width (overrides the backbone preprocessing)' },
  { flags: '--channels <n>', key: 'model.preprocess.channels', type: 'int', help: 'input channels, 1 or 3' },
  { flags: '--head <type>', key: 'model.head.type', help: "'mlp' or 'linear'" },
  { flags: '--hidden <sizes>', key: 'model.head.hidden', type: 'list', help: 'hidden sizes of the mlp head, e.g. 256,256' },
  { flags: '--activation <name>', key: 'model.head.activation', help: 'relu, gelu or tanh' },
  { flags: '--head-dropout <p>', key: 'model.head.dropout', type: 'number', help: 'dropout after each hidden layer of the head' },
  { flags: '--head-batch-norm', key: 'model.head.batchNorm', type: 'bool', help: 'BatchNorm1d after each hidden layer of the head' },
  {
    flags: '--mode <mode>',
    key: 'train.mode',
    help: 'auto (default: a head search on cached features, then the last stages if --budget allows), head, last-stages, full or fine-tune',
  },
  { flags: '--budget <seconds|1m>', key: 'train.budget', help: 'auto mode: wall-clock budget, e.g. 60, 90s, 1m30s (default 60 s)' },
  { flags: '--epochs <n>', key: 'train.epochs', type: 'int', help: 'training epochs (fine-tune: after the frozen phase)' },
  { flags: '--freeze-epochs <n>', key: 'train.freezeEpochs', type: 'int', help: 'fine-tune: frozen-backbone epochs first (default 1)' },
  { flags: '--last-stages <n>', key: 'train.lastStages', type: 'int', help: 'last-stages: trailing stages to train, head included (default 2)' },
  {
    flags: '--contrastive <iterations>',
    key: 'train.contrastive',
    type: 'int',
    help: 'text transformer: SetFit contrastive phase on pairs before the head (pairs per text = 2 x iterations)',
  },
  { flags: '--batch-size <n>', key: 'train.batchSize', type: 'int', help: 'minibatch size (default 32)' },
  { flags: '--optimizer <name>', key: 'train.optimizer.name', help: 'sgd (default), adam or adamw' },
  {
    flags: '--lr <x>',
    key: 'train.optimizer.lr',
    type: 'number',
    help: `base learning rate (default ${DEFAULT_LR.sgd} with sgd, ${DEFAULT_LR.adam} with adam/adamw)`,
  },
  { flags: '--momentum <x>', key: 'train.optimizer.momentum', type: 'number', help: 'SGD momentum (default 0.9)' },
  { flags: '--nesterov', key: 'train.optimizer.nesterov', type: 'bool', help: 'Nesterov momentum' },
  { flags: '--weight-decay <x>', key: 'train.optimizer.weightDecay', type: 'number', help: 'weight decay' },
  { flags: '--schedule <kind>', key: 'train.schedule.kind', help: 'constant, step, cosine, one-cycle or inv' },
  { flags: '--warmup <x>', key: 'train.schedule.warmup', type: 'number', help: 'linear warmup: fraction of the run (< 1) or steps' },
  { flags: '--label-smoothing <x>', key: 'train.labelSmoothing', type: 'number', help: 'label smoothing of the cross-entropy' },
  { flags: '--clip-norm <x>', key: 'train.clipNorm', type: 'number', help: 'clip gradients to this global L2 norm' },
  { flags: '--recompute <mode>', key: 'train.recompute', help: "gradient checkpointing: 'auto' (default; large activations) or 'off' (faster, more memory)" },
  { flags: '--steps-per-run <k>', key: 'train.stepsPerRun', type: 'int', help: 'steps per session.run (default 16 for a long head fit, else 1)' },
  { flags: '--freeze-bn-stats', key: 'train.freezeBNStats', type: 'bool', help: 'BatchNorm keeps its running statistics (scale/shift still train)' },
  { flags: '--patience <n>', key: 'train.earlyStopping.patience', type: 'int', help: 'early stopping: epochs without improvement (default 3)' },
  { flags: '--monitor <metric>', key: 'train.earlyStopping.monitor', help: 'early stopping metric (default val_loss)' },
  { flags: '--early-stopping', key: 'train.earlyStopping.enabled', type: 'bool', help: 'stop when the monitored metric stalls' },
  { flags: '--no-early-stopping', key: 'train.earlyStopping.enabled', type: 'bool', help: 'train every epoch' },
  { flags: '--restore-best', key: 'train.earlyStopping.restoreBest', type: 'bool', help: 'keep the best epoch’s weights (default)' },
  { flags: '--no-restore-best', key: 'train.earlyStopping.restoreBest', type: 'bool', help: 'keep the last epoch’s weights' },
  { flags: '--augment', key: 'train.augment', type: 'bool', help: 'random resized crops and flips' },
  { flags: '--no-augment', key: 'train.augment', type: 'bool', help: 'no augmentation (default)' },
  { flags: '--name <name>', key: 'run.name', help: 'run folder name under --runs-dir' },
  { flags: '--runs-dir <dir>', key: 'run.dir', help: "folder of run folders (default 'runs')" },
  { flags: '--resume', key: 'run.resume', type: 'bool', help: 'continue runs/<name> from its last checkpoint' },
  { flags: '--checkpoint-every <n>', key: 'run.checkpointEvery', type: 'int', help: 'also checkpoint every n steps' },
  {
    flags: '--keep-checkpoints',
    key: 'run.keepCheckpoints',
    type: 'bool',
    help: "keep a finished phase's last.ckpt, best.ckpt and early-best.ckpt (default: only its final.ckpt)",
  },
  { flags: '--strict', key: 'run.strict', type: 'bool', help: 'corrupt images are errors, not warnings' },
  { flags: '--overwrite', key: 'run.overwrite', type: 'bool', help: 'replace an existing run folder of the same name' },
  { flags: '--out <model.onnx>', key: 'run.export', help: 'also write the final model and its .json sidecar here' },
  { flags: '--start-lr <x>', key: 'lrFind.startLr', type: 'number', help: 'lr-find: first learning rate (default 1e-7)' },
  { flags: '--end-lr <x>', key: 'lrFind.endLr', type: 'number', help: 'lr-find: last learning rate (default 10)' },
  { flags: '--steps <n>', key: 'lrFind.steps', type: 'int', help: 'lr-find: number of steps (default 100)' },
  { flags: '--plot <file.png>', key: 'lrFind.plot', help: 'lr-find: where to write the plot (default runs/<name>/lr-find.png)' },
];

/**
 * Every flag of `graft adapt`. The labelled source is data.train, the network model.*, the optimizer train.*,
 * what only adaptation has the adapt section; the defaults that differ from graft train's are
 * {@link ADAPT_DEFAULTS} (src/cli/commands/adapt.ts).
 */
export const ADAPT_FLAGS: FlagSpec[] = [
  {
    flags: '--source <data>',
    key: 'data.train',
    help: 'labelled source: an image folder (one sub-folder per class) or mnist; with --encoder, a text CSV/TSV/JSONL or a folder of <class>/*.txt',
  },
  {
    flags: '--target <data>',
    key: 'adapt.target',
    help: 'unlabelled target: a folder of images (any layout), or mnist-style-shift / mnist; with --encoder, a text table or .txt folder',
  },
  {
    flags: '--target-eval <data>',
    key: 'adapt.targetEval',
    help: 'labelled target data, evaluated only (never trained on): a class folder or mnist-style-shift; with --encoder, a labelled text table',
  },
  {
    flags: '--encoder <name|encoder.onnx>',
    key: 'model.encoder',
    help: 'adapt text: the frozen text encoder (tfidf, glove, glove-sif, or an encoder .onnx); a new --bottleneck head adapts on its cached embeddings',
  },
  ...FLAGS.filter((f) => ['model.pooling', 'data.textColumn', 'data.labelColumn'].includes(f.key)),
  {
    flags: '--method <name>',
    key: 'adapt.method',
    help: 'source-only, adabn, coral, dan, dann, cdan, cdan+e, mcc (default), self-training, fixmatch, or auto (pick among --candidates without target labels)',
  },
  {
    flags: '--candidates <list>',
    key: 'adapt.candidates',
    help: 'with --method auto: comma-separated methods to try (default: every method that applies)',
    value: (v) => String(v).split(','),
  },
  { flags: '--validator <name>', key: 'adapt.validator', help: 'with --method auto: what picks the run without target labels: im (default), entropy or snd' },
  {
    flags: '--ensemble <k>',
    key: 'adapt.ensemble',
    type: 'int',
    help: 'with --method auto: save the mean softmax of the top k runs by the validator as one model.onnx (default 1: the pick alone)',
  },
  {
    flags: '--compare <list>',
    key: 'adapt.compare',
    help: 'comma-separated methods to compare in one table (overrides --method)',
    value: (v) => String(v).split(','),
  },
  { flags: '--seeds <list>', key: 'adapt.seeds', type: 'list', example: '0,1,2', help: 'comma-separated seeds (default: --seed or 0)' },
  {
    flags: '--model <file.onnx>',
    key: 'model.backbone',
    help: 'start from this model (its sidecar gives the preprocessing); default: a SmallCNN trained from scratch with the source',
  },
  {
    flags: '--freeze-backbone',
    key: 'adapt.freezeBackbone',
    type: 'bool',
    help: 'with --model: freeze the backbone and train a new bottleneck head on cached features',
  },
  { flags: '--unfreeze-last <k>', key: 'adapt.unfreezeLast', type: 'int', help: 'with --model: train only the last k stages (see graft inspect) and the head' },
  { flags: '--bottleneck <n>', key: 'adapt.bottleneck', type: 'int', help: 'hidden width of the bottleneck head (with --freeze-backbone; default 256)' },
  { flags: '--epochs <n>', key: 'train.epochs', type: 'int', help: 'epochs over the source (default 2)' },
  { flags: '--batch-size <n>', key: 'train.batchSize', type: 'int', help: 'source images per step, and as many target images (default 64)' },
  {
    flags: '--optimizer <name>',
    key: 'train.optimizer.name',
    help: 'sgd (default, the reference protocol), adam or adamw (e.g. a head on text embeddings, which SGD at these defaults leaves at the majority class)',
  },
  { flags: '--lr <x>', key: 'train.optimizer.lr', type: 'number', help: 'learning rate (default 0.01 for sgd, 0.001 for adam/adamw; annealed (1+10p)^-0.75)' },
  { flags: '--momentum <x>', key: 'train.optimizer.momentum', type: 'number', help: 'SGD momentum (default 0.9)' },
  { flags: '--weight-decay <x>', key: 'train.optimizer.weightDecay', type: 'number', help: 'weight decay (default 5e-4)' },
  {
    flags: '--select <criterion>',
    key: 'adapt.select',
    help: 'how the checkpoint is picked without target labels: im (default), snd, entropy, source-val or last',
  },
  { flags: '--eval-every <steps>', key: 'adapt.evalEvery', type: 'int', help: 'score a checkpoint every n steps (default: each epoch)' },
  { flags: '--val-split <f>', key: 'data.valSplit', type: 'number', help: 'fraction of a source folder held out for source validation (default 0.1)' },
  { flags: '--source-samples <n>', key: 'data.limit', type: 'int', help: 'train on only the first n source images (a quick run)' },
  { flags: '--image-size <n>', key: 'model.preprocess.size', type: 'int', help: 'input size for image folders without --model (default 32)' },
  { flags: '--channels <n>', key: 'model.preprocess.channels', type: 'int', help: 'input channels for image folders without --model, 1 or 3 (default 3)' },
  {
    flags: '--width <n>',
    key: 'model.width',
    type: 'int',
    help: 'without --model: width of the SmallCNN (conv n, conv 2n, 4n features), as graft train --arch small-cnn',
  },
  {
    flags: '--out <dir>',
    key: 'adapt.out',
    help: 'run folder: config.json, checkpoints/, results.json, report.md and (one method) model.onnx, or model-seed<k>.onnx per seed',
  },
  { flags: '--resume', key: 'run.resume', type: 'bool', help: 'continue the run in --out exactly where it stopped (same flags)' },
  { flags: '--overwrite', key: 'run.overwrite', type: 'bool', help: 'replace the run already in --out' },
  { flags: '--checkpoint-every <steps>', key: 'run.checkpointEvery', type: 'int', help: 'with --out: also checkpoint every n steps (default: each epoch)' },
];

/** Global options (declared on the root program) and their config keys. */
const GLOBAL_KEYS: Record<string, string> = { seed: 'run.seed', threads: 'run.threads', device: 'run.device' };

function parseArg(spec: FlagSpec): ((v: string) => unknown) | undefined {
  const name = spec.flags.split(' ')[0];
  if (spec.type === 'number' || spec.type === 'int')
    return (v) => {
      const n = Number(v);
      if (v.trim() === '' || !Number.isFinite(n) || (spec.type === 'int' && !Number.isInteger(n)))
        throw new InvalidArgumentError(`${name} needs ${spec.type === 'int' ? 'an integer' : 'a number'}, got "${v}".`);
      return n;
    };
  if (spec.type === 'list')
    return (v) =>
      v.split(',').map((s) => {
        const n = Number(s);
        if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name} needs comma-separated integers (e.g. ${spec.example ?? '256,256'}), got "${v}".`);
        return n;
      });
  return undefined;
}

/** Adds config flags to a command (all of `specs`, or those whose key is in `keys`) plus --config. */
export function addConfigFlags(cmd: Command, keys?: readonly string[], specs: readonly FlagSpec[] = FLAGS): Command {
  cmd.option('-c, --config <file>', 'graft.yaml / graft.json (default: ./graft.yaml, ./graft.yml or ./graft.json if present)');
  for (const spec of specs) {
    if (keys && !keys.includes(spec.key)) continue;
    const o = new Option(spec.flags, `${spec.help} [${spec.key}]`);
    const p = parseArg(spec);
    if (p) o.argParser(p);
    cmd.addOption(o);
  }
  return cmd;
}

/** Config values given on the command line, keyed by config key, from a command's parsed options. */
export function flagValues(cmd: Command, keys?: readonly string[], specs: readonly FlagSpec[] = FLAGS): Record<string, { value: unknown; flag: string }> {
  const opts = cmd.optsWithGlobals() as Record<string, unknown>;
  const out: Record<string, { value: unknown; flag: string }> = {};
  for (const spec of specs) {
    if (keys && !keys.includes(spec.key)) continue;
    const o = cmd.options.find((x) => x.flags === spec.flags);
    if (!o) continue;
    const v = opts[o.attributeName()];
    if (v === undefined) continue;
    // a negatable pair shares one attribute: report the flag that matches the value
    if (spec.type === 'bool' && spec.flags.startsWith('--no-') !== (v === false)) continue;
    out[spec.key] = { value: spec.value ? spec.value(v) : v, flag: spec.flags.split(' ')[0]! };
  }
  for (const [attr, key] of Object.entries(GLOBAL_KEYS)) if (opts[attr] !== undefined) out[key] = { value: opts[attr], flag: `--${attr}` };
  return out;
}
