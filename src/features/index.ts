/**
 * The feature path of the transfer-learning pipeline: the head-only decision and features of a source
 * (backbone.ts), pipelined extraction and a content-addressed on-disk cache.
 */

export {
  computeFeatures,
  type FeatureOptions,
  type HeadOnlyJob,
  type HeadOnlySplit,
  headOnlySplit,
  isAugmented,
  readStoredFeatures,
  type SourceFeatures,
  type StoredFeatures,
  sourceFeatures,
} from './backbone.js';

export {
  type CachedOptions,
  type CachedResult,
  cachedFeatures,
  canonicalJson,
  featureCacheDir,
  featureStoreKey,
  hashFile,
  sha256,
  writeStoreMeta,
} from './cache.js';
export {
  type Decoder,
  type ExtractOptions,
  type ExtractResult,
  extractFeatures,
  type FailedItem,
  type FeatureRows,
  type ProgressFn,
  planExtraction,
} from './extract.js';
export { InferenceWorker, type InferenceWorkerOptions, type WorkerRunResult } from './runner.js';
export { FeatureStore, ShardWriter, STORE_FORMAT } from './store.js';
