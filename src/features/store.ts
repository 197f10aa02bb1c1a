/**
 * The on-disk format of one feature store (one model × cut × preprocessing): a folder of per-run shards.
 * Each shard is a raw little-endian float32 matrix `<id>.f32` plus an index `<id>.jsonl` whose first line is
 * a header `{"format":1,"dims":d}` and whose other lines map a content hash to a row: `{"h":"<sha256>","r":12}`.
 *
 * Crash and concurrency safety without locks: every shard has exactly one writer (the run that created it),
 * rows are appended and fsynced before the index lines naming them are appended, and readers only trust
 * complete (newline-terminated), well-formed index lines that point inside the data file. A crash therefore
 * loses at most the rows of the last commit, never maps a hash to a wrong or partial row, and two processes
 * can read and write the same store at once.
 */
import fs from 'node:fs';
import path from 'node:path';
import { syncDir, writeAll } from '../util/atomic-write.js';
import { describeFsError } from '../util/fs-errors.js';

/** Version of the shard format; stores written by another version are ignored. */
export const STORE_FORMAT = 1;

const HASH = /^[0-9a-f]{64}$/;

interface Shard {
  data: string;
  dims: number;
}

/** Where a cached row lives. */
interface Entry {
  shard: number;
  row: number;
}

/** The rows of one store, read from its shard indexes. Open with {@link FeatureStore.open}. */
export class FeatureStore {
  private readonly shards: Shard[] = [];
  private readonly entries = new Map<string, Entry>();
  /** Damage found while reading (ignored lines or shards), for a warning. */
  readonly damage: string[] = [];

  private constructor(
    /** The store's folder. */
    readonly dir: string,
    /** Values per row, or undefined when the store is empty. */
    public dims: number | undefined,
  ) {}

  /**
   * Reads every shard index in `dir` (a missing folder is an empty store). Torn or malformed lines and rows
   * that point past the end of their data file are skipped and reported in `damage`.
   */
  static open(dir: string): FeatureStore {
    const store = new FeatureStore(dir, undefined);
    let names: string[];
    try {
      names = fs.readdirSync(dir).filter((f) => f.endsWith('.jsonl') && !f.startsWith('.'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return store;
      throw new Error(describeFsError('read the feature cache folder', dir, e));
    }
    for (const name of names.sort()) store.readShard(path.join(dir, name));
    return store;
  }

  private readShard(indexFile: string): void {
    let text: string;
    let dataBytes: number;
    const dataFile = indexFile.replace(/\.jsonl$/, '.f32');
    try {
      text = fs.readFileSync(indexFile, 'utf8');
      dataBytes = fs.statSync(dataFile).size;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        this.damage.push(`${indexFile}: its data file ${path.basename(dataFile)} is missing`);
        return;
      }
      throw new Error(describeFsError('read the feature cache shard', indexFile, e, 'Delete the cache folder if it is damaged.'));
    }
    const lines = text.split('\n');
    lines.pop(); // the part after the last newline is incomplete (or empty)
    let header: { format?: unknown; dims?: unknown } | undefined;
    try {
      header = JSON.parse(lines[0] ?? '');
    } catch {
      header = undefined;
    }
    const dims = header?.dims;
    if (header?.format !== STORE_FORMAT || typeof dims !== 'number' || !Number.isInteger(dims) || dims < 1) {
      if (lines.length > 0 || text.length > 0) this.damage.push(`${indexFile}: no valid header line`);
      return;
    }
    if (this.dims !== undefined && dims !== this.dims) {
      this.damage.push(`${indexFile}: rows of ${dims} values where other shards have ${this.dims}`);
      return;
    }
    const rowsOnDisk = Math.floor(dataBytes / (4 * dims));
    const shard = this.shards.length;
    let bad = 0;
    let added = 0;
    for (let i = 1; i < lines.length; i++) {
      let e: { h?: unknown; r?: unknown };
      try {
        e = JSON.parse(lines[i]!);
      } catch {
        bad++;
        continue;
      }
      const { h, r } = e ?? {};
      if (typeof h !== 'string' || !HASH.test(h) || typeof r !== 'number' || !Number.isInteger(r) || r < 0 || r >= rowsOnDisk) {
        bad++;
        continue;
      }
      if (!this.entries.has(h)) this.entries.set(h, { shard, row: r });
      added++;
    }
    if (bad) this.damage.push(`${indexFile}: ${bad} damaged line(s) ignored`);
    this.shards.push({ data: dataFile, dims });
    if (added || this.dims === undefined) this.dims = dims;
  }

  /** Number of distinct cached hashes. */
  get size(): number {
    return this.entries.size;
  }

  /** Whether the row of this content hash is cached. */
  has(hash: string): boolean {
    return this.entries.has(hash);
  }

  /**
   * Copies the cached rows of `hashes[k]` to row `dest[k]` of `out` (`dims` values per row). Contiguous rows
   * of a shard are read with one call.
   * @throws when a hash is not cached or a data file cannot be read.
   */
  readRows(hashes: readonly string[], dest: ArrayLike<number>, out: Float32Array): void {
    const d = this.dims;
    if (hashes.length === 0) return;
    if (d === undefined) throw new Error('FeatureStore.readRows: the store is empty; check has() first.');
    const byShard = new Map<number, { row: number; dest: number }[]>();
    hashes.forEach((h, k) => {
      const e = this.entries.get(h);
      if (!e) throw new Error(`FeatureStore.readRows: ${h} is not in the store ${this.dir}; check has() first.`);
      let list = byShard.get(e.shard);
      if (!list) byShard.set(e.shard, (list = []));
      list.push({ row: e.row, dest: dest[k]! });
    });
    const rowBytes = d * 4;
    const chunkRows = Math.max(1, Math.min(hashes.length, Math.floor((4 << 20) / rowBytes)));
    const scratch = Buffer.allocUnsafeSlow(chunkRows * rowBytes);
    const view = new Float32Array(scratch.buffer, scratch.byteOffset, chunkRows * d);
    for (const [s, list] of byShard) {
      const file = this.shards[s]!.data;
      list.sort((a, b) => a.row - b.row);
      let fd: number | undefined;
      try {
        fd = fs.openSync(file, 'r');
        for (let i = 0; i < list.length; ) {
          // a run of consecutive rows (a repeated row repeats its copy) that fits the scratch buffer
          const r0 = list[i]!.row;
          let j = i + 1;
          while (j < list.length && list[j]!.row - r0 < chunkRows && list[j]!.row - list[j - 1]!.row <= 1) j++;
          const nRows = list[j - 1]!.row - r0 + 1;
          const want = nRows * rowBytes;
          const got = fs.readSync(fd, scratch, 0, want, r0 * rowBytes);
          if (got !== want) throw Object.assign(new Error(`read ${got} of ${want} bytes`), { code: 'EIO' });
          for (let k = i; k < j; k++) {
            const off = (list[k]!.row - r0) * d;
            out.set(view.subarray(off, off + d), list[k]!.dest * d);
          }
          i = j;
        }
      } catch (e) {
        throw new Error(describeFsError('read cached features from', file, e, `Delete the folder ${this.dir} to rebuild this cache.`));
      } finally {
        if (fd !== undefined) fs.closeSync(fd);
      }
    }
  }

  /** Starts a new shard for this run's rows (files are created on the first commit). */
  writer(dims: number): ShardWriter {
    if (this.dims !== undefined && dims !== this.dims)
      throw new Error(
        `Feature cache ${this.dir} holds rows of ${this.dims} values but the model now yields ${dims}; the cache is inconsistent. Delete the folder ${this.dir} to rebuild it.`,
      );
    return new ShardWriter(this.dir, dims);
  }
}

let shardCounter = 0;

/**
 * Appends rows to a new shard: {@link ShardWriter.add} buffers them, {@link ShardWriter.commit} makes them
 * durable (data fsynced before the index lines that name them are written).
 */
export class ShardWriter {
  private readonly id: string;
  private fdData: number | undefined;
  private fdIndex: number | undefined;
  private rows = 0;
  private readonly pendingRows: Float32Array[] = [];
  private readonly pendingHashes: string[] = [];
  private pendingBytes = 0;
  private lastCommit = Date.now();

  constructor(
    readonly dir: string,
    readonly dims: number,
  ) {
    const rand = Math.floor(Math.random() * 0x100000000)
      .toString(16)
      .padStart(8, '0');
    this.id = `${Date.now().toString(36).padStart(9, '0')}-${process.pid}-${(shardCounter++).toString(36)}-${rand}`;
  }

  /** Queues rows (`hashes.length × dims` values); commits when 4 MB or 2 s of work are pending. */
  add(hashes: readonly string[], rows: Float32Array): void {
    if (rows.length !== hashes.length * this.dims)
      throw new Error(`ShardWriter.add: ${hashes.length} hashes need ${hashes.length * this.dims} values, got ${rows.length}.`);
    if (hashes.length === 0) return;
    this.pendingRows.push(rows);
    this.pendingHashes.push(...hashes);
    this.pendingBytes += rows.byteLength;
    if (this.pendingBytes >= 4 << 20 || Date.now() - this.lastCommit >= 2000) this.commit();
  }

  private open(): void {
    const data = path.join(this.dir, `${this.id}.f32`);
    const index = path.join(this.dir, `${this.id}.jsonl`);
    try {
      fs.mkdirSync(this.dir, { recursive: true });
      this.fdData = fs.openSync(data, 'wx');
      this.fdIndex = fs.openSync(index, 'wx');
      writeAll(fs, this.fdIndex, Buffer.from(`${JSON.stringify({ format: STORE_FORMAT, dims: this.dims })}\n`));
      fs.fsyncSync(this.fdIndex);
    } catch (e) {
      this.close();
      throw new Error(describeFsError('create a feature cache shard in', this.dir, e, 'Set GRAFT_CACHE_DIR or the cacheDir option to a writable folder.'));
    }
    syncDir(this.dir);
  }

  /** Writes pending rows: data, fsync, then the index lines, fsync. A crash at any point leaves no wrong rows. */
  commit(): void {
    this.lastCommit = Date.now();
    if (this.pendingHashes.length === 0) return;
    if (this.fdData === undefined) this.open();
    const data = path.join(this.dir, `${this.id}.f32`);
    try {
      let at = this.rows * this.dims * 4;
      for (const r of this.pendingRows) {
        writeAll(fs, this.fdData!, new Uint8Array(r.buffer, r.byteOffset, r.byteLength), at);
        at += r.byteLength;
      }
      fs.fsyncSync(this.fdData!);
      const lines = this.pendingHashes.map((h, k) => `{"h":"${h}","r":${this.rows + k}}\n`).join('');
      writeAll(fs, this.fdIndex!, Buffer.from(lines));
      fs.fsyncSync(this.fdIndex!);
    } catch (e) {
      throw new Error(describeFsError('write to the feature cache', data, e, 'The cache stays consistent; rows not written will be recomputed next time.'));
    }
    this.rows += this.pendingHashes.length;
    this.pendingRows.length = 0;
    this.pendingHashes.length = 0;
    this.pendingBytes = 0;
  }

  /** Closes the files (commit first to keep pending rows). Safe to call twice. */
  close(): void {
    for (const fd of [this.fdData, this.fdIndex]) if (fd !== undefined) fs.closeSync(fd);
    this.fdData = this.fdIndex = undefined;
  }
}
