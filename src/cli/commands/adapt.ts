/**
 * `graft adapt`: unsupervised domain adaptation from labelled source images to unlabelled target images, or
 * (with `--encoder`) from labelled source texts to unlabelled target texts, on a frozen text encoder's embeddings.
 * One method (`--method`), or several compared over seeds (`--compare m1,m2 --seeds 0,1,2`) in one table of
 * mean ± std. The checkpoint is picked without target labels (IM by default); `--target-eval` reports the
 * target accuracy of labelled target data that is never trained on. Training runs through the same `fit` loop as
 * `graft train`: with `--out`, every run checkpoints into <out>/checkpoints/<method>-seed<seed>/ and `--resume`
 * continues a killed run exactly. See docs/cli/adapt.md.
 */
import path from 'node:path';
import type { Command } from 'commander';
import { findConfigFile, type GraftConfig, getPath, loadConfig, readConfigFile } from '../../run/config.js';
import { atomicWrite } from '../../util/atomic-write.js';
import { toJsonLine } from '../../util/jsonl.js';
import { createProgress } from '../../util/progress.js';
import { dataFingerprint, openRunFolder } from '../adapt-folder.js';
import { type PrepareContext, prepareImages, prepareTexts } from '../adapt-inputs.js';
import { CliError, emit, globals, note } from '../context.js';
import { ADAPT_FLAGS, addConfigFlags, flagValues } from '../flags.js';

/**
 * graft adapt's defaults where they differ from graft train's (the reference protocol, shared/ref/exp_da_shift.py):
 * applied before the config file, as graft pretrain's.
 */
export const ADAPT_DEFAULTS: Record<string, unknown> = {
  'data.valSplit': 0.1,
  'train.epochs': 2,
  'train.batchSize': 64,
  'train.optimizer.weightDecay': 5e-4,
  'train.schedule.kind': 'inv',
};

/** The config keys graft adapt reads (with every key of the adapt section); any other key in the file is an error. */
const ADAPT_KEYS = [
  ...new Set([
    ...ADAPT_FLAGS.map((f) => f.key),
    'model.arch',
    'train.optimizer.name',
    'train.schedule',
    'run.seed',
    'run.name',
    'run.dir',
    'run.threads',
    'run.device',
    'adapt',
  ]),
];

/** Registers `graft adapt`. */
export function register(program: Command): void {
  const cmd = program
    .command('adapt')
    .description('unsupervised domain adaptation: labelled source + unlabelled target → a model for the target (DANN, CDAN, MCC, CORAL, DAN, …)')
    .addHelpText('after', '\nEvery flag has a config key (shown in brackets); flags override graft.yaml. See docs/cli/adapt.md and docs/config.md.');
  addConfigFlags(cmd, undefined, ADAPT_FLAGS).action(async (_opts: unknown, c: Command) => runAdapt(c));
}

/** The leaf keys of a raw config object ('a.b.c'; arrays are leaves). */
function leafKeys(o: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(o).flatMap(([k, v]) =>
    v && typeof v === 'object' && !Array.isArray(v) ? leafKeys(v as Record<string, unknown>, `${prefix}${k}.`) : [`${prefix}${k}`],
  );
}

/** graft adapt's config: its defaults, then the file, then the flags; keys graft adapt does not read are an error. */
export function loadAdaptConfig(cmd: Command): { config: GraftConfig; out?: string; given: (key: string) => boolean } {
  const file = findConfigFile(cmd.opts().config as string | undefined);
  const flags = flagValues(cmd, undefined, ADAPT_FLAGS);
  const fromFile = file ? readConfigFile(file) : {};
  // without model.backbone (--model), graft adapt trains its SmallCNN from scratch
  // with model.encoder (--encoder), text: a frozen encoder and a new head
  const backbone = flags['model.backbone'] ?? getPath(fromFile, 'model.backbone') ?? flags['model.encoder'] ?? getPath(fromFile, 'model.encoder');
  const defaults = backbone ? ADAPT_DEFAULTS : { ...ADAPT_DEFAULTS, 'model.arch': 'small-cnn' };
  const { config, raw, source } = loadConfig({ file, flags, defaults });
  const foreign = leafKeys(raw).filter((k) => !ADAPT_KEYS.some((a) => k === a || k.startsWith(`${a}.`)));
  if (foreign.length)
    throw new CliError(
      `${foreign.join(', ')} in ${source} ${foreign.length > 1 ? 'do' : 'does'} not apply to graft adapt (it reads data.train, data.valSplit, data.limit, data.textColumn/labelColumn, model.backbone/encoder/pooling/arch/width/preprocess.size/channels, ` +
        'train.epochs/batchSize/optimizer/schedule, run.seed/name/dir/resume/overwrite/checkpointEvery and the adapt section). ' +
        'Remove it, or give graft adapt its own file with --config; docs/cli/adapt.md lists every key.',
    );
  const given = (key: string) => getPath(raw, key) !== undefined && !(key in ADAPT_DEFAULTS);
  const out = config.adapt.out ?? (config.run.name ? path.join(config.run.dir, config.run.name) : undefined);
  return { config, out, given };
}

async function runAdapt(cmd: Command): Promise<void> {
  const g = globals(cmd);
  const lib = await import('../../adapt/index.js');
  const { config, out, given } = loadAdaptConfig(cmd);
  const { data, model, train, run, adapt: a } = config;
  const sourceRef = data.train;
  if (!sourceRef || data.manifest)
    throw new CliError('graft adapt needs a labelled source folder or mnist: --source <data> (data.train in the config); data.manifest is not read.');
  if (!a.target) throw new CliError('graft adapt needs the unlabelled target: --target <data> (adapt.target in the config).');
  if (model.arch && model.arch !== 'small-cnn')
    throw new CliError(
      `graft adapt builds only the small-cnn without --model (model.arch is ${model.arch}); pretrain that network with graft pretrain and pass it as --model.`,
    );
  // --method auto: run the candidates and pick one by an unsupervised validator (src/adapt/auto.ts)
  const auto = !a.compare && a.method.trim().toLowerCase() === 'auto';
  if (a.candidates && !auto)
    throw new CliError(
      `--candidates (adapt.candidates) applies to --method auto only${a.compare ? '; --compare lists the methods to compare' : ''}. Remove it, or add --method auto.`,
    );
  if (a.ensemble !== undefined && !auto)
    throw new CliError('--ensemble (adapt.ensemble) applies to --method auto only: it averages the top runs that auto ranks. Remove it, or add --method auto.');
  const listed = auto ? a.candidates : (a.compare ?? [a.method]);
  const methods = listed?.map((m) => lib.parseMethod(m, auto ? '--candidates' : a.compare ? '--compare' : '--method'));
  const seeds = a.seeds ?? [run.seed];
  const { epochs, batchSize } = train;
  const { lr, momentum, weightDecay } = train.optimizer;
  const valSplit = data.valSplit;
  const { bottleneck, evalEvery, select } = a;
  if (batchSize < 2) throw new CliError(`--batch-size (train.batchSize) must be an integer ≥ 2 for graft adapt (got ${batchSize}).`);
  if ((a.freezeBackbone || a.unfreezeLast) && !model.backbone && !model.encoder)
    throw new CliError(`${a.freezeBackbone ? '--freeze-backbone' : '--unfreeze-last'} needs --model <file.onnx> (a pretrained model to freeze).`);
  if (a.freezeBackbone && a.unfreezeLast) throw new CliError('--freeze-backbone and --unfreeze-last exclude each other; pick one.');
  const warn = (m: string) => note(cmd, `warning: ${m}`);
  const checkpointEvery = run.checkpointEvery;
  if ((run.resume || run.overwrite || checkpointEvery) && !out)
    throw new CliError(
      `${run.resume ? '--resume' : run.overwrite ? '--overwrite' : '--checkpoint-every'} needs --out <dir> (the run folder; or run.name in the config).`,
    );
  if (run.resume && run.overwrite) throw new CliError('--resume and --overwrite exclude each other; pick one.');
  if (model.backbone && given('model.width'))
    throw new CliError('--width sets the width of the SmallCNN built without --model; remove it (the network comes from --model).');
  const { makeLrSchedule, makeOptimizer } = await import('../../run/setup.js');
  const schedule = makeLrSchedule(train.schedule) ?? (() => 1);

  const limit = data.limit;
  if (limit !== undefined && limit < 2) throw new CliError(`--source-samples (data.limit) must be an integer ≥ 2 (got ${limit}).`);
  const ctx: PrepareContext = { cmd, config, given, seeds, warn };
  const prep = model.encoder ? await prepareTexts(ctx) : await prepareImages(ctx);
  if (out) {
    // what changes the numbers, by flag name; resuming needs the same values
    const runConfig: Record<string, unknown> = {
      source: sourceRef,
      target: a.target,
      'target-eval': a.targetEval,
      methods: auto ? { auto: methods ?? 'default', validator: a.validator, ensemble: a.ensemble } : methods,
      seeds,
      bottleneck,
      epochs,
      'batch-size': batchSize,
      optimizer: train.optimizer.name,
      lr,
      momentum,
      'weight-decay': weightDecay,
      schedule: train.schedule,
      select,
      'eval-every': evalEvery,
      'val-split': valSplit,
      'source-samples': limit,
      ...prep.runConfig,
      // the files themselves: a resumed run reads finished candidates back, which only holds for the same data
      data: {
        source: dataFingerprint(sourceRef),
        target: dataFingerprint(a.target),
        'target-eval': dataFingerprint(a.targetEval),
        model: dataFingerprint(model.backbone ?? model.encoder),
      },
    };
    openRunFolder(out, runConfig, run);
  }
  const { src, target, targetEval, makeModel, trainable, network, unit } = await prep.load();
  lib.checkDomains(src.train, target, { source: `source (${sourceRef})`, target: `target (${a.target})` });
  note(
    cmd,
    `source ${sourceRef}: ${src.train.length} labelled ${unit} (${src.val?.length ?? 0} held out), ${src.classes.length} classes; target ${a.target}: ${target.length} unlabelled ${unit}`,
  );
  // auto without --candidates: every method that applies to this model
  const tried = methods ?? prep.candidates(makeModel(seeds[0]!));
  prep.check(tried, makeModel);
  if (auto) note(cmd, `--method auto: ${tried.length} candidates (${tried.join(', ')}) × ${seeds.length} seed(s), picked by ${a.validator}`);

  let bar: ReturnType<typeof createProgress> | undefined;
  let lastStep = 0;
  const t0 = performance.now();
  let label = '';
  let current = '';
  const modelFiles: string[] = [];
  const saveModel = (r: Awaited<ReturnType<typeof lib.adapt>>) => {
    if (!out || auto || tried.length !== 1) return;
    // one method: one model per seed (model.onnx when there is one seed)
    const file = seeds.length === 1 ? 'model.onnx' : `model-seed${r.seed}.onnx`;
    network(r.model).save(path.join(out, file), { adapt: { method: r.method, seed: r.seed, selected: r.selected } });
    modelFiles.push(file);
  };
  // compareMethods reuses each seed's source-only run for AdaBN (it only re-estimates BatchNorm statistics)
  const options: Omit<import('../../adapt/compare.js').CompareOptions, 'methods'> = {
    seeds,
    model: makeModel,
    trainable,
    source: src.train,
    sourceVal: src.val,
    target,
    targetEval,
    epochs,
    batchSize,
    lr,
    momentum,
    weightDecay,
    // SGD is built by adapt() from lr, momentum and weightDecay (the reference protocol); Adam/AdamW from the config
    ...(train.optimizer.name !== 'sgd' && { optimizer: makeOptimizer(train.optimizer) }),
    schedule,
    select,
    evalEvery,
    checkpointDir: out && path.join(out, 'checkpoints'),
    checkpointEvery,
    resume: run.resume,
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
    onReadBack: (_r, file) => note(cmd, `${current}: finished before; read back from ${file}, not run again`),
    onRun: (r) => {
      note(cmd, `${current}: ${describe(r)}`);
      saveModel(r);
    },
  };
  let runs: Awaited<ReturnType<typeof lib.compareMethods>>['runs'];
  let autoReport: import('../../adapt/auto.js').AutoReport | undefined;
  if (auto) {
    const r = await lib.autoAdapt({ ...options, candidates: tried, validator: a.validator, ensemble: a.ensemble });
    ({ runs } = r.auto);
    autoReport = r.auto;
    if (out) {
      // the pick: model.onnx, with the report of how it was picked in its sidecar
      network(r.model).save(path.join(out, 'model.onnx'), {
        adapt: {
          method: r.method,
          seed: r.seed,
          selected: r.selected,
          auto: { validator: a.validator, reason: r.auto.reason, ...(r.auto.ensemble && { ensemble: r.auto.ensemble }) },
        },
      });
      modelFiles.push('model.onnx');
    }
  } else ({ runs } = await lib.compareMethods({ ...options, methods: tried }));
  const rows = lib.summarize(runs);
  const table = [...lib.formatCompareTable(rows, select), ...(autoReport ? ['', ...lib.formatAutoTable(autoReport)] : [])];
  const doc = {
    source: sourceRef,
    target: a.target,
    targetEval: a.targetEval,
    methods: tried,
    seeds,
    selectBy: select,
    ...(autoReport && {
      auto: {
        validator: autoReport.validator,
        pick: autoReport.pick,
        reason: autoReport.reason,
        candidates: autoReport.candidates,
        ...(autoReport.ensemble && { ensemble: autoReport.ensemble }),
      },
    }),
    rows,
    runs,
    models: modelFiles,
    total_seconds: (performance.now() - t0) / 1000,
  };
  if (out) {
    atomicWrite(path.join(out, 'results.json'), `${JSON.stringify(doc, null, 2)}\n`);
    atomicWrite(path.join(out, 'report.md'), `# graft adapt: ${sourceRef} → ${a.target}\n\n${table.join('\n')}\n`);
  }
  emit(cmd, doc, () => [...table, ...(out ? ['', `wrote ${[`${out}/results.json`, 'report.md', ...modelFiles].join(', ')}`] : [])]);
}

/** One scored checkpoint, in a line. */
function describeScores(e: {
  step: number;
  epoch: number;
  snd: number;
  target_entropy: number;
  target_im: number;
  source_val_acc?: number;
  target_acc?: number;
}): string {
  const parts = [`IM ${e.target_im.toFixed(3)}`, `SND ${e.snd.toFixed(3)}`, `target entropy ${e.target_entropy.toFixed(3)}`];
  if (e.source_val_acc !== undefined) parts.push(`source val ${(100 * e.source_val_acc).toFixed(1)}%`);
  if (e.target_acc !== undefined) parts.push(`target ${(100 * e.target_acc).toFixed(1)}%`);
  return `checkpoint at step ${e.step} (epoch ${e.epoch}): ${parts.join(', ')}`;
}

function describe(r: {
  selected: { step: number; snd: number; target_entropy: number; target_im: number; source_val_acc?: number; target_acc?: number };
  seconds: number;
  selectBy: string;
}): string {
  const s = r.selected;
  const parts = [
    `picked step ${s.step} by ${r.selectBy}`,
    `IM ${s.target_im.toFixed(3)}`,
    `SND ${s.snd.toFixed(3)}`,
    `target entropy ${s.target_entropy.toFixed(3)}`,
  ];
  if (s.source_val_acc !== undefined) parts.push(`source val ${(100 * s.source_val_acc).toFixed(1)}%`);
  if (s.target_acc !== undefined) parts.push(`target ${(100 * s.target_acc).toFixed(1)}%`);
  return `${parts.join(', ')} (${r.seconds.toFixed(0)} s)`;
}
