/**
 * The feature cache: features of image files keyed by what determines them — the extractor's bytes, its
 * output (the cut) and the canonical preprocessing config select a store; each file's content hash selects
 * a row. A later run or a hyper-parameter trial with the same model, cut and preprocessing decodes no image
 * twice, even after files were renamed or moved. The on-disk format (crash- and concurrency-safe shards) is
 * in store.ts.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { defaultWarn } from '../data/files.js';
import { type PreprocessConfig, parsePreprocessConfig } from '../data/preprocess.js';
import type { Model } from '../ir/model.js';
import { encodeModel } from '../onnx/io.js';
import { atomicWrite } from '../util/atomic-write.js';
import { describeFsError } from '../util/fs-errors.js';
import type { OnTaskProgress } from '../util/progress.js';
import { type ExtractOptions, type ExtractResult, extractFeatures, type FailedItem, planExtraction } from './extract.js';
import { FeatureStore, type ShardWriter, STORE_FORMAT } from './store.js';

/** What turns a sample into the model's input: an image preprocessing, an array shape, or a text tokenizer (its JSON spec). */
export type StoreInput = PreprocessConfig | { arrays: number[] } | { tokenizer: unknown };

/** Options of {@link cachedFeatures}: those of `extractFeatures` plus where the cache lives. */
export interface CachedOptions extends ExtractOptions {
  /** Root of graft's cache (default: env GRAFT_CACHE_DIR, else `.graft-cache` in the cwd); stores go in `<root>/features/`. */
  cacheDir?: string;
  /** Files read and hashed at once (default 8). */
  hashConcurrency?: number;
  /** Progress of the long parts: "hashing images" (every file), then "extracting features" (the misses). */
  onTaskProgress?: OnTaskProgress;
}

/** Result of {@link cachedFeatures}: the `extractFeatures` result plus cache statistics. */
export interface CachedResult extends ExtractResult {
  /** Items whose features came from the cache. */
  hits: number;
  /** Items that were not in the cache (decoded now, once per distinct content, or failed). */
  misses: number;
  /** The store folder used. */
  store: string;
  /** The store key (content hash) of each row, parallel to `indices`. */
  keys: string[];
}

/** The folder holding feature stores: `<cacheDir | $GRAFT_CACHE_DIR | ./.graft-cache>/features`, absolute. */
export function featureCacheDir(cacheDir?: string): string {
  return path.resolve(cacheDir ?? (process.env.GRAFT_CACHE_DIR || '.graft-cache'), 'features');
}

/** JSON with object keys sorted at every level, so equal configs give equal strings. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/** sha256 (hex) of bytes. */
export function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * The store key: sha256 over the format version, the hash of the extractor's computation (its ONNX bytes without
 * metadata: the head a run grafted, or its parameter names, must not split the store), the cut (output value name)
 * and the canonical input JSON (preprocessing; `{ arrays: inputShape }` for in-memory arrays, fed as they are;
 * `{ tokenizer }` for text). Any change to one of them selects a different store. The one key of every store.
 */
export function featureStoreKey(extractor: Model, cut: string, cfg: StoreInput): string {
  const bare = extractor.clone();
  bare.metadata = {};
  return sha256(`graft-features/${STORE_FORMAT}\n${sha256(encodeModel(bare))}\n${cut}\n${canonicalJson(cfg)}`);
}

/** sha256 (hex) of a file's content. @throws naming the file and the fix when it cannot be read. */
export async function hashFile(file: string): Promise<string> {
  try {
    return sha256(await readFile(file));
  } catch (e) {
    throw new Error(describeFsError('read image', file, e));
  }
}

/**
 * Like `extractFeatures`, through the on-disk cache: files are hashed, cached rows are read back, and only
 * contents not seen before are decoded and run (their rows are stored as each batch finishes, so an
 * interrupted run keeps its progress). Unreadable or undecodable files are skipped with a warning (or throw
 * with `strict`) and are not cached. `onProgress` counts the images being decoded (the misses).
 * A cache that cannot be written (e.g. a full disk) only warns; the features are still returned.
 */
export async function cachedFeatures(opts: CachedOptions): Promise<CachedResult> {
  const cfg = parsePreprocessConfig(opts.preprocess, 'cachedFeatures preprocessing config');
  planExtraction(opts.model, cfg, opts.batchSize ?? 32); // fail fast on a mismatched model, even when all rows are cached
  const warn = opts.onWarning ?? defaultWarn;
  const bytes = encodeModel(opts.model);
  const cut = opts.model.graph.outputs[0]!.name;
  const dir = path.join(featureCacheDir(opts.cacheDir), featureStoreKey(opts.model, cut, cfg));
  const store = FeatureStore.open(dir);
  if (store.damage.length) warn(`feature cache ${dir}: ${store.damage.join('; ')}. Damaged entries are recomputed.`);

  // 1. content hashes
  const items = opts.items;
  const n = items.length;
  const hashes: (string | undefined)[] = new Array(n);
  const failed: FailedItem[] = [];
  let next = 0;
  let hashed = 0;
  const task = opts.onTaskProgress;
  const hashSlot = async () => {
    while (next < n) {
      const i = next++;
      try {
        hashes[i] = await hashFile(items[i]!.path);
      } catch (e) {
        const error = e as Error;
        if (opts.strict) throw error;
        failed.push({ path: items[i]!.path, index: i, error });
      }
      task?.({ task: 'hashing images', done: ++hashed, total: n, unit: 'img' });
    }
  };
  const hashLimit = Math.max(1, Math.min(opts.hashConcurrency ?? 8, n || 1));
  await Promise.all(Array.from({ length: hashLimit }, hashSlot));
  failed.sort((a, b) => a.index - b.index);
  for (const f of failed.slice(0, 10)) warn(`skipped: ${f.error.message}`);
  if (failed.length > 10) warn(`skipped ${failed.length - 10} more unreadable image(s); see the result's \`failed\` list.`);

  // 2. hits and distinct misses
  const missFirst = new Map<string, number>(); // hash -> first item index with it
  let hits = 0;
  for (let i = 0; i < n; i++) {
    const h = hashes[i];
    if (h === undefined) continue;
    if (store.has(h)) hits++;
    else if (!missFirst.has(h)) missFirst.set(h, i);
  }

  // 3. extract the misses, storing each batch as it completes
  const missItems = [...missFirst.values()];
  let writer: ShardWriter | undefined;
  let writeFailed = false;
  const safely = (fn: () => void) => {
    if (writeFailed) return;
    try {
      fn();
    } catch (e) {
      writeFailed = true;
      warn(`${(e as Error).message} Continuing without caching.`);
    }
  };
  let extracted: ExtractResult | undefined;
  if (missItems.length) {
    try {
      extracted = await extractFeatures({
        ...opts,
        modelBytes: bytes,
        preprocess: cfg,
        items: missItems.map((i) => items[i]!),
        onProgress: (done, total, rate) => {
          task?.({ task: 'extracting features', done, total, unit: 'img' });
          opts.onProgress?.(done, total, rate);
        },
        onBatch: async (rows) => {
          safely(() => {
            if (!writer) {
              writer = store.writer(rows.dims);
              writeStoreMeta(dir, opts.model, cut, cfg);
            }
            writer.add(
              Array.from(rows.indices, (k) => hashes[missItems[k]!]!),
              rows.features,
            );
          });
          await opts.onBatch?.({ ...rows, indices: Int32Array.from(rows.indices, (k) => missItems[k]!) });
        },
      });
    } finally {
      safely(() => writer?.commit());
      writer?.close();
    }
  }

  // 4. assemble rows in item order
  const dims = store.dims ?? extracted?.dims ?? 0;
  if (extracted && store.dims !== undefined && extracted.indices.length && extracted.dims !== store.dims)
    throw new Error(`Feature cache ${dir} holds rows of ${store.dims} values but the model yields ${extracted.dims}; delete the folder ${dir} to rebuild it.`);
  const missRow = new Map<string, number>(); // hash -> row in extracted.features
  if (extracted) {
    for (let r = 0; r < extracted.indices.length; r++) missRow.set(hashes[missItems[extracted.indices[r]!]!]!, r);
    const failedHashes = new Map(extracted.failed.map((f) => [hashes[missItems[f.index]!]!, f.error]));
    for (let i = 0; i < n; i++) {
      const error = failedHashes.get(hashes[i]!);
      if (error) failed.push({ path: items[i]!.path, index: i, error });
    }
    failed.sort((a, b) => a.index - b.index);
  }
  const bad = new Set(failed.map((f) => f.index));
  const indices = new Int32Array(n - bad.size);
  const features = new Float32Array(indices.length * dims);
  const hitHashes: string[] = [];
  const hitDest: number[] = [];
  let row = 0;
  for (let i = 0; i < n; i++) {
    if (bad.has(i)) continue;
    const h = hashes[i]!;
    const r = missRow.get(h);
    if (r !== undefined) features.set(extracted!.features.subarray(r * dims, (r + 1) * dims), row * dims);
    else {
      hitHashes.push(h);
      hitDest.push(row);
    }
    indices[row++] = i;
  }
  store.readRows(hitHashes, hitDest, features);
  return { features, dims, indices, failed, hits, misses: n - hits, store: dir, keys: Array.from(indices, (i) => hashes[i]!) };
}

/** Writes `meta.json` (for people and tools; readers do not need it) once per store. */
export function writeStoreMeta(dir: string, model: Model, cut: string, cfg: StoreInput): void {
  const file = path.join(dir, 'meta.json');
  if (fs.existsSync(file)) return;
  const ensureIgnored = path.join(path.dirname(path.dirname(dir)), '.gitignore');
  if (!fs.existsSync(ensureIgnored) && path.basename(path.dirname(path.dirname(dir))) === '.graft-cache') atomicWrite(ensureIgnored, '*\n');
  const meta = { format: STORE_FORMAT, cut, model: model.graph.name, producer: model.producer, preprocess: cfg, created: new Date().toISOString() };
  atomicWrite(file, `${JSON.stringify(meta, null, 2)}\n`);
}
