/**
 * `graft worker`: takes feature-extraction shards and tune trials from the queue. Trials run in the local tune's
 * trial processes (src/scale/trial-runner.ts). Each shard
 * goes through `cachedFeatures` (onnxruntime in a worker thread, off the event loop, so BullMQ keeps the job's lock
 * alive), keyed by model, cut, preprocessing and file content: a shard that runs twice (at-least-once delivery, a
 * worker killed mid-job and its job retried) finds its rows or recomputes equal ones, and the store only ever
 * trusts rows whose data was fsynced before their index lines (src/features/store.ts).
 */
import { type Job, Worker } from 'bullmq';
import { featureStoreKey } from '../features/cache.js';
import type { Decoder } from '../features/extract.js';
import type { Model } from '../ir/model.js';
import { decodeModel } from '../onnx/io.js';
import { checkReachable, EXTRACT_QUEUE, QUEUE_PREFIX, redisConnection, TUNE_QUEUE, watchConnection } from './connection.js';
import {
  ASSEMBLE_JOB,
  type AssembleJobData,
  type AssembleResult,
  EXTRACTOR_OBJECT,
  SHARD_JOB,
  type ShardJobData,
  type ShardResult,
  TRIAL_JOB,
  type TrialJobData,
} from './jobs.js';
import { type FeatureStorage, type LocalFeatureStorage, openFeatureStorage } from './storage.js';
import { trialRunner } from './trial-runner.js';

/** Options of {@link startWorker}. */
export interface WorkerOptions {
  /** The Redis server, `redis://host:port`. */
  queue: string;
  /** Extraction jobs run at once (default 1: one extraction already uses every core). */
  concurrency?: number;
  /** Tune trials run at once, each in its own process (default 1). */
  trialConcurrency?: number;
  /** onnxruntime threads (default: all cores, or GRAFT_THREADS). */
  threads?: number;
  /** How long a job's lock lasts without renewal, in ms (BullMQ default 30 s); a dead worker's job is retried after it. */
  lockDuration?: number;
  /** How often stalled jobs (of dead workers) are looked for, in ms (default 30 s). */
  stalledInterval?: number;
  /**
   * The feature storage this worker serves (`--store`: a folder or `s3://bucket/prefix`), checked at start so a
   * machine that cannot reach it says so at once. Jobs carry their storage's location and are opened by it.
   */
  store?: string;
  /** The S3-compatible server for `s3://` stores (default: env AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, else AWS). */
  s3Endpoint?: string;
  /** Local cache root (for an S3 store's local mirror; default: GRAFT_CACHE_DIR, else ./.graft-cache). */
  cacheDir?: string;
  /** Opens the storage a job names (default: {@link openFeatureStorage}: a folder, {@link LocalFeatureStorage}, or `s3://…`). */
  storage?: (location: string) => FeatureStorage | Promise<FeatureStorage>;
  /** Replaces the image decoder (tests slow it down). */
  decoder?: Decoder;
  /** A name for `graft queue status` (default: host and pid). */
  name?: string;
  /** Connection lost / back notes (default console.warn). */
  onWarning?: (message: string) => void;
  /** Called on each finished or failed job. */
  onJob?: (e: { id: string; name: string; ok: boolean; error?: string; files?: number }) => void;
}

/** A running worker. */
export interface GraftWorker {
  /** Stops taking jobs, waits for the running ones to finish, and disconnects. */
  close(): Promise<void>;
  /** The BullMQ worker of extraction jobs (for its events). */
  readonly worker: Worker;
  /** The BullMQ worker of tune trials. */
  readonly trials: Worker;
}

/** Starts a worker on the extraction and tune queues. */
export async function startWorker(opts: WorkerOptions): Promise<GraftWorker> {
  await checkReachable(opts.queue);
  const opened = new Map<string, Promise<FeatureStorage>>(); // one client per storage, reused by every job
  const open = (loc: string, s3Endpoint?: string) =>
    Promise.resolve(opts.storage ? opts.storage(loc) : openFeatureStorage(loc, { s3Endpoint, cacheDir: opts.cacheDir }));
  const openStorage = (loc: string): Promise<FeatureStorage> => {
    let s = opened.get(loc);
    if (!s) {
      s = open(loc, loc.startsWith('s3://') ? opts.s3Endpoint : undefined);
      s.catch(() => opened.delete(loc));
      opened.set(loc, s);
    }
    return s;
  };
  if (opts.store !== undefined) {
    const s = await open(opts.store, opts.s3Endpoint);
    await s.check();
    opened.set(s.location, Promise.resolve(s));
  }
  const connection = redisConnection(opts.queue);
  const models = new Map<string, Model>();
  const modelOf = async (storage: FeatureStorage, store: string): Promise<Model> => {
    const key = `${storage.location}\n${store}`;
    let m = models.get(key);
    if (!m) {
      const bytes = await storage.getObject(store, EXTRACTOR_OBJECT);
      if (!bytes)
        throw new Error(
          `graft worker: the feature store ${store} in ${storage.location} has no ${EXTRACTOR_OBJECT}; this worker does not see the coordinator's storage. Mount the same shared folder at the same path on every machine, or point every machine at the same S3 server (--s3-endpoint).`,
        );
      m = decodeModel(bytes);
      models.set(key, m);
    }
    return m;
  };

  const processor = async (job: Job): Promise<ShardResult | AssembleResult> => {
    if (job.name === SHARD_JOB) {
      const d = job.data as ShardJobData;
      const storage = await openStorage(d.storage);
      const model = await modelOf(storage, d.store);
      const key = featureStoreKey(model, model.graph.outputs[0]!.name, d.preprocess);
      if (key !== d.store)
        throw new Error(
          `graft worker: the extractor in store ${d.store} hashes to ${key} with this job's preprocessing; the store is damaged. Delete it and extract again.`,
        );
      const warnings: string[] = [];
      const r = await storage.features({
        model,
        preprocess: d.preprocess,
        items: d.files.map((path) => ({ path })),
        batchSize: d.batchSize,
        threads: opts.threads,
        decoder: opts.decoder,
        onWarning: (m) => warnings.push(m),
        onProgress: (done, total) => void job.updateProgress(Math.round((100 * done) / total)).catch(() => {}),
      });
      for (const w of warnings) await job.log(w);
      return { hashes: r.keys, failed: r.failed.map((f) => ({ path: f.path, error: f.error.message })) };
    }
    if (job.name === ASSEMBLE_JOB) {
      const d = job.data as AssembleJobData;
      const storage = await openStorage(d.storage);
      const shards = Object.values(await job.getChildrenValues<ShardResult>());
      const hashes = [...new Set(shards.flatMap((s) => s.hashes))];
      const failed = shards.flatMap((s) => s.failed);
      const missing = await storage.missing(d.store, hashes);
      if (missing.length)
        throw new Error(
          `graft worker: ${missing.length} row(s) the shards reported are not in feature store ${d.store} at ${storage.location} (first ${missing[0]}); the shared storage is not the same on every machine, or it lost writes. Extract again.`,
        );
      const done = shards.reduce((a, s) => a + s.hashes.length + s.failed.length, 0);
      if (done !== d.files) throw new Error(`graft worker: the shards covered ${done} of ${d.files} files; extract again.`);
      return { rows: hashes.length, failed };
    }
    throw new Error(
      `graft worker: unknown job "${job.name}" on the ${EXTRACT_QUEUE} queue; this worker runs ${SHARD_JOB} and ${ASSEMBLE_JOB} jobs. Update graft on this machine.`,
    );
  };

  const common = {
    connection,
    prefix: QUEUE_PREFIX,
    // only the ones given: an explicit undefined would replace BullMQ's defaults
    ...(opts.lockDuration !== undefined && { lockDuration: opts.lockDuration }),
    ...(opts.stalledInterval !== undefined && { stalledInterval: opts.stalledInterval }),
    maxStalledCount: 3,
    name: opts.name ?? `${process.env.HOSTNAME ?? 'worker'}-${process.pid}`,
  };
  const worker = new Worker(EXTRACT_QUEUE, processor, { ...common, concurrency: opts.concurrency ?? 1 });
  const runner = trialRunner({ concurrency: opts.trialConcurrency ?? 1, threads: opts.threads });
  const trials: Worker = new Worker(
    TUNE_QUEUE,
    async (job: Job) => {
      if (job.name !== TRIAL_JOB)
        throw new Error(
          `graft worker: unknown job "${job.name}" on the ${TUNE_QUEUE} queue; this worker runs ${TRIAL_JOB} jobs. Update graft on this machine.`,
        );
      return runner.run(job as Job<TrialJobData>, await trials.backend.client);
    },
    { ...common, concurrency: opts.trialConcurrency ?? 1 },
  );
  for (const w of [worker, trials]) {
    w.on('completed', (job) => {
      const files = job.name === SHARD_JOB ? (job.data as ShardJobData).files.length : undefined;
      opts.onJob?.({ id: job.id!, name: job.name, ok: true, files });
    });
    w.on('failed', (job, err) => opts.onJob?.({ id: job?.id ?? '?', name: job?.name ?? '?', ok: false, error: err.message }));
    w.on('error', () => {}); // connection errors: said once below; ioredis reconnects
  }
  await Promise.all([worker.waitUntilReady(), trials.waitUntilReady()]);
  const watch = watchConnection(await worker.backend.client, opts.queue, `graft worker ${common.name}`, opts.onWarning ?? console.warn);
  return {
    worker,
    trials,
    close: async () => {
      watch.stop();
      await Promise.all([worker.close(), trials.close()]);
      await runner.close();
    },
  };
}
