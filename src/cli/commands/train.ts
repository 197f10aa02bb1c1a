/**
 * `graft train [--config graft.yaml] [flags]`: transfer learning end to end. Loads the data (image folder,
 * manifest or MNIST) and splits it, loads the ONNX backbone (or builds a built-in one), grafts a new head,
 * trains it in the chosen mode with early stopping and atomic checkpoints in runs/<name>/, and writes
 * runs/<name>/model.onnx + model.json. `--resume` continues a killed run exactly. The run itself is the run
 * layer's (src/run/train.ts); this command parses flags and prints the run's events.
 */
import type { Command } from 'commander';
import { configFileOf, defaultRunName, loadConfig } from '../../run/config.js';
import type { TrainSummary } from '../../run/events.js';
import { emit } from '../context.js';
import { addConfigFlags, flagValues } from '../flags.js';
import { printRunEvents } from '../run-events.js';

/** Registers `graft train`. */
export function register(program: Command): void {
  const cmd = program
    .command('train')
    .description('train a classifier on an image folder/manifest: graft a head on an ONNX backbone, fine-tune, export runs/<name>/model.onnx')
    .addHelpText('after', '\nEvery flag has a config key (shown in brackets); flags override graft.yaml. See docs/cli/train.md and docs/config.md.');
  addConfigFlags(cmd).action(async (_opts: unknown, c: Command) => {
    const configFile = configFileOf(c.opts().config as string | undefined);
    const file = configFile?.path;
    const { config, source } = loadConfig({ file, flags: flagValues(c) });
    const { runTraining } = await import('../../run/train.js');
    const defaultName = defaultRunName(file);
    const summary = await runTraining(config, { source, configFile, defaultName, onEvent: printRunEvents(c) });
    emit(c, summary, () => formatSummary(summary));
  });
}

/** Human-readable summary of a run. */
export function formatSummary(s: TrainSummary): string[] {
  const f = (v: number | string | undefined) => (typeof v === 'number' ? v.toFixed(4) : '-');
  const lines = [`run ${s.run}: ${s.classes.length} classes (${s.classes.slice(0, 10).join(', ')}${s.classes.length > 10 ? ', …' : ''})`];
  lines.push(`  samples    train ${s.samples.train}, val ${s.samples.val}, test ${s.samples.test}`);
  for (const p of s.phases)
    lines.push(
      `  phase      ${p.name}: ${p.epochs} epoch(s)${p.stoppedEarly ? ', stopped early' : ''}${p.resumed ? ' (restored from checkpoint)' : ''}${
        p.restoredEpoch !== undefined ? `; restored epoch ${p.restoredEpoch} (best ${p.monitor})` : ''
      }`,
    );
  const a = s.auto;
  if (a)
    lines.push(
      `  auto       budget ${a.budget} s, took ${a.seconds} s: ${a.search.trials.length} head trial(s), best #${a.search.best}; last-stages fine-tune ${
        a.fineTune.ran ? (a.fineTune.kept ? 'kept' : 'not kept') : 'skipped'
      }${a.fineTune.reason ? ` (${a.fineTune.reason})` : ''}; saved the ${a.chosen === 'head' ? 'best head' : 'fine-tuned model'}`,
    );
  const last = s.history.at(-1);
  if (last) lines.push(`  last epoch train_loss ${f(last.train_loss)} train_acc ${f(last.train_acc)} val_loss ${f(last.val_loss)} val_acc ${f(last.val_acc)}`);
  if (s.metrics.val) lines.push(`  final val  loss ${f(s.metrics.val.loss)} acc ${f(s.metrics.val.acc)}`);
  if (s.metrics.test) lines.push(`  test       loss ${f(s.metrics.test.loss)} acc ${f(s.metrics.test.acc)}`);
  const c = s.calibration;
  if (c)
    lines.push(
      `  calibrated temperature ${c.temperature.toFixed(3)} on val: ECE ${(c.before.ece * 100).toFixed(2)}% -> ${(c.after.ece * 100).toFixed(2)}%, NLL ${f(c.before.nll)} -> ${f(c.after.nll)}`,
    );
  lines.push(`  wrote      ${s.model} (+ model.json, metrics.jsonl${s.report ? ', report.html' : ''})${s.export ? ` and ${s.export}` : ''}`);
  return lines;
}
