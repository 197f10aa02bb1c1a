/** `graft queue status`: what the extraction and tune queues hold and which workers are connected. */
import { Queue } from 'bullmq';
import { checkReachable, EXTRACT_QUEUE, QUEUE_PREFIX, redisConnection, type TUNE_QUEUE } from './connection.js';

/** Counts of one queue. */
export interface QueueStatus {
  queue: string;
  waiting: number;
  active: number;
  /** Waiting for a retry (backoff) or a delay. */
  delayed: number;
  /** Parents waiting for their shards. */
  waitingChildren: number;
  completed: number;
  failed: number;
  /** Jobs tried more than once (failed attempts retried, or taken back from a dead worker). */
  retried: number;
  /** Names of the workers connected now. */
  workers: string[];
}

/** Reads a queue's counts from Redis: the extraction queue (default) or the tune queue (`'tune'`). */
export async function queueStatus(url: string, name: typeof EXTRACT_QUEUE | typeof TUNE_QUEUE = EXTRACT_QUEUE): Promise<QueueStatus> {
  await checkReachable(url);
  const q = new Queue(name, { connection: redisConnection(url), prefix: QUEUE_PREFIX });
  try {
    const c = await q.getJobCounts('waiting', 'active', 'delayed', 'waiting-children', 'completed', 'failed', 'prioritized');
    const jobs = await q.getJobs(['active', 'completed', 'failed', 'waiting', 'delayed'], 0, 9999);
    const retried = jobs.filter((j) => (j.attemptsStarted ?? 0) > 1 || (j.attemptsMade ?? 0) > 1 || (j.stalledCounter ?? 0) > 0).length;
    // BullMQ names a worker's connection `<prefix>:<base64 queue>:w:<name>`
    const workers = (await q.getWorkers()).map((w) => String(w.rawname ?? w.name ?? w.addr ?? '?').replace(/^.*?:w:/, ''));
    return {
      queue: name,
      waiting: (c.waiting ?? 0) + (c.prioritized ?? 0),
      active: c.active ?? 0,
      delayed: c.delayed ?? 0,
      waitingChildren: c['waiting-children'] ?? 0,
      completed: c.completed ?? 0,
      failed: c.failed ?? 0,
      retried,
      workers,
    };
  } finally {
    await q.close();
  }
}
