/**
 * The command registry. To add a command: create `src/cli/commands/<name>.ts` exporting
 * `register(program: Command)`, which adds one subcommand (lazy-import heavy modules such as
 * onnxruntime inside the action so `graft --help` stays fast), then list it here.
 */
import type { Command } from 'commander';
import * as adapt from './adapt.js';
import * as demo from './demo.js';
import * as evalCmd from './eval.js';
import * as exportCmd from './export.js';
import * as extract from './extract.js';
import * as importCmd from './import.js';
import * as inspect from './inspect.js';
import * as lrFind from './lr-find.js';
import * as models from './models.js';
import * as predict from './predict.js';
import * as pretrain from './pretrain.js';
import * as rankCmd from './rank.js';
import * as serve from './serve.js';
import * as shift from './shift.js';
import * as train from './train.js';
import * as tune from './tune.js';
import * as ui from './ui.js';
import * as worker from './worker.js';

/** A module contributing one CLI command. */
export interface CommandModule {
  register(program: Command): void;
}

/** Every command, in the order `graft --help` lists them. */
export const COMMANDS: CommandModule[] = [
  demo,
  inspect,
  predict,
  evalCmd,
  exportCmd,
  extract,
  train,
  pretrain,
  lrFind,
  tune,
  adapt,
  rankCmd,
  shift,
  importCmd,
  models,
  serve,
  ui,
  worker,
];
