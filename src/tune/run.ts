/**
 * Runs a study from a tune config: checks the study log, prepares the objective (the built-in graft
 * objective computes cached features once), sizes the worker pool to the machine, runs the study, and
 * stops the workers. Shared by `graft tune` and the benchmarks.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ProgressOptions } from '../util/progress.js';
import { studyFile, type TuneConfig } from './config.js';
import type { ObjectiveSpec } from './objective.js';
import { type Executor, InProcessExecutor, WorkerPool } from './pool.js';
import { makePruner } from './pruners.js';
import { makeSampler } from './samplers.js';
import { canonicalJson } from './space.js';
import { checkCompatible, readStudy } from './storage.js';
import { runStudy, type StudyResult } from './study.js';
import type { StudyIdentity } from './types.js';

/** Where notes and warnings go. */
export interface TuneIo {
  note(message: string): void;
  warn(message: string): void;
}

/** Options of {@link runTune}. */
export interface RunTuneOptions {
  resume?: boolean;
  io?: TuneIo;
  signal?: AbortSignal;
  progress?: ProgressOptions | false;
  /** Called once the executor exists (tests read the worker pids from it). */
  onExecutor?: (e: Executor) => void;
  onTrialEnd?: Parameters<typeof runStudy>[0]['onTrialEnd'];
  /**
   * Where trials run instead of local worker processes (distributed tuning: src/scale's queue executor). Given the
   * prepared objective and the configured pool size; the study loop, sampler, pruner and log stay here.
   */
  executor?: (spec: ObjectiveSpec, size: { workers: number; threads: number }) => Promise<Executor>;
}

const quietIo: TuneIo = { note: () => {}, warn: (m) => process.stderr.write(`warning: ${m}\n`) };

/** Workers and threads per worker: `workers × threads` ≈ the cores (defaults: one single-threaded worker per core). */
export function poolSize(cfg: TuneConfig, cores = os.availableParallelism?.() ?? os.cpus().length): { workers: number; threads: number } {
  const workers = cfg.study.workers ?? Math.max(1, Math.floor(cores / (cfg.study.threadsPerWorker ?? 1)));
  const threads = cfg.study.threadsPerWorker ?? Math.max(1, Math.floor(cores / Math.max(1, workers)));
  return { workers, threads };
}

/** The identity of a config's study (for the compatibility check on resume). */
export function identityOf(cfg: TuneConfig, objectiveKey: string): StudyIdentity {
  return { name: cfg.study.name, space: cfg.space, direction: cfg.direction, metric: cfg.study.metric, objective: objectiveKey };
}

/** Fails fast (before any expensive preparation) when the log exists without --resume, or was made for another study. */
export function precheckStudy(file: string, identity: StudyIdentity, resume: boolean): number {
  if (!fs.existsSync(file) || fs.statSync(file).size === 0) return 0;
  const old = readStudy(file);
  if (!resume)
    throw new Error(
      `The study ${file} already exists (${old.trials.size} trials). Pass --resume to continue it, or choose another study.name (or delete ${path.dirname(file)}) to start over.`,
    );
  checkCompatible(file, old.identity, identity);
  return old.trials.size;
}

/** Runs or resumes the study of a tune config. */
export async function runTune(cfg: TuneConfig, opts: RunTuneOptions = {}): Promise<StudyResult & { file: string; workers: number; threads: number }> {
  const io = opts.io ?? quietIo;
  const file = studyFile(cfg);
  const dir = path.dirname(file);
  let objectiveKey: string;
  let prepare: () => Promise<ObjectiveSpec>;
  if (cfg.objective.config) {
    const { objectiveGraftConfig, prepareGraftObjective } = await import('./graft-prepare.js');
    const { cfg: g } = objectiveGraftConfig(cfg);
    const fp = createHash('sha256')
      .update(canonicalJson({ data: g.data, model: g.model, train: g.train, seed: g.run.seed }))
      .digest('hex')
      .slice(0, 12);
    objectiveKey = `graft:${fp}`;
    prepare = async () => (await prepareGraftObjective(cfg, dir, io)).spec;
  } else {
    objectiveKey = `module:${cfg.objective.module}`;
    prepare = async () => ({ module: cfg.objective.module!, options: cfg.objective.options });
  }
  const identity = identityOf(cfg, objectiveKey);
  const existing = precheckStudy(file, identity, !!opts.resume);
  if (opts.resume && existing) io.note(`resuming ${file} (${existing} trials recorded)`);
  const sampler = makeSampler(cfg.sampler, cfg.space, cfg.direction, cfg.study.seed);
  const pruner = makePruner(cfg.pruner, cfg.direction);
  const trials = cfg.study.trials ?? (sampler.size !== undefined ? sampler.size : 50);
  if (sampler.size !== undefined && trials > sampler.size)
    throw new Error(
      `study.trials is ${trials}, but the grid has only ${sampler.size} combinations. Lower study.trials or remove it (a grid study runs every combination).`,
    );
  const spec = await prepare();
  const size = poolSize(cfg);
  const executor: Executor = opts.executor
    ? await opts.executor(spec, size)
    : size.workers === 0
      ? new InProcessExecutor(spec, size.threads)
      : new WorkerPool({ workers: size.workers, threads: size.threads, objective: spec });
  const workers = opts.executor ? executor.slots : size.workers;
  const threads = size.threads;
  opts.onExecutor?.(executor);
  io.note(
    `${trials} trials, ${cfg.sampler.name} sampler, ${cfg.pruner.name} pruner, ${
      executor.where ?? `${workers || 'no'} worker${workers === 1 ? '' : 's'} × ${threads} thread${threads === 1 ? '' : 's'}`
    }`,
  );
  try {
    const r = await runStudy({
      file,
      identity,
      sampler,
      pruner,
      executor,
      trials,
      resume: opts.resume,
      timeout: cfg.study.timeout,
      progress: opts.progress,
      signal: opts.signal,
      onTrialEnd: opts.onTrialEnd,
      onWarning: io.warn,
      settings: {
        sampler: cfg.sampler,
        pruner: cfg.pruner,
        workers,
        threads,
        seed: cfg.study.seed,
        trials,
        config: cfg.file,
        ...(executor.where && { where: executor.where }),
      },
    });
    if (r.rerun.length) io.note(`re-ran trial${r.rerun.length === 1 ? '' : 's'} ${r.rerun.join(', ')} (interrupted when the study was killed)`);
    return { ...r, file, workers, threads };
  } finally {
    await executor.close();
  }
}
