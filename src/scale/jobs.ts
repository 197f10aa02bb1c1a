/** The data of graft's extraction and tune jobs on the queue (JSON; every field is what a worker on another machine needs). */
import type { PreprocessConfig } from '../data/preprocess.js';
import type { ObjectiveSpec } from '../tune/objective.js';
import type { TrialJob } from '../tune/types.js';

/** Job name of one shard of files. */
export const SHARD_JOB = 'shard';
/** Job name of the parent that checks the shards once all are done. */
export const ASSEMBLE_JOB = 'assemble';
/** Name of the extractor's ONNX bytes beside the store's shards (workers load the model from there). */
export const EXTRACTOR_OBJECT = 'extractor.onnx';

/** A shard: compute the features of these files into the shared store `store`. */
export interface ShardJobData {
  /** The feature store key (model × cut × preprocessing). */
  store: string;
  /** Where the shared stores are (a folder every worker sees at the same path). */
  storage: string;
  /** The image files (paths every worker sees). */
  files: string[];
  preprocess: PreprocessConfig;
  batchSize: number;
}

/** What a shard job returns. */
export interface ShardResult {
  /** Content hash of each file that has a row now. */
  hashes: string[];
  /** Files that could not be read or decoded, with why. */
  failed: { path: string; error: string }[];
}

/** The parent: `store` must hold a row for every hash its shards return. */
export interface AssembleJobData {
  store: string;
  storage: string;
  files: number;
}

/** What the parent job returns. */
export interface AssembleResult {
  rows: number;
  failed: { path: string; error: string }[];
}

/** Job name of one tune trial (queue {@link TUNE_QUEUE}). */
export const TRIAL_JOB = 'trial';

/** A trial: run the objective `spec` with the trial's parameters, reporting each rung to the coordinator. */
export interface TrialJobData {
  /** The study (its log file), for messages. */
  study: string;
  /** The objective module (a path every worker sees) and its options. */
  spec: ObjectiveSpec;
  job: TrialJob;
  /** onnxruntime threads of the trial (default: the worker's). */
  threads?: number;
  /** How long the worker waits for the coordinator's decision on a rung before it gives the trial up, in ms. */
  decisionTimeoutMs: number;
}

/**
 * The Redis key of the coordinator's prune decision on rung `step` of trial job `jobId` ("1": prune, "0": go on).
 * Keyed by job (study session, trial, attempt) and rung, so a job run twice reads the same decision.
 */
export function decisionKey(jobId: string, step: number): string {
  return `graft:tune-decision:${jobId}:${step}`;
}

/** A trial's rung report, kept in the job's progress until the coordinator decides. */
export interface RungReport {
  step: number;
  value: number;
}
