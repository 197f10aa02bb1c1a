/** The feature cache of the transfer-learning pipeline: pipelined extraction and a content-addressed on-disk cache. */

export { type CachedOptions, type CachedResult, cachedFeatures, canonicalJson, featureCacheDir, featureStoreKey, hashFile, sha256 } from './cache.js';
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
