/**
 * `graft train [--config graft.yaml] [flags]`: transfer learning end to end. Loads the data (image folder,
 * manifest or MNIST) and splits it, loads the ONNX backbone (or builds a built-in one), grafts a new head,
 * trains it in the chosen mode with early stopping and atomic checkpoints in runs/<name>/, and writes
 * runs/<name>/model.onnx + model.json. `--resume` continues a killed run exactly.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { findConfigFile, type GraftConfig, loadConfig } from '../../run/config.js';
import type { SetupIo } from '../../run/setup.js';
import type { BatchSource } from '../../step/batches.js';
import type { Callback, EpochMetrics } from '../../train/callbacks.js';
import type { FitConfig, Network } from '../../train/network.js';
import { emit, globals, note } from '../context.js';
import { addConfigFlags, flagValues } from '../flags.js';

/** Options of {@link runTraining}. */
export interface RunTrainingOptions {
  /** Where the config came from (file name), for messages. */
  source: string;
  /** The command (for --json/--quiet and notes). */
  cmd: Command;
  /** `graft pretrain`: train the built-in architecture's own classifier from scratch, no head replacement. */
  pretrain?: boolean;
  /** Default run name when run.name is not set. */
  defaultName: string;
}

/** What a training run reports (the --json output). */
export interface TrainSummary {
  run: string;
  model: string;
  export?: string;
  classes: string[];
  samples: { train: number; val: number; test: number };
  phases: { name: string; epochs: number; stoppedEarly: boolean; resumed: boolean }[];
  /** Final metrics of the saved model. */
  metrics: { val?: { loss: number; acc: number }; test?: { loss: number; acc: number } };
  /** Every epoch's metrics, with its phase. */
  history: Record<string, number | string>[];
}

interface Phase {
  name: string;
  epochs: number;
  lrMul: number;
  groups: 'single' | 'discriminative';
  setup(net: Network): void;
}

/** Registers `graft train`. */
export function register(program: Command): void {
  const cmd = program
    .command('train')
    .description('train a classifier on an image folder/manifest: graft a head on an ONNX backbone, fine-tune, export runs/<name>/model.onnx')
    .addHelpText('after', '\nEvery flag has a config key (shown in brackets); flags override graft.yaml. See docs/cli/train.md and docs/config.md.');
  addConfigFlags(cmd).action(async (_opts: unknown, c: Command) => {
    const file = findConfigFile(c.opts().config as string | undefined);
    const { config, source } = loadConfig({ file, flags: flagValues(c) });
    const summary = await runTraining(config, { source, cmd: c, defaultName: file ? path.basename(file).replace(/\.(ya?ml|json)$/i, '') : 'train' });
    emit(c, summary, () => formatSummary(summary));
  });
}

/** The warning/notice sinks of a command: warnings always go to stderr (as JSON lines under --json). */
export function commandIo(cmd: Command): SetupIo & { note(message: string): void } {
  const json = !!globals(cmd).json;
  return {
    warn: (m) => process.stderr.write(json ? `${JSON.stringify({ event: 'warning', message: m })}\n` : `warning: ${m}\n`),
    note: (m) => note(cmd, m),
  };
}

function phasesOf(cfg: GraftConfig, pretrain: boolean): Phase[] {
  const t = cfg.train;
  const all = (net: Network) => void net.unfreeze();
  const one = (name: string, setup: (net: Network) => void): Phase[] => [{ name, epochs: t.epochs, lrMul: 1, groups: 'single', setup }];
  if (pretrain) return one('pretrain', all);
  switch (t.mode) {
    case 'head':
      return one('head', () => {});
    case 'last-stages':
      return one('last-stages', (net) => void net.unfreeze({ lastStages: t.lastStages }));
    case 'full':
      return one('full', all);
    case 'fine-tune': {
      // fastai's fine_tune: the head alone first, then everything at half the LR spread discriminatively
      const head: Phase[] = t.freezeEpochs > 0 ? [{ name: 'head', epochs: t.freezeEpochs, lrMul: 1, groups: 'single', setup: () => {} }] : [];
      return [...head, { name: 'fine-tune', epochs: t.epochs, lrMul: 0.5, groups: 'discriminative', setup: all }];
    }
  }
}

/**
 * Runs a whole training job from a validated config and returns its summary.
 * @throws with a one-line, actionable message on bad input (data, model, config, run folder).
 */
export async function runTraining(cfg: GraftConfig, opts: RunTrainingOptions): Promise<TrainSummary> {
  if (cfg.run.threads) process.env.GRAFT_THREADS = String(cfg.run.threads);
  const io = commandIo(opts.cmd);
  const setup = await import('../../run/setup.js');
  const { RunDir } = await import('../../train/run-dir.js');

  const data = await setup.loadRunData(cfg, io);
  const mnist = data.train.kind === 'arrays';
  const { net, preprocess } = await setup.buildNetwork(cfg, data.classes, { pretrain: opts.pretrain, mnist, source: opts.source });
  const K = data.classes.length;
  const srcOpts = { strict: cfg.run.strict, io };
  const train = await setup.makeSource(data.train, preprocess, K, { ...srcOpts, augment: cfg.train.augment });
  const val = data.val ? await setup.makeSource(data.val, preprocess, K, srcOpts) : undefined;
  const test = data.test ? await setup.makeSource(data.test, preprocess, K, srcOpts) : undefined;
  const es = cfg.train.earlyStopping;
  const early = es.enabled ?? !!val;
  if (early && es.monitor.startsWith('val_') && !val)
    throw new Error(
      `train.earlyStopping monitors ${es.monitor} but there is no validation data. Set data.valSplit > 0 or data.val, monitor train_loss, or disable early stopping (--no-early-stopping).`,
    );

  const name = cfg.run.name ?? opts.defaultName;
  const rd = RunDir.open(path.join(cfg.run.dir, name), {
    resume: cfg.run.resume,
    overwrite: cfg.run.overwrite,
    config: cfg as unknown as Record<string, unknown>,
    onNote: io.warn,
  });
  try {
    return await trainInRunDir(cfg, opts, { data, net, train, val, test, rd, early, io, K });
  } finally {
    rd.release();
  }
}

/** The part of {@link runTraining} that runs while the run folder is locked. */
async function trainInRunDir(
  cfg: GraftConfig,
  opts: RunTrainingOptions,
  ctx: {
    data: Awaited<ReturnType<typeof import('../../run/setup.js').loadRunData>>;
    net: Network;
    train: BatchSource;
    val?: BatchSource;
    test?: BatchSource;
    rd: import('../../train/run-dir.js').RunDir;
    early: boolean;
    io: ReturnType<typeof commandIo>;
    K: number;
  },
): Promise<TrainSummary> {
  const { data, net, train, val, test, rd, early, io, K } = ctx;
  const es = cfg.train.earlyStopping;
  const setup = await import('../../run/setup.js');
  const { MetricsLog, PersistentEarlyStopping, AlreadyStopped } = await import('../../train/run-dir.js');
  const { ProgressCallback } = await import('../../train/progress-callback.js');
  const { bufferNames } = await import('../../ir/params.js');
  const { graftVersion } = await import('../../util/version.js');
  const phases = phasesOf(cfg, !!opts.pretrain);
  if (cfg.run.resume) {
    const completed = Object.fromEntries(phases.map((p) => [p.name, rd.completedEpochs(p.name)]));
    if (Object.values(completed).some((n) => n > 0))
      io.note(`resuming ${rd.root} (${phases.map((p) => `${p.name}: ${completed[p.name]} epoch(s) done`).join(', ')})`);
    rd.truncateMetrics(completed);
  }
  io.note(
    `${rd.root}: ${K} classes, ${train.length} train / ${val?.length ?? 0} val${test ? ` / ${test.length} test` : ''} samples; ` +
      `${cfg.model.backbone ?? cfg.model.arch}, mode ${opts.pretrain ? 'pretrain' : cfg.train.mode}`,
  );

  const loss = setup.makeLoss(cfg, data.train.labels, K);
  const schedule = setup.makeLrSchedule(cfg.train.schedule);
  const history: TrainSummary['history'] = [];
  const phaseInfo: TrainSummary['phases'] = [];
  for (const p of phases) {
    p.setup(net);
    const done = cfg.run.resume ? rd.finishedPhase(p.name) : undefined;
    if (done) {
      for (const [k, v] of done.tensors) if (net.model.graph.initializers.has(k)) net.model.graph.initializers.set(k, v);
      history.push(...done.history.map((m) => ({ phase: p.name, ...m })));
      phaseInfo.push({ name: p.name, epochs: done.history.length, stoppedEarly: done.stoppedEarly, resumed: true });
      continue;
    }
    const dir = rd.phaseDir(p.name);
    const callbacks: Callback[] = [new ProgressCallback({ label: phases.length > 1 ? p.name : undefined }), new MetricsLog(rd.metricsFile, p.name)];
    if (early)
      callbacks.push(
        new PersistentEarlyStopping(
          { monitor: es.monitor, patience: es.patience, minDelta: es.minDelta, restoreBest: es.restoreBest },
          path.join(dir, 'early-best.ckpt'),
        ),
      );
    if (net.headOnly() && !cfg.train.augment) io.note(`${p.name}: backbone frozen, training the head on features computed once`);
    const fitCfg: FitConfig = {
      epochs: p.epochs,
      batchSize: cfg.train.batchSize,
      optimizer: setup.makeOptimizer(cfg.train.optimizer, p.lrMul),
      loss,
      schedule,
      val,
      callbacks,
      seed: cfg.run.seed,
      clipNorm: cfg.train.clipNorm,
      freezeBNStats: cfg.train.freezeBNStats,
      groups: p.groups,
      checkpointDir: dir,
      checkpointEvery: cfg.run.checkpointEvery,
      resume: cfg.run.resume,
    };
    let r: { history: EpochMetrics[]; stoppedEarly: boolean; steps: number };
    try {
      r = await net.fit(train, fitCfg);
    } catch (e) {
      if (!(e instanceof AlreadyStopped)) throw e;
      // killed between early stopping's last checkpoint and the end of the phase: rebuild the phase's result
      const st = rd.stoppedPhase(p.name, es.restoreBest);
      for (const [k, v] of st.tensors) if (net.model.graph.initializers.has(k)) net.model.graph.initializers.set(k, v);
      r = { ...st, stoppedEarly: st.history.length < p.epochs };
    }
    rd.savePhase(p.name, net.model, [...net.trainable, ...bufferNames(net.model)], r);
    history.push(...r.history.map((m) => ({ phase: p.name, ...m })));
    phaseInfo.push({ name: p.name, epochs: r.history.length, stoppedEarly: r.stoppedEarly, resumed: false });
  }

  // The model is written first: a final evaluation that runs out of memory must not lose a finished training.
  const modelFile = path.join(rd.root, 'model.onnx');
  const extra = { version: graftVersion(), config: cfg, metrics: { history }, phases: phaseInfo };
  net.save(modelFile, extra);
  // evaluated at the training batch size (the run proved it fits), on the cached features in head mode
  const bs = cfg.train.batchSize;
  const metrics: TrainSummary['metrics'] = {};
  if (val) metrics.val = pickLossAcc(await net.evaluate(val, bs));
  if (test) metrics.test = pickLossAcc(await net.evaluate(test, bs));
  const bad = Object.entries(metrics).filter(([, m]) => !Number.isFinite(m.loss) || !Number.isFinite(m.acc));
  if (bad.length) {
    for (const f of [modelFile, modelFile.replace(/\.onnx$/, '.json')]) fs.rmSync(f, { force: true });
    const what = bad.map(([k, m]) => `${k} loss ${m.loss}, ${k} acc ${m.acc}`).join('; ');
    throw new Error(
      `The trained model's final metrics are not finite (${what}): its outputs are NaN or infinite, so model.onnx was not kept. ${rd.lastGoodCheckpoint(phases.map((p) => p.name))}`,
    );
  }
  if (val && data.val?.kind === 'files') {
    const { probabilities } = await net.predict(val, bs);
    const { argmaxRows } = await import('../../report/metrics.js');
    const pred = argmaxRows({ probabilities, classes: K });
    const paths = (val as unknown as { paths: readonly string[]; labels: Int32Array }).paths;
    const labels = (val as unknown as { labels: Int32Array }).labels;
    const rows = paths.map((p, i) => {
      const pr = Array.from(probabilities.subarray(i * K, (i + 1) * K));
      return { path: p, label: data.classes[labels[i]!], pred: data.classes[pred[i]!], probabilities: pr };
    });
    rd.writeJsonl('predictions.jsonl', rows);
  }
  const full = { ...extra, metrics: { ...metrics, history } };
  net.writeSidecar(modelFile, full);
  if (cfg.run.export) net.save(cfg.run.export, full);
  return {
    run: rd.root,
    model: modelFile,
    export: cfg.run.export,
    classes: data.classes,
    samples: { train: train.length, val: val?.length ?? 0, test: test?.length ?? 0 },
    phases: phaseInfo,
    metrics,
    history,
  };
}

function pickLossAcc(r: { loss: number; acc: number }): { loss: number; acc: number } {
  return { loss: r.loss, acc: r.acc };
}

/** Human-readable summary of a run. */
export function formatSummary(s: TrainSummary): string[] {
  const f = (v: number | string | undefined) => (typeof v === 'number' ? v.toFixed(4) : '-');
  const lines = [`run ${s.run}: ${s.classes.length} classes (${s.classes.slice(0, 10).join(', ')}${s.classes.length > 10 ? ', …' : ''})`];
  lines.push(`  samples    train ${s.samples.train}, val ${s.samples.val}, test ${s.samples.test}`);
  for (const p of s.phases)
    lines.push(`  phase      ${p.name}: ${p.epochs} epoch(s)${p.stoppedEarly ? ', stopped early' : ''}${p.resumed ? ' (restored from checkpoint)' : ''}`);
  const last = s.history.at(-1);
  if (last) lines.push(`  last epoch train_loss ${f(last.train_loss)} train_acc ${f(last.train_acc)} val_loss ${f(last.val_loss)} val_acc ${f(last.val_acc)}`);
  if (s.metrics.val) lines.push(`  final val  loss ${f(s.metrics.val.loss)} acc ${f(s.metrics.val.acc)}`);
  if (s.metrics.test) lines.push(`  test       loss ${f(s.metrics.test.loss)} acc ${f(s.metrics.test.acc)}`);
  lines.push(`  wrote      ${s.model} (+ model.json, metrics.jsonl)${s.export ? ` and ${s.export}` : ''}`);
  return lines;
}
