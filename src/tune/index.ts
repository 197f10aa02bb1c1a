/** Hyper-parameter search (`graft tune`): search spaces, samplers (random, grid, TPE), pruners (median, ASHA), parallel trial workers, the durable study log. */

export { loadTuneConfig, parseTuneConfig, studyFile, type TuneConfig, tuneConfigSchema } from './config.js';
export { errorText, isPruned, loadObjective, type Objective, type ObjectiveModule, type ObjectiveSpec, type TrialContext, TrialPruned } from './objective.js';
export { type Executor, InProcessExecutor, type ReportHandler, WorkerPool, type WorkerPoolOptions } from './pool.js';
export { type AshaOptions, AshaPruner, type MedianOptions, MedianPruner, makePruner, NoPruner, type Pruner, type PrunerConfig } from './pruners.js';
export { formatSummary, type Importance, importances, type StudySummary, summarize } from './report.js';
export { poolSize, type RunTuneOptions, runTune } from './run.js';
export { GridSampler, makeSampler, RandomSampler, type Sampler, type SamplerConfig } from './samplers.js';
export { gridOf, type JsonValue, type ParamSpec, type Params, parseSpace, type SearchSpace, spaceHash } from './space.js';
export { readStudy, STUDY_FORMAT, type StudyContents, type StudyEvent, StudyLog } from './storage.js';
export { bestTrial, runStudy, type StudyOptions, type StudyResult } from './study.js';
export { type TpeOptions, TpeSampler } from './tpe.js';
export type { Direction, StudyIdentity, TrialJob, TrialOutcome, TrialRecord, TrialState } from './types.js';
