/**
 * `graft lr-find [--config graft.yaml] [flags]`: the learning-rate range test on the model and data of a
 * training config. Trains a copy of the network for ~100 steps with an exponentially growing LR, prints a
 * table, writes a PNG plot of loss vs LR and suggests an LR (steepest descent, or minimum / 10).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { findConfigFile, loadConfig } from '../../run/config.js';
import { emit } from '../context.js';
import { addConfigFlags, flagValues } from '../flags.js';
import { commandIo } from './train.js';

/** Registers `graft lr-find`. */
export function register(program: Command): void {
  const cmd = program
    .command('lr-find')
    .description('learning-rate range test: loss vs exponentially growing LR on a copy of the model; prints a table, writes a plot, suggests an LR')
    .addHelpText('after', '\nTakes the same config and flags as graft train (the first training phase is tested). See docs/cli/lr-find.md.');
  addConfigFlags(cmd).action(async (_opts: unknown, c: Command) => {
    const file = findConfigFile(c.opts().config as string | undefined);
    const { config: cfg, source } = loadConfig({ file, flags: flagValues(c) });
    if (cfg.run.threads) (await import('../../runtime/threads.js')).setDefaultThreads(cfg.run.threads);
    const io = commandIo(c);
    const setup = await import('../../run/setup.js');
    const { lrFind, lrFindChart, formatLrTable } = await import('../../train/lr-find.js');
    const { renderVegaLite } = await import('../../report/plot.js');
    const { atomicWrite } = await import('../../util/atomic-write.js');
    const { createProgress } = await import('../../util/progress.js');

    const data = await setup.loadRunData({ ...cfg, data: { ...cfg.data, valSplit: 0, val: undefined, test: undefined } }, io);
    const { net, preprocess } = await setup.buildNetwork(cfg, data.classes, { mnist: data.train.kind === 'arrays', source });
    const K = data.classes.length;
    const train = await setup.makeSource(data.train, preprocess, K, { strict: cfg.run.strict, io, augment: cfg.train.augment });
    // the first phase of the configured training: the head alone, except in full / last-stages modes
    const mode = cfg.train.mode;
    if (mode === 'full' || (mode === 'fine-tune' && cfg.train.freezeEpochs === 0)) net.unfreeze();
    else if (mode === 'last-stages') net.unfreeze({ lastStages: cfg.train.lastStages });
    const lf = cfg.lrFind;
    io.note(`LR range test: ${lf.startLr} → ${lf.endLr} over ${lf.steps} steps, batch ${cfg.train.batchSize}, ${cfg.train.optimizer.name}`);
    const bar = createProgress({ total: lf.steps, label: 'lr-find', unit: 'step' });
    const r = await lrFind(net, train, {
      batchSize: cfg.train.batchSize,
      optimizer: (lr) => setup.makeOptimizer({ ...cfg.train.optimizer, lr }),
      startLr: lf.startLr,
      endLr: lf.endLr,
      steps: lf.steps,
      divergence: lf.divergence,
      loss: setup.makeLoss(cfg, data.train.labels, K),
      seed: cfg.run.seed,
      clipNorm: cfg.train.clipNorm,
      groups: mode === 'fine-tune' && cfg.train.freezeEpochs === 0 ? 'discriminative' : 'single',
      onStep: (p) => bar.tick(1, { lr: p.lr, loss: p.smoothed }),
    }).finally(() => bar.done());
    const plot = lf.plot ?? path.join(cfg.run.dir, cfg.run.name ?? (file ? path.basename(file).replace(/\.(ya?ml|json)$/i, '') : 'train'), 'lr-find.png');
    const chart = await renderVegaLite(lrFindChart(r));
    atomicWrite(plot, chart.png!);
    const s = r.suggestion;
    const why =
      s.method === 'steepest' ? 'steepest descent of the smoothed loss' : 'lowest smoothed loss / 10 (the loss never clearly descended before its minimum)';
    const report = { ...r, plot: path.resolve(plot) };
    emit(c, report, () => [
      ...formatLrTable(r.points),
      '',
      `stopped: ${r.stop === 'completed' ? `after ${r.points.length} steps` : r.stop === 'diverged' ? `loss exceeded ${lf.divergence}× its best at lr ${r.points.at(-1)!.lr.toExponential(2)}` : 'the loss became NaN/Inf'}`,
      `minimum smoothed loss ${s.min.loss.toFixed(4)} at lr ${s.min.lr.toExponential(2)}${s.steepest ? `; steepest descent at lr ${s.steepest.toExponential(2)}` : ''}`,
      `suggested lr: ${s.lr.toExponential(2)} (${why})`,
      `plot: ${path.resolve(plot)}${fs.existsSync(plot) ? '' : ' (not written)'}`,
      `use it: graft train ... --lr ${Number(s.lr.toPrecision(2))}`,
    ]);
  });
}
