/**
 * Batch sources: where a training loop gets (x, y) minibatches from. Buffers are reused across
 * steps (one per batch size) because fresh memory is expensive; the permutation of an epoch is a
 * pure function of (seed, epoch), so a resumed run replays exactly the same batches.
 */
import { Rng, Tensor } from '../tensor.js';

/** Anything that can fill a minibatch for given sample indices. */
export interface BatchSource {
  /** Number of samples. */
  readonly length: number;
  /** Shape of one sample (e.g. [1, 28, 28] or [512]); for samples padded per batch, see {@link batchSampleShape}. */
  readonly sampleShape: readonly number[];
  /** Element type of `x` (default float32; int64 for token ids). */
  readonly sampleDtype?: 'float32' | 'int64';
  /**
   * Shape of one sample in the batch of `indices`, when it depends on the batch (token ids padded to the longest
   * text of the batch: [T]). Default {@link sampleShape}.
   */
  batchSampleShape?(indices: ArrayLike<number>): readonly number[];
  /** Number of classes (for classification). */
  readonly numClasses?: number;
  /**
   * Rows of `x` a batch of `size` samples fills (default `size`). A joint batch source (domain adaptation) appends
   * unlabelled rows after the `size` labelled ones; `y` always holds `size` labels.
   */
  batchRows?(size: number): number;
  /** Writes samples `indices` into `x` (row-major, batch first; a BigInt64Array when `sampleDtype` is int64) and their labels into `y`. */
  fill(indices: ArrayLike<number>, x: Float32Array | BigInt64Array, y: BigInt64Array, ctx: { epoch: number; seed: number }): void | Promise<void>;
}

/**
 * Samples `idx` of `src` as a source of their own: `src.subset(idx)` when the source has one (an image source's
 * subset keeps its files, so they hit the feature store), else a view that maps batch indices through `idx` and keeps
 * the source's dtype and per-batch shapes (token ids). The one subset view of graft (shift, adapt's target samples).
 */
export function subsetSource(src: BatchSource, idx: ArrayLike<number>): BatchSource {
  const s = src as BatchSource & { subset?: (i: ArrayLike<number>) => BatchSource };
  if (typeof s.subset === 'function') return s.subset(idx);
  const map = (indices: ArrayLike<number>) => Array.from(indices, (i) => idx[i]!);
  return {
    length: idx.length,
    sampleShape: src.sampleShape,
    sampleDtype: src.sampleDtype,
    numClasses: src.numClasses,
    ...(src.batchSampleShape ? { batchSampleShape: (indices: ArrayLike<number>) => src.batchSampleShape!(map(indices)) } : {}),
    fill: (indices, x, y, ctx) => src.fill(map(indices), x, y, ctx),
  };
}

/** An in-memory dataset of float features/images and integer labels. */
export class ArraySource implements BatchSource {
  readonly sampleShape: readonly number[];
  private readonly stride: number;
  constructor(
    readonly x: Float32Array,
    readonly y: ArrayLike<number>,
    sampleShape: readonly number[],
    readonly numClasses?: number,
  ) {
    this.sampleShape = [...sampleShape];
    this.stride = sampleShape.reduce((a, b) => a * b, 1);
    if (x.length !== this.stride * y.length)
      throw new Error(`ArraySource: ${x.length} values do not make ${y.length} samples of shape [${sampleShape}] (need ${this.stride * y.length}).`);
  }
  get length(): number {
    return this.y.length;
  }
  fill(indices: ArrayLike<number>, x: Float32Array, y: BigInt64Array): void {
    const s = this.stride;
    for (let i = 0; i < indices.length; i++) {
      const j = indices[i]!;
      x.set(this.x.subarray(j * s, (j + 1) * s), i * s);
      y[i] = BigInt(this.y[j]!);
    }
  }
  /** A subset view (copies the selected rows). */
  subset(indices: ArrayLike<number>): ArraySource {
    const s = this.stride;
    const x = new Float32Array(indices.length * s);
    const y = new Int32Array(indices.length);
    for (let i = 0; i < indices.length; i++) {
      x.set(this.x.subarray(indices[i]! * s, (indices[i]! + 1) * s), i * s);
      y[i] = this.y[indices[i]!]!;
    }
    return new ArraySource(x, y, this.sampleShape, this.numClasses);
  }
}

/** The sample order of one epoch: a pure function of (seed, epoch). */
export function epochOrder(n: number, seed: number, epoch: number, shuffle = true): Int32Array {
  if (!shuffle) return Int32Array.from({ length: n }, (_, i) => i);
  return new Rng((seed * 2654435761 + epoch * 40503 + 1) >>> 0).permutation(n);
}

/** Buffers of per-batch shapes kept at most (token ids padded per batch make one shape per length). */
const MAX_POOLED = 64;

/** Reusable batch buffers, one pair per batch size (and per sample shape and dtype, when those vary by batch). */
export class BatchBuffers {
  private pool = new Map<string, { x: Tensor; y: Tensor }>();
  private groups = new Map<string, { x: Tensor; y: Tensor }>();
  /** `rows`: rows of x for a batch of `size` labels (a joint source's {@link BatchSource.batchRows}). */
  constructor(
    private readonly sampleShape: readonly number[],
    private readonly rows: (size: number) => number = (size) => size,
  ) {}
  get(size: number, sampleShape: readonly number[] = this.sampleShape, dtype: 'float32' | 'int64' = 'float32'): { x: Tensor; y: Tensor } {
    const key = `${size}:${sampleShape.join('x')}:${dtype}`;
    let b = this.pool.get(key);
    if (!b) {
      const dims = [this.rows(size), ...sampleShape];
      const n = dims.reduce((a, d) => a * d, 1);
      const x = dtype === 'int64' ? new Tensor('int64', dims, new BigInt64Array(n)) : Tensor.f32(dims);
      b = { x, y: new Tensor('int64', [size], new BigInt64Array(size)) };
      if (this.pool.size >= MAX_POOLED) this.pool.delete(this.pool.keys().next().value!);
      this.pool.set(key, b);
    }
    return b;
  }
  /** A buffer pair for `count` batches of `size` stacked along a leading axis: x [count, rows, ...sample], y [count, size]. */
  group(count: number, size: number, dtype: 'float32' | 'int64' = 'float32'): { x: Tensor; y: Tensor } {
    const key = `${count}:${size}:${dtype}`;
    let b = this.groups.get(key);
    if (!b) {
      const dims = [count, this.rows(size), ...this.sampleShape];
      const n = dims.reduce((a, d) => a * d, 1);
      const x = dtype === 'int64' ? new Tensor('int64', dims, new BigInt64Array(n)) : Tensor.f32(dims);
      b = { x, y: new Tensor('int64', [count, size], new BigInt64Array(count * size)) };
      this.groups.set(key, b);
    }
    return b;
  }
}

/** One batch, or `count` consecutive batches stacked (x [count, rows, ...sample], y [count, size]) for a K-step run. */
export interface BatchRun {
  x: Tensor;
  y: Tensor;
  /** Index of the (first) batch in the epoch. */
  index: number;
  /** Samples per batch. */
  size: number;
  /** Batches in this run: 1, or the K of a stacked group. */
  count: number;
}

/** Batch j of a stacked group as a batch of its own (views of the group's buffers, no copy). */
export function groupBatch(run: BatchRun, j: number): { x: Tensor; y: Tensor } {
  if (run.count === 1) return { x: run.x, y: run.y };
  const xs = run.x.size / run.count;
  const x = run.x.data.subarray(j * xs, (j + 1) * xs) as Float32Array;
  const y = (run.y.data as BigInt64Array).subarray(j * run.size, (j + 1) * run.size);
  return { x: new Tensor(run.x.dtype, run.x.dims.slice(1), x), y: new Tensor('int64', [run.size], y) };
}

/**
 * Iterates the batches of one epoch. `dropLast` drops a final partial batch (the default for
 * training, so every step has the same shape and BN statistics are well defined).
 */
export async function* batches(
  src: BatchSource,
  bufs: BatchBuffers,
  opts: { batchSize: number; seed: number; epoch: number; shuffle?: boolean; dropLast?: boolean; startBatch?: number },
): AsyncGenerator<{ x: Tensor; y: Tensor; index: number; size: number }> {
  yield* batchRuns(src, bufs, opts);
}

/**
 * The batches of one epoch as {@link batches} gives them, but where `groupAt(index)` returns K > 1 the next K batches
 * come as one stacked run (for a K-step graph). A group is only formed from K full-size batches whose samples have the
 * source's fixed shape; elsewhere (and where `groupAt` says 1) batches come one at a time. `groupAt` is asked at each
 * position just before it is filled, so it may depend on how far the caller got.
 */
export async function* batchRuns(
  src: BatchSource,
  bufs: BatchBuffers,
  opts: { batchSize: number; seed: number; epoch: number; shuffle?: boolean; dropLast?: boolean; startBatch?: number; groupAt?: (index: number) => number },
): AsyncGenerator<BatchRun> {
  const order = epochOrder(src.length, opts.seed, opts.epoch, opts.shuffle ?? true);
  const bs = opts.batchSize;
  const full = Math.floor(src.length / bs);
  const count = opts.dropLast && full > 0 ? full : Math.ceil(src.length / bs);
  const fixed = !src.batchSampleShape;
  const ctx = { epoch: opts.epoch, seed: opts.seed };
  for (let b = opts.startBatch ?? 0; b < count; ) {
    const k = fixed ? (opts.groupAt?.(b) ?? 1) : 1;
    if (k > 1 && b + k <= Math.min(count, full)) {
      const buf = bufs.group(k, bs, src.sampleDtype);
      const run: BatchRun = { x: buf.x, y: buf.y, index: b, size: bs, count: k };
      for (let j = 0; j < k; j++) {
        const v = groupBatch(run, j);
        await src.fill(order.subarray((b + j) * bs, (b + j + 1) * bs), v.x.data as Float32Array | BigInt64Array, v.y.data as BigInt64Array, ctx);
      }
      yield run;
      b += k;
      continue;
    }
    const idx = order.subarray(b * bs, Math.min(src.length, (b + 1) * bs));
    const buf = bufs.get(idx.length, src.batchSampleShape?.(idx) ?? src.sampleShape, src.sampleDtype);
    await src.fill(idx, buf.x.data as Float32Array | BigInt64Array, buf.y.data as BigInt64Array, ctx);
    yield { x: buf.x, y: buf.y, index: b, size: idx.length, count: 1 };
    b++;
  }
}

/** Number of batches per epoch for these options. */
export function batchesPerEpoch(n: number, batchSize: number, dropLast: boolean): number {
  const full = Math.floor(n / batchSize);
  return dropLast && full > 0 ? full : Math.ceil(n / batchSize);
}
