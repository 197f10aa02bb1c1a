/**
 * The learning-rate range test of a training config, as the run layer runs it for every surface: the config's
 * data (train split only) and network, in the configured recipe's first phase, then {@link lrFind} and its plot.
 */

import path from 'node:path';
import { renderVegaLite } from '../report/plot.js';
import { setDefaultDevice } from '../runtime/device.js';
import { setDefaultThreads } from '../runtime/threads.js';
import { type LrFindPoint, type LrFindResult, lrFind, lrFindChart } from '../train/lr-find.js';
import { phasesOf } from '../train/recipes.js';
import { atomicWrite } from '../util/atomic-write.js';
import type { TaskProgress } from '../util/progress.js';
import { type ConfigFileInfo, configFileNote, type GraftConfig } from './config.js';
import type { RunListener } from './events.js';
import { buildNetwork, loadRunData, makeLoss, makeOptimizer, makeSource } from './setup.js';
import { runFolder } from './train.js';

/** Options of {@link runLrFind}. */
export interface RunLrFindOptions {
  /** Where the config came from, for messages. */
  source: string;
  /** The config file merged into the config, if any: the test says so (a note) and its result records it as `source`. */
  configFile?: ConfigFileInfo;
  /** Run name when run.name is not set: the plot goes to runs/<name>/lr-find.png unless lrFind.plot is set. */
  defaultName?: string;
  /** Receives notes and warnings. */
  onEvent?: RunListener;
  /** Each step of the test. */
  onStep?: (p: LrFindPoint) => void;
}

/** Runs the LR range test of a config; returns its result and the path of the PNG plot it wrote. */
export async function runLrFind(cfg: GraftConfig, opts: RunLrFindOptions): Promise<LrFindResult & { plot: string; source: string }> {
  const emit = opts.onEvent ?? (() => {});
  if (opts.configFile) emit({ type: 'note', message: configFileNote(opts.configFile) });
  const io = { warn: (message: string) => emit({ type: 'warning', message }), progress: (t: TaskProgress) => emit({ type: 'progress', ...t }) };
  if (cfg.run.threads) setDefaultThreads(cfg.run.threads);
  if (cfg.run.device) setDefaultDevice(cfg.run.device);
  const data = await loadRunData({ ...cfg, data: { ...cfg.data, valSplit: 0, val: undefined, test: undefined } }, io);
  const { net, preprocess } = await buildNetwork(cfg, data.classes, {
    mnist: data.train.kind === 'arrays',
    source: opts.source,
    onNote: (message) => emit({ type: 'note', message }),
    onWarning: io.warn,
    trainTexts: data.train.kind === 'texts' ? data.train.texts : undefined,
  });
  const K = data.classes.length;
  const train = await makeSource(data.train, preprocess, K, { strict: cfg.run.strict, io, augment: cfg.train.augment });
  // the test runs in the configured recipe's first phase: the head alone, except in full / last-stages modes
  const first = phasesOf(cfg.train)[0]!;
  first.setup(net);
  const lf = cfg.lrFind;
  emit({
    type: 'note',
    message: `LR range test: ${lf.startLr} → ${lf.endLr} over ${lf.steps} steps, batch ${cfg.train.batchSize}, ${cfg.train.optimizer.name}`,
  });
  const r = await lrFind(net, train, {
    batchSize: cfg.train.batchSize,
    optimizer: (lr) => makeOptimizer({ ...cfg.train.optimizer, lr }),
    startLr: lf.startLr,
    endLr: lf.endLr,
    steps: lf.steps,
    divergence: lf.divergence,
    loss: makeLoss(cfg, data.train.labels, K),
    seed: cfg.run.seed,
    clipNorm: cfg.train.clipNorm,
    groups: first.groups,
    onStep: opts.onStep,
    onTaskProgress: io.progress,
  });
  const plot = path.resolve(lf.plot ?? path.join(runFolder(cfg, opts.defaultName), 'lr-find.png'));
  atomicWrite(plot, (await renderVegaLite(lrFindChart(r))).png!);
  return { ...r, plot, source: opts.configFile?.path ?? opts.source };
}
