/**
 * Feature stores on S3-compatible object storage (AWS S3, MinIO, Ceph RGW) through the official
 * `@aws-sdk/client-s3`. Layout: `s3://bucket/prefix/features/<store key>/<name>` — the same file names as a
 * local store (src/features/store.ts): a shard is `<id>.f32` (rows) and `<id>.jsonl` (its index).
 *
 * Atomicity: a shard is uploaded only once its writer is done, `.f32` first and `.jsonl` last. A PUT is
 * all-or-nothing, so a shard whose `.jsonl` is visible has all its rows; the index is the completion marker, and
 * readers take only shards that have one (an orphan `.f32` of a killed upload is ignored). Shard names are unique
 * per writer, so objects are never overwritten.
 *
 * Each machine keeps a local mirror of the stores it touched (`<cache root>/s3/<bucket>/<prefix>/…`), brought up to
 * date before each use by downloading only the shards it lacks. Computing runs `cachedFeatures` in a private
 * scratch folder that links the mirror's shards, so what a call writes is exactly its new shards — uploaded, then
 * moved into the mirror — and a killed call leaves nothing anyone reads.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GetObjectCommand, HeadBucketCommand, ListObjectsV2Command, PutObjectCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { parsePreprocessConfig } from '../data/preprocess.js';
import { type CachedOptions, type CachedResult, cachedFeatures, featureCacheDir, featureStoreKey } from '../features/cache.js';
import { FeatureStore } from '../features/store.js';
import { atomicWrite } from '../util/atomic-write.js';
import type { FeatureStorage } from './storage.js';

/** Options of {@link S3FeatureStorage}. */
export interface S3StorageOptions {
  /** Where the stores go: `s3://bucket` or `s3://bucket/prefix`. */
  url: string;
  /** An S3-compatible server, e.g. `http://127.0.0.1:9000` (default: env AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, else AWS). */
  endpoint?: string;
  /** Region (default: env AWS_REGION, AWS_DEFAULT_REGION, else us-east-1; MinIO and Ceph accept any). */
  region?: string;
  /** Path-style addressing (`endpoint/bucket/key`) as MinIO and Ceph want (default: true when an endpoint is set). */
  forcePathStyle?: boolean;
  /** Credentials (default: the standard AWS chain: env AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, …). */
  credentials?: S3ClientConfig['credentials'];
  /** Local cache root; the mirror goes in `<root>/s3/` (default: GRAFT_CACHE_DIR, else ./.graft-cache). */
  cacheDir?: string;
  /** Tries per request (default 3, the SDK's). */
  maxAttempts?: number;
}

/** `s3://bucket/prefix` split, checked: one clear error for a malformed URL. */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
  const how = 'Write it as s3://bucket or s3://bucket/prefix.';
  if (!m) throw new Error(`"${url}" is not an S3 URL. ${how}`);
  const bucket = m[1]!;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket))
    throw new Error(`"${bucket}" in ${url} is not an S3 bucket name (3–63 characters: lower-case letters, digits, "." and "-"). ${how}`);
  const prefix = m[2]!.replace(/\/+$/, '');
  if (prefix !== '' && prefix.split('/').some((s) => s === '' || s === '.' || s === '..'))
    throw new Error(`the prefix "${prefix}" of ${url} has an empty, "." or ".." part. ${how}`);
  return { bucket, prefix };
}

const STORE_KEY = /^[0-9a-f]{64}$/;

const scratchHost = () => os.hostname().replace(/[^A-Za-z0-9-]/g, '_');

/** Removes scratch folders of this host's processes that are gone (killed mid-shard); never another host's. */
function removeDeadScratch(root: string): void {
  const host = scratchHost();
  for (const name of fs.readdirSync(root)) {
    const [h, pid] = name.split('.');
    if (h !== host || !pid || Number(pid) === process.pid) continue;
    try {
      process.kill(Number(pid), 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ESRCH') fs.rmSync(path.join(root, name), { recursive: true, force: true });
    }
  }
}
const SHARD_NAME = /^[A-Za-z0-9._-]+$/;

/** The shared feature stores in an S3 bucket (see the module comment for the layout and why it is atomic). */
export class S3FeatureStorage implements FeatureStorage {
  readonly bucket: string;
  readonly prefix: string;
  readonly endpoint: string | undefined;
  readonly client: S3Client;
  /** The local mirror's cache root (`cachedFeatures`'s `cacheDir` form: stores are in `<mirror>/features/<key>`). */
  readonly mirror: string;

  constructor(opts: S3StorageOptions) {
    ({ bucket: this.bucket, prefix: this.prefix } = parseS3Url(opts.url));
    const endpoint = opts.endpoint ?? (process.env.AWS_ENDPOINT_URL_S3 || process.env.AWS_ENDPOINT_URL || undefined);
    if (endpoint !== undefined && !/^https?:\/\/[^/]+/.test(endpoint))
      throw new Error(`S3 endpoint "${endpoint}" is not an http(s) URL; give --s3-endpoint (or AWS_ENDPOINT_URL_S3) as http://host:port.`);
    this.endpoint = endpoint;
    // The SDK warns on every Node 20 process that its releases from 2027 need Node >= 22. graft supports Node 20
    // and pins the SDK's major version, so the note is about a future graft, not this run: keep it out of the
    // user's output unless they set the variable themselves.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    this.client = new S3Client({
      endpoint,
      region: opts.region ?? (process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || 'us-east-1'),
      forcePathStyle: opts.forcePathStyle ?? endpoint !== undefined,
      followRegionRedirects: true,
      credentials: opts.credentials,
      maxAttempts: opts.maxAttempts,
      // plain bodies and no extra checksum headers: what every S3-compatible server (older MinIO, Ceph) accepts
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    const host = endpoint ? new URL(endpoint).host.replace(/[^A-Za-z0-9.-]/g, '_') : 'aws';
    this.mirror = path.join(path.dirname(featureCacheDir(opts.cacheDir)), 's3', host, this.bucket, ...(this.prefix ? this.prefix.split('/') : []));
  }

  get location(): string {
    return `s3://${this.bucket}${this.prefix ? `/${this.prefix}` : ''}`;
  }

  private key(storeKey: string, name = ''): string {
    if (!STORE_KEY.test(storeKey)) throw new Error(`S3FeatureStorage: "${storeKey}" is not a feature store key (64 hex digits).`);
    return `${this.prefix ? `${this.prefix}/` : ''}features/${storeKey}/${name}`;
  }

  private mirrorDir(storeKey: string): string {
    return path.join(this.mirror, 'features', storeKey);
  }

  /** Runs one request, turning the SDK's errors into what went wrong and how to fix it. */
  private async send<T>(what: string, key: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (e) {
      throw new Error(this.describe(what, key, e));
    }
  }

  /** A message for a failed request: bucket missing, access denied, endpoint unreachable, or the SDK's own. */
  describe(what: string, key: string, e: unknown): string {
    const err = e as { name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number }; cause?: { code?: string } };
    const status = err.$metadata?.httpStatusCode;
    const where = `s3://${this.bucket}${key ? `/${key}` : ''}${this.endpoint ? ` at ${this.endpoint}` : ''}`;
    const code = err.code ?? err.cause?.code ?? (err as { errno?: string }).errno;
    if (err.name === 'NoSuchBucket' || (status === 404 && err.name === 'NotFound' && key === ''))
      return `S3 bucket "${this.bucket}" does not exist${this.endpoint ? ` at ${this.endpoint}` : ''} (${what}). Create it (aws s3 mb s3://${this.bucket}, or mc mb for MinIO) or fix --store.`;
    if (status === 403 || ['AccessDenied', 'Forbidden', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken'].includes(err.name ?? ''))
      return `S3 access denied to ${where} (${what}: ${err.name && err.name !== 'Unknown' ? err.name : `HTTP ${status}`}). Give this machine credentials allowed to list, read and write the bucket: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE.`;
    if (err.name === 'CredentialsProviderError')
      return `no S3 credentials for ${where} (${what}): ${err.message}. Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE.`;
    if (code && ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'TimeoutError'].includes(code))
      return `cannot reach the S3 endpoint ${this.endpoint ?? '(AWS)'} (${code}) to ${what} ${where}. Start the server (e.g. MinIO) or fix --s3-endpoint / AWS_ENDPOINT_URL_S3.`;
    return `S3 request failed: ${what} ${where}: ${err.name ?? 'Error'}: ${err.message ?? String(e)}. Check --store, --s3-endpoint and the credentials.`;
  }

  /** Checks that the bucket exists and these credentials may use it (one clear error otherwise). */
  async check(): Promise<void> {
    await this.send('check the bucket', '', () => this.client.send(new HeadBucketCommand({ Bucket: this.bucket })));
  }

  async putObject(storeKey: string, name: string, bytes: Uint8Array): Promise<void> {
    const key = this.key(storeKey, name);
    await this.send('write', key, () => this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: bytes })));
  }

  async getObject(storeKey: string, name: string): Promise<Uint8Array | undefined> {
    const key = this.key(storeKey, name);
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return await r.Body!.transformToByteArray();
    } catch (e) {
      if ((e as { name?: string }).name === 'NoSuchKey') return undefined;
      throw new Error(this.describe('read', key, e));
    }
  }

  /** The object names (`<id>.f32`, `<id>.jsonl`, …) of a store, all pages. */
  async list(storeKey: string): Promise<Set<string>> {
    const prefix = this.key(storeKey);
    const names = new Set<string>();
    let token: string | undefined;
    do {
      const page = await this.send('list', prefix, () =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token })),
      );
      for (const o of page.Contents ?? []) if (o.Key?.startsWith(prefix)) names.add(o.Key.slice(prefix.length));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return names;
  }

  /** Downloads the complete shards (those with an index) the mirror lacks: rows first, the index last. */
  async sync(storeKey: string): Promise<string> {
    const dir = this.mirrorDir(storeKey);
    const remote = await this.list(storeKey);
    const want = [...remote].filter((n) => n.endsWith('.jsonl') && SHARD_NAME.test(n) && !fs.existsSync(path.join(dir, n)));
    let next = 0;
    const slot = async () => {
      while (next < want.length) {
        const index = want[next++]!;
        const data = index.replace(/\.jsonl$/, '.f32');
        if (!remote.has(data)) continue; // cannot happen with graft's upload order; nothing to trust
        const rows = await this.getObject(storeKey, data);
        const lines = await this.getObject(storeKey, index);
        if (!rows || !lines) continue;
        atomicWrite(path.join(dir, data), rows);
        atomicWrite(path.join(dir, index), lines);
      }
    };
    fs.mkdirSync(dir, { recursive: true });
    await Promise.all(Array.from({ length: Math.min(8, want.length) }, slot));
    return dir;
  }

  async missing(storeKey: string, hashes: readonly string[]): Promise<string[]> {
    const store = FeatureStore.open(await this.sync(storeKey));
    return hashes.filter((h) => !store.has(h));
  }

  /**
   * `cachedFeatures` against the bucket: the mirror is synced, rows it has are read, the rest computed into a new
   * shard that is uploaded (rows, then index) and then kept in the mirror. The result's `store` is the mirror's folder.
   * @throws when the upload fails (the rows are not in the shared store, so a worker's shard must fail).
   */
  async features(opts: Omit<CachedOptions, 'cacheDir'>): Promise<CachedResult> {
    const cfg = parsePreprocessConfig(opts.preprocess, 'S3FeatureStorage.features preprocessing config');
    const storeKey = featureStoreKey(opts.model, opts.model.graph.outputs[0]!.name, cfg);
    const dir = await this.sync(storeKey);
    const tmpRoot = path.join(this.mirror, '.scratch');
    fs.mkdirSync(tmpRoot, { recursive: true });
    removeDeadScratch(tmpRoot);
    const scratch = fs.mkdtempSync(path.join(tmpRoot, `${scratchHost()}.${process.pid}.`));
    try {
      const work = path.join(featureCacheDir(scratch), storeKey);
      fs.mkdirSync(work, { recursive: true });
      const linked = new Set(fs.readdirSync(dir).filter((n) => /\.(f32|jsonl)$/.test(n)));
      for (const n of linked) fs.symlinkSync(path.join(dir, n), path.join(work, n));
      const r = await cachedFeatures({ ...opts, preprocess: cfg, cacheDir: scratch });
      const fresh = fs.readdirSync(work).filter((n) => n.endsWith('.jsonl') && !linked.has(n));
      for (const index of fresh) {
        const data = index.replace(/\.jsonl$/, '.f32');
        await this.putObject(storeKey, data, fs.readFileSync(path.join(work, data)));
        await this.putObject(storeKey, index, fs.readFileSync(path.join(work, index)));
        fs.renameSync(path.join(work, data), path.join(dir, data));
        fs.renameSync(path.join(work, index), path.join(dir, index));
      }
      if (fresh.length && fs.existsSync(path.join(work, 'meta.json')) && !fs.existsSync(path.join(dir, 'meta.json'))) {
        const meta = fs.readFileSync(path.join(work, 'meta.json'));
        await this.putObject(storeKey, 'meta.json', meta);
        atomicWrite(path.join(dir, 'meta.json'), meta);
      }
      return { ...r, store: dir };
    } finally {
      fs.rmSync(scratch, { recursive: true, force: true });
    }
  }
}
