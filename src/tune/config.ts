/**
 * tune.yaml / tune.json: what `graft tune` optimises and how, validated with zod. Sections:
 *
 * ```yaml
 * study:   { name: heads, dir: runs/tune, trials: 60, workers: 2, threadsPerWorker: 1, seed: 0, metric: val_acc }
 * sampler: { name: tpe, startup: 10, gamma: 0.15 }        # or random, grid
 * pruner:  { name: asha, minResource: 1, reductionFactor: 3 }   # or median, none
 * space:
 *   lr: { type: log-uniform, low: 1.0e-4, high: 1 }
 *   hidden: { type: categorical, choices: [[], [128], [256, 256]] }
 * objective:
 *   config: graft.yaml      # a graft training config (file or inline mapping) whose settings the parameters override
 *   # module: ./my-objective.ts, options: {...}   # or any objective module (see objective.ts)
 * ```
 *
 * Relative paths are resolved against the config file's folder. See docs/cli/tune.md.
 */
import path from 'node:path';
import { z } from 'zod';
import { readConfigFile } from '../run/config.js';
import { metricMode } from '../train/callbacks.js';
import { formatIssues, type SearchSpace, spaceSchema } from './space.js';
import type { Direction } from './types.js';

const posInt = z.number().int().positive();

const studySchema = z.strictObject({
  /** Study folder name under `dir` (holds study.jsonl and prepared features). */
  name: z
    .string()
    .regex(/^[\w.-]+$/, 'use letters, digits, ".", "_" and "-" only')
    .default('study'),
  dir: z.string().min(1).default('runs/tune'),
  /** Trials in total (default 50; a grid study runs every combination by default). */
  trials: posInt.optional(),
  /** Seconds after which no new trial starts (running ones finish). */
  timeout: z.number().positive().optional(),
  /** Trials in parallel, each in its own process (0: one at a time in the main process). Default: cores / threadsPerWorker. */
  workers: z.number().int().min(0).optional(),
  /** onnxruntime threads per worker. Default: cores / workers (at least 1). */
  threadsPerWorker: posInt.optional(),
  seed: z.number().int().min(0).default(0),
  /** The objective: a per-epoch metric of the trial (val_acc, val_loss, …). */
  metric: z.string().min(1).default('val_acc'),
  /** Default: minimize for metrics named like a loss or error, else maximize. */
  direction: z.enum(['maximize', 'minimize']).optional(),
});

const samplerSchema = z.discriminatedUnion('name', [
  z.strictObject({
    name: z.literal('tpe'),
    /** Random trials before TPE takes over. */
    startup: z.number().int().min(0).default(10),
    /** Fraction of finished trials in the good set. */
    gamma: z.number().gt(0).lt(1).default(0.15),
    candidates: posInt.default(24),
    priorWeight: z.number().positive().default(1),
  }),
  z.strictObject({ name: z.literal('random') }),
  z.strictObject({ name: z.literal('grid') }),
]);

const prunerSchema = z.discriminatedUnion('name', [
  z.strictObject({ name: z.literal('none') }),
  z.strictObject({
    name: z.literal('median'),
    startup: z.number().int().min(0).default(5),
    warmup: z.number().int().min(0).default(0),
    interval: posInt.default(1),
  }),
  z.strictObject({
    name: z.literal('asha'),
    minResource: z.number().positive().default(1),
    reductionFactor: z.number().min(2).default(3),
    minEarlyStoppingRate: z.number().int().min(0).default(0),
  }),
]);

const objectiveSchema = z
  .strictObject({
    /** A graft training config: a file path or an inline mapping with data/model/train/run sections. */
    config: z.union([z.string().min(1), z.record(z.string(), z.unknown())]).optional(),
    /** Or a module exporting createObjective(options). */
    module: z.string().min(1).optional(),
    /** Options passed to the module's createObjective. */
    options: z.unknown().optional(),
  })
  .refine((o) => !!o.config !== !!o.module, {
    message: 'give exactly one of objective.config (a graft training config) or objective.module (a custom objective)',
  });

/** The zod schema of a tune config. */
export const tuneConfigSchema = z.strictObject({
  study: studySchema.prefault({}),
  sampler: z.preprocess((v) => (typeof v === 'string' ? { name: v } : v), samplerSchema).prefault({ name: 'tpe' }),
  pruner: z.preprocess((v) => (typeof v === 'string' ? { name: v } : v), prunerSchema).prefault({ name: 'median' }),
  space: spaceSchema,
  objective: objectiveSchema,
});

/** A validated tune config with defaults filled in and paths resolved. */
export type TuneConfig = Omit<z.output<typeof tuneConfigSchema>, 'space'> & { space: SearchSpace; direction: Direction; file?: string };

/**
 * Validates a raw tune config.
 * @param source file name for messages; `baseDir` resolves relative paths (default: the file's folder, or the cwd).
 * @throws listing every invalid key (e.g. "space.lr: low (1) is greater than high (0.001); swap them.").
 */
export function parseTuneConfig(raw: unknown, source = 'tune config', baseDir = process.cwd()): TuneConfig {
  const r = tuneConfigSchema.safeParse(raw);
  if (!r.success) throw new Error(`Invalid tune config ${source}:\n${formatIssues(r.error.issues, '')}\nSee docs/cli/tune.md for every key.`);
  const c = r.data;
  const resolve = (p: string) => path.resolve(baseDir, p);
  const objective = { ...c.objective };
  if (typeof objective.config === 'string') objective.config = resolve(objective.config);
  if (objective.module) objective.module = resolve(objective.module);
  return {
    ...c,
    study: { ...c.study, dir: resolve(c.study.dir) },
    objective,
    space: c.space as SearchSpace,
    direction: c.study.direction ?? (metricMode(c.study.metric) === 'min' ? 'minimize' : 'maximize'),
    file: source,
  };
}

/** Reads and validates a tune config file (YAML or JSON). */
export function loadTuneConfig(file: string): TuneConfig {
  const raw = readConfigFile(file);
  return parseTuneConfig(raw, file, path.dirname(path.resolve(file)));
}

/** The study log path of a config: `<study.dir>/<study.name>/study.jsonl`. */
export function studyFile(cfg: Pick<TuneConfig, 'study'>): string {
  return path.join(cfg.study.dir, cfg.study.name, 'study.jsonl');
}
