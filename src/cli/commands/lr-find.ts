/**
 * `graft lr-find [--config graft.yaml] [flags]`: the learning-rate range test on the model and data of a
 * training config. Trains a copy of the network for ~100 steps with an exponentially growing LR, prints a
 * table, writes a PNG plot of loss vs LR and suggests an LR (fastai's valley rule; steepest descent and minimum / 10 as alternatives).
 */
import fs from 'node:fs';
import type { Command } from 'commander';
import { configFileOf, defaultRunName, loadConfig } from '../../run/config.js';
import { emit } from '../context.js';
import { addConfigFlags, flagValues } from '../flags.js';
import { printRunEvents } from '../run-events.js';

/** Registers `graft lr-find`. */
export function register(program: Command): void {
  const cmd = program
    .command('lr-find')
    .description('learning-rate range test: loss vs exponentially growing LR on a copy of the model; prints a table, writes a plot, suggests an LR')
    .addHelpText('after', '\nTakes the same config and flags as graft train (the first training phase is tested). See docs/cli/lr-find.md.');
  addConfigFlags(cmd).action(async (_opts: unknown, c: Command) => {
    const configFile = configFileOf(c.opts().config as string | undefined);
    const file = configFile?.path;
    const { config: cfg, source } = loadConfig({ file, flags: flagValues(c) });
    const { runLrFind } = await import('../../run/lr-find.js');
    const { formatLrTable } = await import('../../train/lr-find.js');
    const { createProgress } = await import('../../util/progress.js');
    const lf = cfg.lrFind;
    // started at the first step, after the validation and feature-extraction bars
    let bar: ReturnType<typeof createProgress> | undefined;
    const defaultName = defaultRunName(file);
    const r = await runLrFind(cfg, {
      source,
      configFile,
      defaultName,
      onEvent: printRunEvents(c),
      onStep: (p) => {
        bar ??= createProgress({ total: lf.steps, label: 'lr-find', unit: 'step' });
        bar.tick(1, { lr: p.lr, loss: p.smoothed });
      },
    }).finally(() => bar?.done());
    const s = r.suggestion;
    const why =
      s.method === 'valley'
        ? 'valley: halfway down the longest descent of the smoothed loss'
        : 'lowest smoothed loss / 10 (too few points for the valley rule)';
    emit(c, r, () => [
      ...formatLrTable(r.points),
      '',
      `stopped: ${r.stop === 'completed' ? `after ${r.points.length} steps` : r.stop === 'diverged' ? `loss exceeded ${lf.divergence}× its best at lr ${r.points.at(-1)!.lr.toExponential(2)}` : 'the loss became NaN/Inf'}`,
      `minimum smoothed loss ${s.min.loss.toFixed(4)} at lr ${s.min.lr.toExponential(2)}`,
      `alternatives: minimum / 10 ${s.minDiv10.toExponential(2)}${s.steepest ? `; steepest descent ${s.steepest.toExponential(2)}` : ''}`,
      `suggested lr: ${s.lr.toExponential(2)} (${why})`,
      `plot: ${r.plot}${fs.existsSync(r.plot) ? '' : ' (not written)'}`,
      `use it: graft train ... --lr ${Number(s.lr.toPrecision(2))}`,
    ]);
  });
}
