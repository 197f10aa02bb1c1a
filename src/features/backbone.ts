/**
 * The frozen-backbone feature path, the only one in graft (`Network.fit`, inference, `graft tune` and `adapt`
 * all go through it):
 *
 * - {@link headOnlySplit} decides whether a job trains or runs only the head, so the backbone's features can
 *   be computed once instead of every step;
 * - {@link sourceFeatures} computes the features of a batch source: image files through the on-disk feature
 *   store (keyed by model, cut, preprocessing and file contents, see cache.ts), in-memory arrays directly
 *   (and into the store too when another process must read them), texts through the same store (text.ts);
 * - {@link readStoredFeatures} reads such features back from the store by their keys, e.g. in a tune worker.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { WarnFn } from '../data/files.js';
import { ImageSource } from '../data/image-source.js';
import type { Model } from '../ir/model.js';
import { extractSubgraph, suffixFrom } from '../ir/surgery.js';
import { createSession, ort, runChecked } from '../runtime/session.js';
import { ArraySource, BatchBuffers, type BatchSource, batches } from '../step/batches.js';
import type { OnTaskProgress } from '../util/progress.js';
import { cachedFeatures, featureCacheDir, featureStoreKey, sha256, writeStoreMeta } from './cache.js';
import { FeatureStore } from './store.js';
import { TextSource, textFeatures } from './text.js';

const FEATURE_FEEDS = { what: 'feature extraction' };

/** What decides whether a job can run on features computed once. */
export interface HeadOnlyJob {
  /** The whole network (backbone + head). */
  model: Model;
  /** The value where the backbone's features end (`graft.cut`), if known. */
  cut?: string;
  /** Names of the parameters the job trains. */
  trainable: Iterable<string>;
  /** The inputs are augmented (or come in several views per sample): features computed once would be wrong. */
  augmented?: boolean;
}

/** A head-only job's two parts. */
export interface HeadOnlySplit {
  cut: string;
  /** The head: from the cut's features to the outputs. */
  head: Model;
  /** The frozen backbone: from the input to the cut (extracted on demand). */
  backbone(): Model;
}

/**
 * Whether `job` trains (or runs) only the head: a known cut, something trainable, every trainable parameter
 * after the cut, and unaugmented inputs. Then the backbone's features can be computed once (and cached).
 * @returns the backbone and head, or undefined when the job needs the whole network.
 */
export function headOnlySplit(job: HeadOnlyJob): HeadOnlySplit | undefined {
  const { model, cut } = job;
  if (!cut || job.augmented || !model.graph.has(cut)) return undefined;
  const trainable = [...job.trainable];
  if (trainable.length === 0) return undefined;
  let head: Model;
  try {
    head = suffixFrom(model, cut);
  } catch {
    return undefined;
  }
  if (!trainable.every((p) => head.graph.initializers.has(p))) return undefined;
  return { cut, head, backbone: () => extractSubgraph(model, cut) };
}

/** True when a batch source augments its samples (an image source with an augmentation config). */
export function isAugmented(src: BatchSource): boolean {
  return !!(src as { augment?: unknown }).augment;
}

/**
 * Where features live in the on-disk store, so another process can read them back
 * ({@link readStoredFeatures}); plain JSON, to pass to tune workers.
 */
export interface StoredFeatures {
  /** The store folder (absolute). */
  store: string;
  /** The store key of each row: the file's content hash (image files) or the input sample's hash (arrays). */
  keys: string[];
  /** The label of each row. */
  labels: number[];
  /** Values per row. */
  dims: number;
  numClasses?: number;
}

/** Options of {@link sourceFeatures}. */
export interface FeatureOptions {
  /** Samples per backbone run for in-memory sources (default 256). */
  batchSize?: number;
  /** Also put the features of in-memory sources in the on-disk store and return where (default false). */
  share?: boolean;
  /** Image files: throw on an unreadable or undecodable file instead of skipping it with a warning (default true). */
  strict?: boolean;
  onWarning?: WarnFn;
  /** Root of graft's cache (default: env GRAFT_CACHE_DIR, else `.graft-cache` in the cwd). */
  cacheDir?: string;
  /** Progress of hashing files and extracting features. */
  onTaskProgress?: OnTaskProgress;
}

/** Features of a source: one row per sample (skipped image files have none), and where they are stored. */
export interface SourceFeatures {
  source: ArraySource;
  /** Set for image files, and for in-memory sources with `share`. */
  stored?: StoredFeatures;
}

/**
 * Runs the frozen `backbone` over every sample of `src` (in order). Unaugmented image files go through the
 * on-disk feature store (a second run, or a tune trial, decodes no image again); other sources run in
 * memory, `batchSize` samples at a time.
 */
export async function sourceFeatures(backbone: Model, src: BatchSource, opts: FeatureOptions = {}): Promise<SourceFeatures> {
  if (src instanceof ImageSource && !src.augment) {
    const r = await cachedFeatures({
      model: backbone,
      preprocess: src.preprocess,
      items: src.paths.map((p) => ({ path: p })),
      strict: opts.strict ?? true,
      onWarning: opts.onWarning,
      cacheDir: opts.cacheDir,
      onTaskProgress: opts.onTaskProgress,
    });
    const labels = Int32Array.from(r.indices, (i) => src.labels[i]!);
    const stored = { store: r.store, keys: r.keys, labels: Array.from(labels), dims: r.dims, numClasses: src.numClasses };
    if (opts.share) assertStored(stored);
    return { source: new ArraySource(r.features, labels, [r.dims], src.numClasses), stored };
  }
  if (src instanceof TextSource) {
    const r = await textFeatures(backbone, src.texts, src.tokenizer, {
      batchSize: opts.batchSize,
      cacheDir: opts.cacheDir,
      onTaskProgress: opts.onTaskProgress,
    });
    const stored = { store: r.store, keys: r.keys, labels: Array.from(src.labels), dims: r.dims, numClasses: src.numClasses };
    return { source: new ArraySource(r.features, src.labels, [r.dims], src.numClasses), stored };
  }
  const s = await createSession(backbone);
  const bufs = new BatchBuffers(src.sampleShape);
  const inputSize = src.sampleShape.reduce((a, c) => a * c, 1);
  const keys: string[] = [];
  let feats: Float32Array | undefined;
  let dims: number[] = [];
  const labels = new Int32Array(src.length);
  let row = 0;
  try {
    for await (const b of batches(src, bufs, { batchSize: opts.batchSize ?? 256, seed: 0, epoch: 0, shuffle: false })) {
      const x = b.x.data as Float32Array;
      const r = await runChecked(s, { [s.inputNames[0]!]: new ort.Tensor('float32', x, [...b.x.dims]) }, undefined, FEATURE_FEEDS);
      const f = r[s.outputNames[0]!]!;
      if (!feats) {
        dims = f.dims.slice(1) as number[];
        feats = new Float32Array(src.length * dims.reduce((a, c) => a * c, 1));
      }
      const per = f.size / b.size;
      feats.set(f.data as Float32Array, row * per);
      const y = b.y.data as BigInt64Array;
      for (let i = 0; i < b.size; i++) labels[row + i] = Number(y[i]);
      if (opts.share) for (let i = 0; i < b.size; i++) keys.push(sha256(new Uint8Array(x.buffer, x.byteOffset + i * inputSize * 4, inputSize * 4)));
      row += b.size;
      opts.onTaskProgress?.({ task: 'extracting features', done: row, total: src.length, unit: 'sample' });
    }
  } finally {
    await s.release();
  }
  const source = new ArraySource(feats ?? new Float32Array(0), labels, dims, src.numClasses);
  if (!opts.share) return { source };
  const stored = shareArrays(backbone, src.sampleShape, source, keys, opts.cacheDir);
  assertStored(stored);
  return { source, stored };
}

/** Runs a feature extractor over every sample of `src` (in order) and returns an in-memory source of features. */
export async function computeFeatures(backbone: Model, src: BatchSource, batchSize = 256, onTaskProgress?: OnTaskProgress): Promise<ArraySource> {
  return (await sourceFeatures(backbone, src, { batchSize, onTaskProgress })).source;
}

/**
 * Writes the rows of in-memory features that the store lacks. The store is keyed like the image store, with
 * the input's shape in place of the preprocessing config (arrays are fed as they are), and each row by the
 * hash of its input sample's float32 bytes.
 */
function shareArrays(backbone: Model, inputShape: readonly number[], f: ArraySource, keys: string[], cacheDir?: string): StoredFeatures {
  const dims = f.sampleShape.reduce((a, c) => a * c, 1);
  const input = { arrays: [...inputShape] };
  const cut = backbone.graph.outputs[0]!.name;
  const dir = path.join(featureCacheDir(cacheDir), featureStoreKey(backbone, cut, input));
  const store = FeatureStore.open(dir);
  const fresh: string[] = [];
  const rows: Float32Array[] = [];
  const seen = new Set<string>();
  keys.forEach((k, r) => {
    if (store.has(k) || seen.has(k)) return;
    seen.add(k);
    fresh.push(k);
    rows.push(f.x.subarray(r * dims, (r + 1) * dims));
  });
  if (fresh.length && dims > 0) {
    const w = store.writer(dims);
    try {
      const all = new Float32Array(fresh.length * dims);
      rows.forEach((r, k) => {
        all.set(r, k * dims);
      });
      w.add(fresh, all);
      w.commit();
      writeStoreMeta(dir, backbone, cut, input);
    } finally {
      w.close();
    }
  }
  return { store: dir, keys, labels: Array.from(f.y), dims, numClasses: f.numClasses };
}

/** @throws when some rows did not reach the store (e.g. it could not be written), naming the folder and the fix. */
function assertStored(ref: StoredFeatures): void {
  const store = FeatureStore.open(ref.store);
  const missing = ref.keys.filter((k) => !store.has(k)).length;
  if (missing)
    throw new Error(
      `${missing} of ${ref.keys.length} feature rows could not be stored in the feature cache ${ref.store}; other processes need them. ` +
        'Set GRAFT_CACHE_DIR to a writable folder with free space and run again.',
    );
}

/**
 * Reads features stored by {@link sourceFeatures} back, as a source of [dims] samples.
 * @throws naming the store when rows are missing (the cache was deleted meanwhile) or cannot be read.
 */
export function readStoredFeatures(ref: StoredFeatures): ArraySource {
  if (ref.keys.length !== ref.labels.length)
    throw new Error(`readStoredFeatures: ${ref.keys.length} keys but ${ref.labels.length} labels; pass the object sourceFeatures returned.`);
  if (!fs.existsSync(ref.store) && ref.keys.length)
    throw new Error(`The feature cache ${ref.store} is gone; run again to recompute the features (they are computed once per model, cut and data).`);
  const store = FeatureStore.open(ref.store);
  const missing = ref.keys.find((k) => !store.has(k));
  if (missing !== undefined)
    throw new Error(`The feature cache ${ref.store} lacks row ${missing} (deleted or damaged meanwhile); run again to recompute the features.`);
  const x = new Float32Array(ref.keys.length * ref.dims);
  store.readRows(
    ref.keys,
    Int32Array.from(ref.keys, (_, i) => i),
    x,
  );
  return new ArraySource(x, Int32Array.from(ref.labels), [ref.dims], ref.numClasses);
}
