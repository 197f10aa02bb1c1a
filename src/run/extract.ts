/**
 * `graft extract`: the features of a data set's images under a backbone, through the feature store, computed
 * here (`cachedFeatures`) or by `graft worker`s on a Redis queue (`distributedFeatures`); both give the same bytes.
 * The backbone and the data are built by the run layer exactly as `graft train` builds them (the one config
 * schema, the one cut rule), so a later `graft train` reads the same store.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { CachedResult } from '../features/cache.js';
import { extractSubgraph, featureCut } from '../ir/surgery.js';
import { atomicWrite } from '../util/atomic-write.js';
import type { OnTaskProgress } from '../util/progress.js';
import { parseConfig } from './config.js';
import { buildNetwork, loadRunData } from './setup.js';

/** Options of {@link extractRun}. */
export interface ExtractRunOptions {
  /** A folder of class folders or a manifest, as `data.train` of `graft train`. */
  data: string;
  /** A model file, registry name or run folder, as `model.backbone`. */
  backbone: string;
  /** The feature cut (default: the one cut rule). */
  cut?: string;
  /** Output folder: `features.f32` (little-endian float32 rows) and `index.json` (files, dims, failures). */
  out: string;
  /** Redis URL: computed by `graft worker`s instead of here. */
  queue?: string;
  /** Files per shard job with `queue` (default 256). */
  shardSize?: number;
  batchSize?: number;
  /** The shared feature storage: a folder, or `s3://bucket/prefix` (default: the cache folder `cacheDir`). */
  store?: string;
  /** The S3-compatible server of an `s3://` store (default: env AWS_ENDPOINT_URL_S3, else AWS). */
  s3Endpoint?: string;
  /** The cache root (the store when `store` is not given; an S3 store's local mirror goes under it). */
  cacheDir?: string;
  threads?: number;
  onTaskProgress?: OnTaskProgress;
  onWarning?: (message: string) => void;
  onNote?: (message: string) => void;
}

/** What {@link extractRun} wrote. */
export interface ExtractRunResult {
  out: string;
  rows: number;
  dims: number;
  failed: { path: string; error: string }[];
  /** The store the rows are in. */
  store: string;
}

/** Extracts, then writes the output folder (each file atomically). */
export async function extractRun(opts: ExtractRunOptions): Promise<ExtractRunResult> {
  const cfg = parseConfig(
    { data: { train: opts.data, valSplit: 0 }, model: { backbone: opts.backbone, ...(opts.cut ? { cut: opts.cut } : {}) } },
    'graft extract',
  );
  const warn = opts.onWarning ?? ((m: string) => process.emitWarning(m));
  const { classes, train } = await loadRunData(cfg, { warn, progress: opts.onTaskProgress });
  if (train.kind !== 'files')
    throw new Error(`graft extract: ${opts.data} is not a set of image files; extract works on images (a folder of class folders or a manifest).`);
  const { net, preprocess } = await buildNetwork(cfg, classes, {
    pretrain: true,
    source: `graft extract (backbone ${opts.backbone})`,
    onNote: opts.onNote,
    onWarning: warn,
  });
  if ('tokenizer' in preprocess) throw new Error(`graft extract: ${opts.backbone} is a text encoder; extract works on image backbones.`);
  const model = extractSubgraph(net.model, featureCut(net.model, opts.cut ?? net.cut).value);
  const items = train.paths.map((p) => ({ path: p }));
  const common = { model, preprocess, items, batchSize: opts.batchSize, cacheDir: opts.cacheDir, onTaskProgress: opts.onTaskProgress, onWarning: warn };
  let r: CachedResult;
  if (opts.queue) {
    const { distributedFeatures } = await import('../scale/extract.js');
    r = await distributedFeatures({ ...common, queue: opts.queue, shardSize: opts.shardSize, storage: opts.store, s3Endpoint: opts.s3Endpoint });
  } else if (opts.store !== undefined || opts.s3Endpoint !== undefined) {
    const { openFeatureStorage } = await import('../scale/storage.js');
    const storage = await openFeatureStorage(opts.store, { s3Endpoint: opts.s3Endpoint, cacheDir: opts.cacheDir });
    const { cacheDir: _, ...rest } = common;
    r = await storage.features({ ...rest, threads: opts.threads });
  } else {
    const { cachedFeatures } = await import('../features/cache.js');
    r = await cachedFeatures({ ...common, threads: opts.threads });
  }
  fs.mkdirSync(opts.out, { recursive: true });
  atomicWrite(path.join(opts.out, 'features.f32'), new Uint8Array(r.features.buffer, r.features.byteOffset, r.features.byteLength));
  const failed = r.failed.map((f) => ({ path: f.path, error: f.error.message }));
  const index = {
    dims: r.dims,
    rows: r.indices.length,
    files: Array.from(r.indices, (i) => items[i]!.path),
    labels: Array.from(r.indices, (i) => classes[train.labels[i]!]),
    failed,
  };
  atomicWrite(path.join(opts.out, 'index.json'), `${JSON.stringify(index, null, 1)}\n`);
  return { out: opts.out, rows: index.rows, dims: r.dims, failed, store: r.store };
}
