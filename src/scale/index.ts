/** Scale-out on BullMQ (issue 20): workers, distributed feature extraction and tuning, queue status, the shared storage seam. */
export { EXTRACT_QUEUE, QUEUE_PREFIX, redisConnection, TUNE_QUEUE } from './connection.js';
export { type DistributedOptions, type DistributedResult, distributedFeatures } from './extract.js';
export { type QueueStatus, queueStatus } from './status.js';
export { type FeatureStorage, LocalFeatureStorage } from './storage.js';
export { type DistributedTuneOptions, distributedTune, QueueExecutor, type QueueExecutorOptions } from './tune.js';
export { type GraftWorker, startWorker, type WorkerOptions } from './worker.js';
