/**
 * Where a distributed extraction's shared feature stores live. Workers and the coordinator reach the same
 * stores through one {@link FeatureStorage}; the default, {@link LocalFeatureStorage}, is a folder (local disk or
 * a shared mount such as NFS) in the format of src/features/store.ts; {@link S3FeatureStorage} (src/scale/s3-storage.ts)
 * keeps them in an S3-compatible bucket (shards as objects: a PUT is all-or-nothing, so a partly written shard is
 * never visible). {@link openFeatureStorage} is the one parser of a `--store` value.
 */
import fs from 'node:fs';
import path from 'node:path';
import { type CachedOptions, type CachedResult, cachedFeatures, featureCacheDir } from '../features/cache.js';
import { FeatureStore } from '../features/store.js';
import { atomicWrite } from '../util/atomic-write.js';
import { describeFsError } from '../util/fs-errors.js';

/** The shared feature stores, by store key (`featureStoreKey(model, cut, preprocessing)`). */
export interface FeatureStorage {
  /** Where it is, for messages and for workers (it travels in the jobs): a folder, or `s3://bucket/prefix`. */
  readonly location: string;
  /** Writes a named object beside a store's shards, atomically (readers see all of it or nothing). */
  putObject(storeKey: string, name: string, bytes: Uint8Array): Promise<void>;
  /** A named object of a store, or undefined when it is not there. */
  getObject(storeKey: string, name: string): Promise<Uint8Array | undefined>;
  /** The hashes (of `hashes`) whose rows are not complete in the store. */
  missing(storeKey: string, hashes: readonly string[]): Promise<string[]>;
  /** `cachedFeatures` through this storage: reads the rows it has, computes and stores the rest. */
  features(opts: Omit<CachedOptions, 'cacheDir'>): Promise<CachedResult>;
  /** Checks that the storage is there and usable (one clear error otherwise), before any job depends on it. */
  check(): Promise<void>;
}

/** Options of {@link openFeatureStorage}. */
export interface OpenStorageOptions {
  /** The S3-compatible server for `s3://` stores (default: env AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, else AWS). */
  s3Endpoint?: string;
  /** Local cache root: the folder's root when `store` is not given, and where an S3 store's local mirror lives. */
  cacheDir?: string;
}

/**
 * The storage a `--store` value names: `s3://bucket[/prefix]` is an {@link S3FeatureStorage} (the S3 client is
 * loaded only then), a plain path a {@link LocalFeatureStorage} folder; undefined is the cache folder `cacheDir`.
 * @throws on another URL scheme or a malformed S3 URL, saying what to write instead.
 */
export async function openFeatureStorage(store: string | undefined, opts: OpenStorageOptions = {}): Promise<FeatureStorage> {
  if (store?.startsWith('s3://')) {
    const { S3FeatureStorage } = await import('./s3-storage.js');
    return new S3FeatureStorage({ url: store, endpoint: opts.s3Endpoint, cacheDir: opts.cacheDir });
  }
  if (store !== undefined && /^[A-Za-z][A-Za-z0-9+.-]+:\/\//.test(store))
    throw new Error(
      `--store ${store}: graft's feature storage is a folder (local or a shared mount) or s3://bucket/prefix; ${store.split(':')[0]}:// is not supported.`,
    );
  if (opts.s3Endpoint !== undefined)
    throw new Error(`--s3-endpoint ${opts.s3Endpoint} is given but --store is not an s3:// URL; give --store s3://bucket/prefix, or drop --s3-endpoint.`);
  return new LocalFeatureStorage(store ?? opts.cacheDir);
}

/** The default storage: graft's cache folder (`<root>/features/<key>/`), local or on a shared mount. */
export class LocalFeatureStorage implements FeatureStorage {
  /** The cache root (as `cacheDir` of `cachedFeatures`), absolute. */
  readonly root: string;
  constructor(root?: string) {
    this.root = path.dirname(featureCacheDir(root));
  }
  get location(): string {
    return this.root;
  }
  private dir(storeKey: string): string {
    if (!/^[0-9a-f]{64}$/.test(storeKey)) throw new Error(`LocalFeatureStorage: "${storeKey}" is not a feature store key (64 hex digits).`);
    return path.join(featureCacheDir(this.root), storeKey);
  }
  async putObject(storeKey: string, name: string, bytes: Uint8Array): Promise<void> {
    const dir = this.dir(storeKey);
    try {
      fs.mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw new Error(describeFsError('create the feature store folder', dir, e, 'Point --cache-dir (GRAFT_CACHE_DIR) at a writable shared folder.'));
    }
    atomicWrite(path.join(dir, name), bytes);
  }
  async getObject(storeKey: string, name: string): Promise<Uint8Array | undefined> {
    const file = path.join(this.dir(storeKey), name);
    try {
      return fs.readFileSync(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new Error(describeFsError('read', file, e));
    }
  }
  async missing(storeKey: string, hashes: readonly string[]): Promise<string[]> {
    const store = FeatureStore.open(this.dir(storeKey));
    return hashes.filter((h) => !store.has(h));
  }
  features(opts: Omit<CachedOptions, 'cacheDir'>): Promise<CachedResult> {
    return cachedFeatures({ ...opts, cacheDir: this.root });
  }
  async check(): Promise<void> {
    const dir = featureCacheDir(this.root);
    try {
      fs.mkdirSync(dir, { recursive: true });
      fs.accessSync(dir, fs.constants.W_OK);
    } catch (e) {
      throw new Error(describeFsError('use the feature store folder', dir, e, 'Point --store (or --cache-dir, GRAFT_CACHE_DIR) at a writable folder.'));
    }
  }
}
