/** Scale-out on BullMQ (issue 20): workers, distributed feature extraction, queue status, the shared storage seam. */
export { EXTRACT_QUEUE, QUEUE_PREFIX, redisConnection } from './connection.js';
export { type DistributedOptions, type DistributedResult, distributedFeatures } from './extract.js';
export { type QueueStatus, queueStatus } from './status.js';
export { type FeatureStorage, LocalFeatureStorage } from './storage.js';
export { type GraftWorker, startWorker, type WorkerOptions } from './worker.js';
