/**
 * Feature extraction: decode and preprocess image files (sharp, libuv threads) and run a feature extractor
 * (onnxruntime, all cores, in a worker thread) as a pipeline — batch k+1 is decoded while batch k runs —
 * through a small pool of reused batch buffers (fresh large arrays are expensive; refilling is cheap).
 */
import { availableParallelism } from 'node:os';
import { defaultWarn, type WarnFn } from '../data/files.js';
import { decodeImage, ImageDecodeError, imageSize } from '../data/image.js';
import { type PreprocessConfig, type PreprocessConfigInput, parsePreprocessConfig } from '../data/preprocess.js';
import type { Model } from '../ir/model.js';
import { encodeModel } from '../onnx/io.js';
import { defaultThreads } from '../runtime/session.js';
import { InferenceWorker } from './runner.js';

/** Decodes one file into `out` at `offset` (`imageSize(cfg)` values). Default: `decodeImage` of src/data/image.ts. */
export type Decoder = (path: string, cfg: PreprocessConfig, out: Float32Array, offset: number) => Promise<void>;

/** Reports progress after each batch: images processed so far, images in total, and the mean rate since the start. */
export type ProgressFn = (done: number, total: number, imagesPerSecond: number) => void;

/** Rows of features produced by one batch (see {@link ExtractOptions.onBatch}). */
export interface FeatureRows {
  /** Item index (into `items`) of each row. */
  indices: Int32Array;
  /** `indices.length × dims` values. */
  features: Float32Array;
  /** Values per row. */
  dims: number;
}

/** Options of {@link extractFeatures}. */
export interface ExtractOptions {
  /** A feature extractor with one float32 input and one output (e.g. from `extractSubgraph(model, findCut(model).value)`). */
  model: Model;
  /** How files become the model's input (validated and filled in with defaults). */
  preprocess: PreprocessConfig | PreprocessConfigInput;
  /** Image files, in the order of the result rows. */
  items: readonly { path: string }[];
  /** Images per inference batch (default 32; forced to the model's batch size when that is fixed). */
  batchSize?: number;
  /** The model's ONNX bytes when the caller already encoded it (skips encoding it again). */
  modelBytes?: Uint8Array;
  /** Images decoded at once (default: the number of cores, at most 8). */
  concurrency?: number;
  /** Called after each batch. */
  onProgress?: ProgressFn;
  /** Throw on the first undecodable image instead of skipping it with a warning (default false). */
  strict?: boolean;
  /** Warning sink for skipped images (default `console.warn`). */
  onWarning?: WarnFn;
  /** onnxruntime intra-op threads (default: all cores, or GRAFT_THREADS). */
  threads?: number;
  /** Replaces the image decoder (tests count calls with it; other formats can plug in here). */
  decoder?: Decoder;
  /** Called with each batch's rows as soon as they are computed (the cache stores them incrementally). */
  onBatch?: (rows: FeatureRows) => void | Promise<void>;
}

/** An image that could not be decoded. */
export interface FailedItem {
  /** The file. */
  path: string;
  /** Its index in `items`. */
  index: number;
  /** Why (an `ImageDecodeError` whose message names the file and the fix). */
  error: Error;
}

/** Result of {@link extractFeatures}. */
export interface ExtractResult {
  /** `indices.length × dims` values, row r belonging to item `indices[r]` (failed items have no row). */
  features: Float32Array;
  /** Values per row (the product of the output's non-batch dims); 0 when nothing was computed and the model does not say. */
  dims: number;
  /** Item index of each row, ascending; equal to 0..n-1 when nothing failed. */
  indices: Int32Array;
  /** Items that were skipped (empty with `strict`). */
  failed: FailedItem[];
}

/** Warnings printed per file before they are summarised. */
const MAX_WARNINGS = 10;
/** Batch buffers in the pool: one being decoded into while the other is in onnxruntime. */
const BUFFERS = 2;

const defaultDecoder: Decoder = async (path, cfg, out, offset) => {
  await decodeImage(path, cfg, { out, offset });
};

/** What the model's signature says about batching and the feature size. */
interface Plan {
  batch: number;
  fixedBatch: boolean;
  /** Feature size when the output shape is static, else 0. */
  dims: number;
}

/**
 * Checks that `model` is a one-input, one-output float32 model whose input fits `cfg`.
 * @throws naming the mismatch and how to fix it.
 */
export function planExtraction(model: Model, cfg: PreprocessConfig, batchSize: number): Plan {
  const g = model.graph;
  const inputs = g.inputs.filter((v) => !g.initializers.has(v.name));
  const who = 'extractFeatures';
  if (inputs.length !== 1)
    throw new Error(
      `${who}: the model has ${inputs.length} inputs (${inputs.map((v) => v.name).join(', ') || 'none'}); pass a feature extractor with exactly one image input.`,
    );
  if (g.outputs.length !== 1)
    throw new Error(
      `${who}: the model has ${g.outputs.length} outputs (${g.outputs.map((v) => v.name).join(', ')}); pass a feature extractor with one output, e.g. extractSubgraph(model, findCut(model).value).`,
    );
  const input = inputs[0]!;
  if (input.dtype !== 'float32') throw new Error(`${who}: the model input "${input.name}" is ${input.dtype}; graft feeds float32 images. Use a float32 model.`);
  const [h, w] = cfg.size;
  const want = cfg.layout === 'NCHW' ? [cfg.channels, h, w] : [h, w, cfg.channels];
  const shape = input.shape;
  if (shape) {
    const ok = shape.length === 4 && shape.slice(1).every((d, i) => typeof d !== 'number' || d === want[i]);
    if (!ok)
      throw new Error(
        `${who}: the model input "${input.name}" has shape [${shape.map((d) => d ?? '?').join(', ')}] but the preprocessing config produces [N, ${want.join(', ')}] (${cfg.layout}); set size, channels and layout in the preprocessing config to match the model.`,
      );
  }
  const b0 = shape?.[0];
  const fixedBatch = typeof b0 === 'number';
  if (!fixedBatch && (!Number.isInteger(batchSize) || batchSize < 1)) throw new Error(`${who}: batchSize must be a positive integer, got ${batchSize}.`);
  const out = g.outputs[0]!.shape;
  const rest = out?.slice(1);
  const dims = rest?.every((d) => typeof d === 'number') ? (rest as number[]).reduce((a, b) => a * b, 1) : 0;
  return { batch: fixedBatch ? b0 : batchSize, fixedBatch, dims };
}

/** Hands out the batch buffers to batches in order; a batch waits until the buffer of batch k−BUFFERS comes back. */
class BufferPool {
  private readonly free: Float32Array[] = [];
  private readonly waiters: ((b: Float32Array | undefined) => void)[] = [];
  private closed = false;
  constructor(count: number, size: number) {
    for (let i = 0; i < count; i++) this.free.push(new Float32Array(size));
  }
  acquire(): Promise<Float32Array | undefined> {
    if (this.closed) return Promise.resolve(undefined);
    const b = this.free.shift();
    return b ? Promise.resolve(b) : new Promise((res) => this.waiters.push(res));
  }
  release(b: Float32Array): void {
    const w = this.waiters.shift();
    if (w) w(b);
    else this.free.push(b);
  }
  close(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w(undefined);
  }
}

interface BatchState {
  buffer: Float32Array | undefined;
  remaining: number;
  failed: number[];
  done: Promise<void>;
  resolve: () => void;
}

/**
 * Computes features for image files: decodes with sharp while onnxruntime runs the previous batch.
 * Undecodable images are skipped with a warning naming the file (listed in `failed`, no row), or throw with `strict`.
 * @returns rows in item order, their item indices, the feature size and the skipped files.
 * @throws when the model does not fit the preprocessing config, onnxruntime fails, or (strict) an image cannot be decoded.
 */
export async function extractFeatures(opts: ExtractOptions): Promise<ExtractResult> {
  const cfg = parsePreprocessConfig(opts.preprocess, 'extractFeatures preprocessing config');
  const plan = planExtraction(opts.model, cfg, opts.batchSize ?? 32);
  const items = opts.items;
  const n = items.length;
  const warn = opts.onWarning ?? defaultWarn;
  const decoder = opts.decoder ?? defaultDecoder;
  const failed: FailedItem[] = [];
  if (n === 0) return { features: new Float32Array(0), dims: plan.dims, indices: new Int32Array(0), failed };

  const B = plan.batch;
  const per = imageSize(cfg);
  const nb = Math.ceil(n / B);
  const [h, w] = cfg.size;
  const batchDims = (rows: number) => (cfg.layout === 'NCHW' ? [rows, cfg.channels, h, w] : [rows, h, w, cfg.channels]);
  const start = performance.now();
  const pool = new BufferPool(Math.min(BUFFERS, nb), (plan.fixedBatch ? B : Math.min(B, n)) * per);

  // Decoding: `concurrency` slots take images in order; each batch takes a pool buffer when its first image starts.
  const states = new Map<number, Promise<BatchState>>();
  const stateOf = (b: number): Promise<BatchState> => {
    let s = states.get(b);
    if (!s) {
      s = pool.acquire().then((buffer) => {
        let resolve!: () => void;
        const done = new Promise<void>((r) => {
          resolve = r;
        });
        return { buffer, remaining: Math.min(B, n - b * B), failed: [], done, resolve };
      });
      states.set(b, s);
    }
    return s;
  };
  let next = 0;
  let abort: unknown;
  const slot = async () => {
    while (abort === undefined && next < n) {
      const i = next++;
      const b = Math.floor(i / B);
      const st = await stateOf(b);
      if (!st.buffer) return;
      const offset = (i - b * B) * per;
      try {
        await decoder(items[i]!.path, cfg, st.buffer, offset);
      } catch (e) {
        const err = e instanceof ImageDecodeError ? e : new ImageDecodeError(items[i]!.path, e);
        if (opts.strict) {
          abort ??= err;
          pool.close();
          st.resolve();
          return;
        }
        st.buffer.fill(0, offset, offset + per);
        st.failed.push(i);
        failed.push({ path: items[i]!.path, index: i, error: err });
        if (failed.length <= MAX_WARNINGS) warn(`skipped: ${err.message}`);
      }
      if (--st.remaining === 0) st.resolve();
    }
  };
  const limit = Math.max(1, Math.min(opts.concurrency ?? Math.min(8, availableParallelism()), n));
  const slots = Promise.all(Array.from({ length: limit }, slot));
  slots.catch(() => {});

  let features: Float32Array | undefined;
  let dims = plan.dims;
  const indices = new Int32Array(n);
  let rows = 0;
  let processed = 0;
  // created after the decoders started, so the first files are already decoding while the model is encoded and loaded
  let worker: InferenceWorker | undefined;
  try {
    worker = new InferenceWorker(opts.modelBytes ?? encodeModel(opts.model), { threads: opts.threads ?? defaultThreads(), label: 'feature extractor' });
    for (let b = 0; b < nb; b++) {
      const st = await stateOf(b);
      await Promise.race([st.done, slots]);
      if (abort !== undefined) throw abort;
      await st.done;
      const count = Math.min(B, n - b * B);
      const buffer = st.buffer!;
      if (st.failed.length < count) {
        const fed = plan.fixedBatch ? B : count;
        if (fed > count) buffer.fill(0, count * per, fed * per);
        let r: Awaited<ReturnType<InferenceWorker['run']>>;
        try {
          r = await worker.run(buffer, batchDims(fed));
        } catch (e) {
          if ((e as Error).name === 'ModelLoadError') throw e;
          throw new Error(
            `extractFeatures: onnxruntime failed on batch ${b + 1}/${nb} (items ${b * B}–${b * B + count - 1}, first file ${items[b * B]!.path}): ${(e as Error).message.replace(/\.+$/, '')}. Check that the preprocessing config matches the model's input.`,
            { cause: e },
          );
        }
        pool.release(r.buffer);
        const d = r.dims.slice(1).reduce((a, c) => a * c, 1);
        if (r.dims[0] !== fed || r.output.length !== fed * d)
          throw new Error(
            `extractFeatures: the model returned shape [${r.dims.join(', ')}] for a batch of ${fed}; a feature extractor must return one row per image (batch dimension first).`,
          );
        if (!features) {
          dims = d;
          features = new Float32Array(n * d);
        } else if (d !== dims)
          throw new Error(`extractFeatures: the model returned ${d} features per image on batch ${b + 1} but ${dims} before; its output size must not vary.`);
        const bad = new Set(st.failed);
        const first = rows;
        for (let k = 0; k < count; k++) {
          if (bad.has(b * B + k)) continue;
          features.set(r.output.subarray(k * d, (k + 1) * d), rows * d);
          indices[rows++] = b * B + k;
        }
        if (opts.onBatch) await opts.onBatch({ indices: indices.slice(first, rows), features: features.slice(first * d, rows * d), dims: d });
      } else pool.release(buffer);
      processed += count;
      opts.onProgress?.(processed, n, processed / Math.max((performance.now() - start) / 1000, 1e-9));
    }
  } finally {
    abort ??= new Error('extractFeatures stopped');
    pool.close();
    await Promise.all([worker?.close(), slots.catch(() => {})]);
  }
  if (failed.length > MAX_WARNINGS) warn(`skipped ${failed.length - MAX_WARNINGS} more undecodable image(s); see the result's \`failed\` list.`);
  failed.sort((a, b) => a.index - b.index);
  const out = features ?? new Float32Array(0);
  return {
    features: rows === n ? out : out.slice(0, rows * dims),
    dims,
    indices: rows === n ? indices : indices.slice(0, rows),
    failed,
  };
}
