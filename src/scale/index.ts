/** Scale-out on BullMQ (issue 20): workers, distributed feature extraction and tuning, queue status, the shared storage seam. */
export { EXTRACT_QUEUE, QUEUE_PREFIX, redisConnection, TUNE_QUEUE } from './connection.js';
export { type DistributedOptions, type DistributedResult, distributedFeatures } from './extract.js';
export { parseS3Url, S3FeatureStorage, type S3StorageOptions } from './s3-storage.js';
export { type QueueStatus, queueStatus } from './status.js';
export { type FeatureStorage, LocalFeatureStorage, type OpenStorageOptions, openFeatureStorage } from './storage.js';
export { type DistributedTuneOptions, distributedTune, QueueExecutor, type QueueExecutorOptions } from './tune.js';
export { type GraftWorker, startWorker, type WorkerOptions } from './worker.js';
