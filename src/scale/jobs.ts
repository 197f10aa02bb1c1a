/** The data of graft's extraction jobs on the queue (JSON; every field is what a worker on another machine needs). */
import type { PreprocessConfig } from '../data/preprocess.js';

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
