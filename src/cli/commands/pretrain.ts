/**
 * `graft pretrain --arch small-cnn|resnet18-style --width N --data <folder|mnist>`: trains a built-in
 * architecture from scratch on labelled source data and saves it as an ONNX backbone with a .json sidecar
 * (labels, preprocessing, feature cut) that `graft train --backbone` picks up. Same run folder, metrics,
 * checkpoints and --resume as `graft train`.
 */
import path from 'node:path';
import type { Command } from 'commander';
import { configFileOf, loadConfig } from '../../run/config.js';
import { runTraining } from '../../run/train.js';
import { emit } from '../context.js';
import { addConfigFlags, flagValues } from '../flags.js';
import { printRunEvents } from '../run-events.js';
import { formatSummary } from './train.js';

/** The config keys `graft pretrain` takes as flags. */
export const PRETRAIN_KEYS = [
  'data.train',
  'data.val',
  'data.valSplit',
  'data.test',
  'data.limit',
  'data.allowOutside',
  'data.classWeights',
  'model.arch',
  'model.width',
  'model.preprocess.size',
  'model.preprocess.channels',
  'train.epochs',
  'train.batchSize',
  'train.optimizer.name',
  'train.optimizer.lr',
  'train.optimizer.momentum',
  'train.optimizer.nesterov',
  'train.optimizer.weightDecay',
  'train.schedule.kind',
  'train.schedule.warmup',
  'train.labelSmoothing',
  'train.clipNorm',
  'train.earlyStopping.patience',
  'train.earlyStopping.monitor',
  'train.earlyStopping.enabled',
  'train.earlyStopping.restoreBest',
  'train.augment',
  'run.name',
  'run.dir',
  'run.resume',
  'run.checkpointEvery',
  'run.strict',
  'run.overwrite',
  'run.export',
];

/** Registers `graft pretrain`. */
export function register(program: Command): void {
  const cmd = program
    .command('pretrain')
    .description('train a built-in architecture (small-cnn, resnet18-style, lenet5) from scratch and save it as an ONNX backbone + sidecar')
    .addHelpText(
      'after',
      '\nExample: graft pretrain --arch small-cnn --width 16 --data mnist --epochs 2 --out small-cnn-mnist.onnx\nSee docs/cli/pretrain.md.',
    );
  addConfigFlags(cmd, PRETRAIN_KEYS).action(async (_opts: unknown, c: Command) => {
    const configFile = configFileOf(c.opts().config as string | undefined);
    const file = configFile?.path;
    const flags = flagValues(c, PRETRAIN_KEYS);
    const { config, source } = loadConfig({ file, flags, defaults: { 'train.epochs': 3 } });
    if (config.model.backbone || !config.model.arch)
      throw new Error(
        'graft pretrain trains a built-in architecture from scratch: give --arch (small-cnn, resnet18-style, lenet5) and no model.backbone; use graft train to fine-tune an ONNX backbone.',
      );
    const arch = config.model.arch === 'resnet18-style' ? 'resnet18' : config.model.arch;
    const dataName = config.data.train === 'mnist' ? 'mnist' : path.basename(config.data.train ?? config.data.manifest ?? 'data').replace(/\.\w+$/, '');
    const name = `pretrain-${arch}-${dataName}`;
    if (!config.run.export) config.run.export = path.resolve(`${arch}-${dataName}.onnx`);
    const summary = await runTraining(config, { source, configFile, pretrain: true, defaultName: name, onEvent: printRunEvents(c) });
    emit(c, summary, () => [
      ...formatSummary(summary),
      `  backbone   ${summary.export} (use it with: graft train --backbone ${path.relative(process.cwd(), summary.export!)} --data <folder>)`,
    ]);
  });
}
