/**
 * Where a distributed extraction's shared feature stores live. Workers and the coordinator reach the same
 * stores through one {@link FeatureStorage}; the default, {@link LocalFeatureStorage}, is a folder (local disk or
 * a shared mount such as NFS) in the format of src/features/store.ts. An S3-compatible storage implements the
 * same interface (shards as objects: a PUT is all-or-nothing, so a partly written shard is never visible).
 */
import fs from 'node:fs';
import path from 'node:path';
import { type CachedOptions, type CachedResult, cachedFeatures, featureCacheDir } from '../features/cache.js';
import { FeatureStore } from '../features/store.js';
import { atomicWrite } from '../util/atomic-write.js';
import { describeFsError } from '../util/fs-errors.js';

/** The shared feature stores, by store key (`featureStoreKey(model, cut, preprocessing)`). */
export interface FeatureStorage {
  /** Where it is, for messages and for workers: a folder, or later `s3://bucket/prefix`. */
  readonly location: string;
  /** Writes a named object beside a store's shards, atomically (readers see all of it or nothing). */
  putObject(storeKey: string, name: string, bytes: Uint8Array): Promise<void>;
  /** A named object of a store, or undefined when it is not there. */
  getObject(storeKey: string, name: string): Promise<Uint8Array | undefined>;
  /** The hashes (of `hashes`) whose rows are not complete in the store. */
  missing(storeKey: string, hashes: readonly string[]): Promise<string[]>;
  /** `cachedFeatures` through this storage: reads the rows it has, computes and stores the rest. */
  features(opts: Omit<CachedOptions, 'cacheDir'>): Promise<CachedResult>;
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
}
