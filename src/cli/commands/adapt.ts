/**
 * `graft adapt`: unsupervised domain adaptation from labelled source images to unlabelled target images.
 * One method (`--method`), or several compared over seeds (`--compare m1,m2 --seeds 0,1,2`) in one table of
 * mean ± std. The checkpoint is picked without target labels (SND by default); `--target-eval` reports the
 * target accuracy of labelled target data that is never trained on. Training runs through the same `fit` loop as
 * `graft train`: with `--out`, every run checkpoints into <out>/checkpoints/<method>-seed<seed>/ and `--resume`
 * continues a killed run exactly. See docs/cli/adapt.md.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_ARCH_WIDTH } from '../../run/config.js';
import { atomicWrite } from '../../util/atomic-write.js';
import { toJsonLine } from '../../util/jsonl.js';
import { createProgress } from '../../util/progress.js';
import { CliError, emit, globals, note } from '../context.js';

interface AdaptCliOptions {
  source: string;
  target: string;
  targetEval?: string;
  method: string;
  compare?: string;
  seeds?: string;
  model?: string;
  freezeBackbone?: boolean;
  unfreezeLast?: string;
  bottleneck: string;
  epochs: string;
  batchSize: string;
  lr: string;
  select: string;
  evalEvery?: string;
  valSplit: string;
  sourceSamples?: string;
  imageSize: string;
  channels: string;
  width: string;
  out?: string;
  resume?: boolean;
  overwrite?: boolean;
  checkpointEvery?: string;
}

const num = (v: string, flag: string, ok: (x: number) => boolean, want: string) => {
  const x = Number(v);
  if (!Number.isFinite(x) || !ok(x)) throw new CliError(`${flag} must be ${want} (got ${v}).`);
  return x;
};

/** Registers `graft adapt`. */
export function register(program: Command): void {
  program
    .command('adapt')
    .description('unsupervised domain adaptation: labelled source + unlabelled target → a model for the target (DANN, CDAN, MCC, CORAL, DAN, …)')
    .requiredOption('--source <data>', 'labelled source: an image folder (one sub-folder per class) or mnist')
    .requiredOption('--target <data>', 'unlabelled target: a folder of images (any layout), or mnist-style-shift / mnist')
    .option('--target-eval <data>', 'labelled target data, evaluated only (never trained on): a class folder or mnist-style-shift')
    .option('--method <name>', 'source-only, adabn, coral, dan, dann, cdan, cdan+e, mcc, self-training, fixmatch', 'mcc')
    .option('--compare <list>', 'comma-separated methods to compare in one table (overrides --method)')
    .option('--seeds <list>', 'comma-separated seeds (default: --seed or 0)')
    .option('--model <file.onnx>', 'start from this model (its sidecar gives the preprocessing); default: a SmallCNN trained from scratch with the source')
    .option('--freeze-backbone', 'with --model: freeze the backbone and train a new bottleneck head on cached features')
    .option('--unfreeze-last <k>', 'with --model: train only the last k stages (see graft inspect) and the head')
    .option('--bottleneck <n>', 'hidden width of the bottleneck head (with --freeze-backbone)', '256')
    .option('--epochs <n>', 'epochs over the source', '2')
    .option('--batch-size <n>', 'source images per step (and as many target images)', '64')
    .option('--lr <x>', 'SGD learning rate (momentum 0.9, wd 5e-4, annealed (1+10p)^-0.75)', '0.01')
    .option('--select <criterion>', 'how the checkpoint is picked without target labels: snd, entropy, source-val or last', 'snd')
    .option('--eval-every <steps>', 'score a checkpoint every n steps (default: each epoch)')
    .option('--val-split <f>', 'fraction of a source folder held out for source validation', '0.1')
    .option('--source-samples <n>', 'train on only the first n source images (a quick run)')
    .option('--image-size <n>', 'input size for image folders without --model', '32')
    .option('--channels <n>', 'input channels for image folders without --model (1 or 3)', '3')
    .option('--width <n>', 'without --model: width of the SmallCNN (conv n, conv 2n, 4n features), as graft train --arch small-cnn', String(DEFAULT_ARCH_WIDTH))
    .option('--out <dir>', 'run folder: config.json, checkpoints/, results.json, report.md and (one method) model.onnx, or model-seed<k>.onnx per seed')
    .option('--resume', 'continue the run in --out exactly where it stopped (same flags)')
    .option('--overwrite', 'replace the run already in --out')
    .option('--checkpoint-every <steps>', 'with --out: also checkpoint every n steps (default: each epoch)')
    .action(async (opts: AdaptCliOptions, cmd: Command) => runAdapt(opts, cmd));
}

async function runAdapt(opts: AdaptCliOptions, cmd: Command): Promise<void> {
  const g = globals(cmd);
  const lib = await import('../../adapt/index.js');
  const methods = (opts.compare ?? opts.method).split(',').map((m) => lib.parseMethod(m, opts.compare ? '--compare' : '--method'));
  const seeds = opts.seeds
    ? opts.seeds.split(',').map((s) => num(s, '--seeds', (x) => Number.isInteger(x) && x >= 0, 'a list of integers ≥ 0'))
    : [g.seed ?? 0];
  const epochs = num(opts.epochs, '--epochs', (x) => Number.isInteger(x) && x >= 1, 'a positive integer');
  const batchSize = num(opts.batchSize, '--batch-size', (x) => Number.isInteger(x) && x >= 2, 'an integer ≥ 2');
  const lr = num(opts.lr, '--lr', (x) => x > 0, 'a positive number');
  const valSplit = num(opts.valSplit, '--val-split', (x) => x >= 0 && x < 1, 'a fraction in [0, 1)');
  const bottleneck = num(opts.bottleneck, '--bottleneck', (x) => Number.isInteger(x) && x >= 1, 'a positive integer');
  const evalEvery = opts.evalEvery ? num(opts.evalEvery, '--eval-every', (x) => Number.isInteger(x) && x >= 1, 'a positive integer') : undefined;
  if (!['snd', 'entropy', 'source-val', 'last'].includes(opts.select))
    throw new CliError(`--select must be snd, entropy, source-val or last (got ${opts.select}).`);
  if ((opts.freezeBackbone || opts.unfreezeLast) && !opts.model)
    throw new CliError(`${opts.freezeBackbone ? '--freeze-backbone' : '--unfreeze-last'} needs --model <file.onnx> (a pretrained model to freeze).`);
  if (opts.freezeBackbone && opts.unfreezeLast) throw new CliError('--freeze-backbone and --unfreeze-last exclude each other; pick one.');
  const lastStages = opts.unfreezeLast ? num(opts.unfreezeLast, '--unfreeze-last', (x) => Number.isInteger(x) && x >= 1, 'a positive integer') : undefined;
  const warn = (m: string) => note(cmd, `warning: ${m}`);
  const width = num(opts.width, '--width', (x) => Number.isInteger(x) && x >= 1, 'a positive integer');
  const checkpointEvery = opts.checkpointEvery
    ? num(opts.checkpointEvery, '--checkpoint-every', (x) => Number.isInteger(x) && x >= 1, 'a positive integer')
    : undefined;
  if ((opts.resume || opts.overwrite || checkpointEvery) && !opts.out)
    throw new CliError(`${opts.resume ? '--resume' : opts.overwrite ? '--overwrite' : '--checkpoint-every'} needs --out <dir> (the run folder).`);
  if (opts.resume && opts.overwrite) throw new CliError('--resume and --overwrite exclude each other; pick one.');
  const given = (key: string) => cmd.getOptionValueSource(key) === 'cli';
  if (opts.model && given('width'))
    throw new CliError('--width sets the width of the SmallCNN built without --model; remove it (the network comes from --model).');

  // preprocessing: the model's, or MNIST's for the built-in source, or --image-size/--channels for folders
  const { parsePreprocessConfig } = await import('../../data/preprocess.js');
  const { MNIST_ARRAYS_PREPROCESS, loadSource, loadTarget, loadTargetEval } = await import('../../adapt/sources.js');
  const { Network } = await import('../../train/network.js');
  const base = opts.model ? Network.load(opts.model) : undefined;
  if (base && !base.preprocess)
    throw new CliError(
      `--model ${opts.model} has no preprocessing config (no .json sidecar or graft.preprocess metadata); export it with graft train, or add the sidecar.`,
    );
  const size = num(opts.imageSize, '--image-size', (x) => Number.isInteger(x) && x >= 4 && x % 4 === 0, 'a multiple of 4 (≥ 4)');
  const channels = num(opts.channels, '--channels', (x) => x === 1 || x === 3, '1 or 3');
  // --image-size/--channels decode image folders without --model; elsewhere they would be silently ignored
  const fixed = base?.preprocess
    ? { size: base.preprocess.size?.[0], channels: base.preprocess.channels, from: `the preprocessing of --model ${opts.model}` }
    : opts.source === 'mnist'
      ? { size: 28, channels: 1, from: '--source mnist (28×28 grayscale)' }
      : undefined;
  for (const [flag, key, value] of [
    ['--image-size', 'imageSize', size],
    ['--channels', 'channels', channels],
  ] as const)
    if (fixed && given(key) && value !== fixed[key === 'imageSize' ? 'size' : 'channels'])
      throw new CliError(
        `${flag} ${value} does not apply: the input is fixed by ${fixed.from}. ${flag} only sets how image folders are decoded without --model; remove it.`,
      );
  const pre = parsePreprocessConfig(
    base?.preprocess ?? (opts.source === 'mnist' ? MNIST_ARRAYS_PREPROCESS : { size: [size, size], channels, resize: 'stretch', mean: [0.5], std: [0.5] }),
    opts.model ? `the preprocessing of ${opts.model}` : 'the adapt preprocessing',
  );
  const limit = opts.sourceSamples ? num(opts.sourceSamples, '--source-samples', (x) => Number.isInteger(x) && x >= 2, 'an integer ≥ 2') : undefined;
  if (opts.out) {
    // the flags that change the numbers; resuming needs the same ones
    const keys = [
      'source',
      'target',
      'targetEval',
      'method',
      'compare',
      'seeds',
      'model',
      'freezeBackbone',
      'unfreezeLast',
      'bottleneck',
      'epochs',
      'batchSize',
      'lr',
      'select',
      'evalEvery',
      'valSplit',
      'sourceSamples',
      'imageSize',
      'channels',
      'width',
    ] as const;
    const config: Record<string, unknown> = { seed: opts.seeds ? undefined : (g.seed ?? 0) };
    for (const k of keys) config[k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)] = opts[k];
    openRunFolder(opts.out, config, opts);
  }
  const src = await loadSource(opts.source, pre, { valSplit, seed: seeds[0]!, warn, limit });
  const target = await loadTarget(opts.target, pre, warn);
  const targetEval = opts.targetEval ? await loadTargetEval(opts.targetEval, pre, src.classes, warn) : undefined;
  lib.checkDomains(src.train, target, { source: `source (${opts.source})`, target: `target (${opts.target})` });
  note(
    cmd,
    `source ${opts.source}: ${src.train.length} labelled images (${src.val?.length ?? 0} held out), ${src.classes.length} classes; target ${opts.target}: ${target.length} unlabelled images`,
  );

  const { smallCNN, mlp, linear } = await import('../../nn/index.js');
  const classes = src.classes.length;
  const makeModel = (seed: number) => {
    if (!base)
      return smallCNN({ width, classes, inChannels: pre.channels, imageSize: pre.size[0] }).build({ inputShape: ['N', pre.channels, ...pre.size], seed });
    const net = new Network(base.model.clone(), { preprocess: base.preprocess, cut: base.cut });
    const out = net.model.graph.info(net.model.graph.outputs[0]!.name)?.shape?.at(-1);
    if (opts.freezeBackbone) net.freeze().replaceHead(mlp([bottleneck], classes), { seed });
    else if (out !== classes) net.replaceHead(linear(null, classes), { seed });
    if (lastStages) net.freeze().unfreeze({ lastStages });
    trainableOf.set(net.model, [...net.trainable]);
    return net.model;
  };
  const trainableOf = new Map<import('../../ir/model.js').Model, string[]>();
  if (methods.includes('adabn')) lib.checkHasBN(makeModel(seeds[0]!));

  let bar: ReturnType<typeof createProgress> | undefined;
  let lastStep = 0;
  const t0 = performance.now();
  let label = '';
  let current = '';
  const modelFiles: string[] = [];
  const saveModel = (r: Awaited<ReturnType<typeof lib.adapt>>) => {
    if (!opts.out || methods.length !== 1) return;
    // one method: one model per seed (model.onnx when there is one seed)
    const file = seeds.length === 1 ? 'model.onnx' : `model-seed${r.seed}.onnx`;
    const net = new Network(r.model, { preprocess: pre, labels: src.classes });
    net.save(path.join(opts.out, file), { adapt: { method: r.method, seed: r.seed, selected: r.selected } });
    modelFiles.push(file);
  };
  // compareMethods reuses each seed's source-only run for AdaBN (it only re-estimates BatchNorm statistics)
  const { rows: _rows, runs } = await lib.compareMethods({
    methods,
    seeds,
    model: makeModel,
    trainable: trainableOf.get(makeModel(seeds[0]!)),
    source: src.train,
    sourceVal: src.val,
    target,
    targetEval,
    epochs,
    batchSize,
    lr,
    select: opts.select as never,
    evalEvery,
    checkpointDir: opts.out && path.join(opts.out, 'checkpoints'),
    checkpointEvery,
    resume: opts.resume,
    onStart: (method, seed) => {
      label = `${method} (seed ${seed})`;
      current = `[seed ${seed}] ${method}`;
      note(cmd, `${current}: ${lib.METHOD_INFO[method].description}`);
    },
    onStep: (step, total, res) => {
      if (!bar) {
        bar = createProgress({ total, label, unit: 'step' });
        lastStep = step - 1; // a resumed run starts mid-way
        if (lastStep > 0) bar.tick(lastStep);
      }
      // the classification loss and the adaptation term, apart
      const shown: Record<string, number> = { loss: Number(res.loss.toFixed(4)) };
      for (const k of ['cls_loss', 'adapt_loss']) if (res.metrics[k] !== undefined) shown[k] = Number(res.metrics[k].toFixed(4));
      bar.tick(step - lastStep, shown);
      lastStep = step;
      if (step === total) {
        bar.done();
        bar = undefined;
      }
    },
    // each checkpoint's scores as soon as they are computed
    onEval: (e) => {
      if (g.json && !g.quiet) process.stderr.write(`${toJsonLine({ event: 'checkpoint', run: current, ...e })}\n`);
      else note(cmd, `${current}: ${describeScores(e)}`);
    },
    onRun: (r) => {
      note(cmd, `${current}: ${describe(r)}`);
      saveModel(r);
    },
  });
  const rows = lib.summarize(runs);
  const table = lib.formatCompareTable(rows, opts.select);
  const doc = {
    source: opts.source,
    target: opts.target,
    targetEval: opts.targetEval,
    methods,
    seeds,
    selectBy: opts.select,
    rows,
    runs,
    models: modelFiles,
    total_seconds: (performance.now() - t0) / 1000,
  };
  if (opts.out) {
    atomicWrite(path.join(opts.out, 'results.json'), `${JSON.stringify(doc, null, 2)}\n`);
    atomicWrite(path.join(opts.out, 'report.md'), `# graft adapt: ${opts.source} → ${opts.target}\n\n${table.join('\n')}\n`);
  }
  emit(cmd, doc, () => [...table, ...(opts.out ? ['', `wrote ${[`${opts.out}/results.json`, 'report.md', ...modelFiles].join(', ')}`] : [])]);
}

/** Opens `--out` as a run folder: a new run needs a folder without a run (or --overwrite); --resume needs the same flags. */
function openRunFolder(out: string, config: Record<string, unknown>, o: { resume?: boolean; overwrite?: boolean }): void {
  const file = path.join(out, 'config.json');
  if (fs.existsSync(file)) {
    if (o.resume) {
      let old: Record<string, unknown>;
      try {
        old = JSON.parse(fs.readFileSync(file, 'utf8'));
      } catch (e) {
        throw new CliError(`Cannot read ${file} (${(e as Error).message}); the run folder is damaged. Start again with --overwrite.`);
      }
      const diff = Object.keys({ ...old, ...config }).filter((k) => JSON.stringify(old[k]) !== JSON.stringify(config[k]));
      if (diff.length)
        throw new CliError(
          `Cannot resume ${out}: it was run with other ${diff.map((k) => `--${k}`).join(', ')}. Resume with the same flags, or start again with --overwrite.`,
        );
      return;
    }
    if (!o.overwrite)
      throw new CliError(`--out ${out} already holds a graft adapt run. Continue it with --resume, replace it with --overwrite, or choose another --out.`);
    fs.rmSync(out, { recursive: true, force: true });
  }
  fs.mkdirSync(out, { recursive: true });
  atomicWrite(file, `${JSON.stringify(config, null, 2)}\n`);
}

/** One scored checkpoint, in a line. */
function describeScores(e: { step: number; epoch: number; snd: number; target_entropy: number; source_val_acc?: number; target_acc?: number }): string {
  const parts = [`SND ${e.snd.toFixed(3)}`, `target entropy ${e.target_entropy.toFixed(3)}`];
  if (e.source_val_acc !== undefined) parts.push(`source val ${(100 * e.source_val_acc).toFixed(1)}%`);
  if (e.target_acc !== undefined) parts.push(`target ${(100 * e.target_acc).toFixed(1)}%`);
  return `checkpoint at step ${e.step} (epoch ${e.epoch}): ${parts.join(', ')}`;
}

function describe(r: {
  selected: { step: number; snd: number; target_entropy: number; source_val_acc?: number; target_acc?: number };
  seconds: number;
  selectBy: string;
}): string {
  const s = r.selected;
  const parts = [`picked step ${s.step} by ${r.selectBy}`, `SND ${s.snd.toFixed(3)}`, `target entropy ${s.target_entropy.toFixed(3)}`];
  if (s.source_val_acc !== undefined) parts.push(`source val ${(100 * s.source_val_acc).toFixed(1)}%`);
  if (s.target_acc !== undefined) parts.push(`target ${(100 * s.target_acc).toFixed(1)}%`);
  return `${parts.join(', ')} (${r.seconds.toFixed(0)} s)`;
}
