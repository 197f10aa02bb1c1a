/**
 * Distributed feature extraction (the coordinator's side): shards the file list into jobs of a BullMQ flow whose
 * parent checks that the shared store holds every shard's rows, waits for it, then reads the features back
 * through the same `cachedFeatures` a local run uses (every row is a hit). The result is therefore the local
 * result: same rows, same order, same failed files.
 */
import { FlowProducer, QueueEvents } from 'bullmq';
import { type PreprocessConfigInput, parsePreprocessConfig } from '../data/preprocess.js';
import type { CachedResult } from '../features/cache.js';
import { featureStoreKey } from '../features/cache.js';
import { planExtraction } from '../features/extract.js';
import type { Model } from '../ir/model.js';
import { encodeModel } from '../onnx/io.js';
import type { OnTaskProgress } from '../util/progress.js';
import { checkReachable, EXTRACT_QUEUE, QUEUE_PREFIX, redisConnection } from './connection.js';
import { ASSEMBLE_JOB, type AssembleJobData, type AssembleResult, EXTRACTOR_OBJECT, SHARD_JOB, type ShardJobData } from './jobs.js';
import { type FeatureStorage, openFeatureStorage } from './storage.js';

/** Options of {@link distributedFeatures}. */
export interface DistributedOptions {
  /** The Redis server, `redis://host:port`. */
  queue: string;
  /** A feature extractor (one input, one output). */
  model: Model;
  preprocess: PreprocessConfigInput;
  /** Image files (paths every worker sees), in the order of the result rows. */
  items: readonly { path: string }[];
  /** Files per shard job (default 256). */
  shardSize?: number;
  /** Images per inference batch on the workers (default 32). */
  batchSize?: number;
  /**
   * The shared store: a {@link FeatureStorage}, or a `--store` value (a folder, or `s3://bucket/prefix` with
   * `s3Endpoint`) opened by `openFeatureStorage` (default: the cache folder `cacheDir`, which every worker must see at the same path).
   */
  storage?: FeatureStorage | string;
  /** The S3-compatible server when `storage` is an `s3://` URL (default: env AWS_ENDPOINT_URL_S3, else AWS). */
  s3Endpoint?: string;
  /** Cache root for the default storage, and of an S3 store's local mirror (default: GRAFT_CACHE_DIR, else ./.graft-cache). */
  cacheDir?: string;
  /** Tries per shard before the extraction fails (default 3). */
  attempts?: number;
  /** Progress: "extracting shards" (shards done of all), then the local read-back's tasks. */
  onTaskProgress?: OnTaskProgress;
  /** Warning sink (default console.warn). */
  onWarning?: (message: string) => void;
}

/** Result of {@link distributedFeatures}: `cachedFeatures`'s, plus the flow's parent job id. */
export interface DistributedResult extends CachedResult {
  job: string;
}

/**
 * Computes features on the queue's workers into the shared store, then returns them as `cachedFeatures` would.
 * @throws when the flow fails (a shard failed all its attempts), naming the job and its error.
 */
export async function distributedFeatures(opts: DistributedOptions): Promise<DistributedResult> {
  const cfg = parsePreprocessConfig(opts.preprocess, 'distributedFeatures preprocessing config');
  const batchSize = opts.batchSize ?? 32;
  await checkReachable(opts.queue);
  planExtraction(opts.model, cfg, batchSize);
  const storage =
    typeof opts.storage === 'object' ? opts.storage : await openFeatureStorage(opts.storage, { s3Endpoint: opts.s3Endpoint, cacheDir: opts.cacheDir });
  await storage.check(); // a missing bucket, denied access or unreachable server: one clear error before any job is queued
  const store = featureStoreKey(opts.model, opts.model.graph.outputs[0]!.name, cfg);
  await storage.putObject(store, EXTRACTOR_OBJECT, encodeModel(opts.model));
  const files = opts.items.map((i) => i.path);
  const size = opts.shardSize ?? 256;
  if (!Number.isInteger(size) || size < 1) throw new Error(`distributedFeatures: shardSize must be a positive integer, got ${size}.`);
  const shards: ShardJobData[] = [];
  for (let i = 0; i < files.length; i += size) shards.push({ store, storage: storage.location, files: files.slice(i, i + size), preprocess: cfg, batchSize });

  const connection = redisConnection(opts.queue);
  const events = new QueueEvents(EXTRACT_QUEUE, { connection, prefix: QUEUE_PREFIX });
  const flows = new FlowProducer({ connection, prefix: QUEUE_PREFIX });
  try {
    await events.waitUntilReady();
    const jobOpts = { attempts: opts.attempts ?? 3, backoff: { type: 'exponential', delay: 500 } };
    const tree = await flows.add({
      name: ASSEMBLE_JOB,
      queueName: EXTRACT_QUEUE,
      data: { store, storage: storage.location, files: files.length } satisfies AssembleJobData,
      opts: jobOpts,
      children: shards.map((data) => ({ name: SHARD_JOB, queueName: EXTRACT_QUEUE, data, opts: { ...jobOpts, failParentOnFailure: true } })),
    });
    const parent = tree.job;
    const childIds = new Set((tree.children ?? []).map((c) => c.job.id!));
    let done = 0;
    const task = opts.onTaskProgress;
    task?.({ task: 'extracting shards', done: 0, total: shards.length, unit: 'shard' });
    events.on('completed', ({ jobId }) => {
      if (childIds.delete(jobId)) task?.({ task: 'extracting shards', done: ++done, total: shards.length, unit: 'shard' });
    });
    let assembled: AssembleResult;
    try {
      assembled = await parent.waitUntilFinished(events);
    } catch (e) {
      throw new Error(
        `distributed extraction ${parent.id} failed: ${(e as Error).message.replace(/\.+$/, '')}. See \`graft queue status --queue ${opts.queue}\`; fix the cause and run the extraction again (finished shards are kept in the store).`,
      );
    }
    const r = await storage.features({ model: opts.model, preprocess: cfg, items: opts.items, batchSize, onTaskProgress: task, onWarning: opts.onWarning });
    if (r.hits < r.indices.length)
      (opts.onWarning ?? console.warn)(
        `distributed extraction ${parent.id}: ${r.indices.length - r.hits} of the ${assembled.rows} rows the workers stored were not in ${storage.location} here and were computed on this machine; check that every machine sees the same shared storage.`,
      );
    return { ...r, job: parent.id! };
  } finally {
    await Promise.allSettled([flows.close(), events.close()]);
  }
}
