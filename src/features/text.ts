/**
 * Text on the frozen-encoder feature path: a {@link TextSource} is a batch source of labelled texts with the
 * tokenizer of its encoder, and {@link textFeatures} embeds its texts through the on-disk feature store, keyed
 * by the encoder graph, its cut and the tokenizer, each row by the SHA-256 of the text's UTF-8 bytes. A second
 * run (or a run with more data) embeds only the texts the store lacks. `sourceFeatures` (backbone.ts) sends text
 * sources here, so `Network.fit`, `evaluate` and `predict` work on text as they do on images.
 */
import path from 'node:path';
import { makeTokenizer, PAD_ID, type TextTokenizer, type TokenizerSpec } from '../data/tokenize.js';
import type { Model } from '../ir/model.js';
import { createSession, ort, runChecked } from '../runtime/session.js';
import type { BatchSource } from '../step/batches.js';
import type { OnTaskProgress } from '../util/progress.js';
import { featureCacheDir, featureStoreKey, sha256, writeStoreMeta } from './cache.js';
import { FeatureStore } from './store.js';

const TEXT_FEEDS = { what: 'text embedding' };

/**
 * Labelled texts for a text encoder. A head-only fit trains on the encoder's embeddings (computed once, see
 * {@link textFeatures}); fine-tuning the encoder reads batches of int64 token ids, right-padded with the tokenizer's
 * pad id to the longest text of each batch ([n, T]). Each text is tokenized once, on first use.
 */
export class TextSource implements BatchSource {
  /** One sample's shape as far as it is fixed: the token count T of a batch comes from {@link batchSampleShape}. */
  readonly sampleShape: readonly number[] = [1];
  readonly sampleDtype = 'int64';
  readonly tokenizer: TextTokenizer;
  private readonly ids: (number[] | undefined)[];
  private readonly padId: bigint;
  constructor(
    readonly texts: readonly string[],
    readonly labels: Int32Array,
    tokenizer: TokenizerSpec | TextTokenizer,
    readonly numClasses?: number,
    /** Where each text comes from (file:line), for messages and predictions. */
    readonly origins?: readonly string[],
  ) {
    if (labels.length !== texts.length) throw new Error(`TextSource: ${texts.length} texts but ${labels.length} labels; pass one label per text.`);
    this.tokenizer = 'encodeBatch' in tokenizer ? tokenizer : makeTokenizer(tokenizer);
    this.ids = new Array(texts.length);
    this.padId = BigInt(this.tokenizer.spec.kind === 'hf' ? this.tokenizer.spec.padId : PAD_ID);
  }
  get length(): number {
    return this.texts.length;
  }
  /**
   * The texts at `indices` (in that order) as a source of their own, with this tokenizer and the token ids
   * already computed: `subsetSource` hands it out, so a subset still embeds through the feature store.
   */
  subset(indices: ArrayLike<number>): TextSource {
    const idx = Array.from(indices);
    const sub = new TextSource(
      idx.map((i) => this.texts[i]!),
      Int32Array.from(idx, (i) => this.labels[i]!),
      this.tokenizer,
      this.numClasses,
      this.origins && idx.map((i) => this.origins![i]!),
    );
    idx.forEach((i, k) => {
      sub.ids[k] = this.ids[i];
    });
    return sub;
  }
  private tokens(i: number): number[] {
    let t = this.ids[i];
    if (!t) {
      t = this.tokenizer.encode(this.texts[i]!);
      this.ids[i] = t;
    }
    return t;
  }
  /** [T]: the longest text of the batch, in tokens (at least 1, as {@link TextTokenizer.encodeBatch} pads). */
  batchSampleShape(indices: ArrayLike<number>): readonly number[] {
    let T = 1;
    for (let i = 0; i < indices.length; i++) T = Math.max(T, this.tokens(indices[i]!).length);
    return [T];
  }
  fill(indices: ArrayLike<number>, x: Float32Array | BigInt64Array, y: BigInt64Array): void {
    if (!(x instanceof BigInt64Array))
      throw new Error("TextSource.fill: texts fill int64 token-id batches; allocate the batch with the source's sampleDtype (int64), as batches() does.");
    const T = x.length / indices.length;
    x.fill(this.padId);
    for (let r = 0; r < indices.length; r++) {
      const row = this.tokens(indices[r]!);
      for (let t = 0; t < row.length; t++) x[r * T + t] = BigInt(row[t]!);
      y[r] = BigInt(this.labels[indices[r]!]!);
    }
  }
}

/** Options of {@link textFeatures}. */
export interface TextFeatureOptions {
  /** Texts per encoder run (default 64). */
  batchSize?: number;
  /** Root of graft's cache (default: env GRAFT_CACHE_DIR, else `.graft-cache` in the cwd). */
  cacheDir?: string;
  onTaskProgress?: OnTaskProgress;
}

/** Embeddings of texts: `features` holds one row of `dims` values per text, in order; `keys` the store key of each. */
export interface TextFeatures {
  features: Float32Array;
  dims: number;
  store: string;
  keys: string[];
  /** Texts whose embedding was in the store already. */
  hits: number;
}

/**
 * Runs the frozen `encoder` (token ids in, its first output the embedding) over `texts`, through the feature
 * store: texts already embedded by this encoder and tokenizer are read back; the others are tokenized in batches
 * of similar length (less padding), embedded and stored.
 */
export async function textFeatures(encoder: Model, texts: readonly string[], tokenizer: TextTokenizer, opts: TextFeatureOptions = {}): Promise<TextFeatures> {
  const cut = encoder.graph.outputs[0]!.name;
  const input = { tokenizer: tokenizer.spec };
  const dir = path.join(featureCacheDir(opts.cacheDir), featureStoreKey(encoder, cut, input));
  const store = FeatureStore.open(dir);
  const keys = texts.map((t) => sha256(t));
  const hits = keys.filter((k) => store.has(k)).length;
  const missing = new Map<string, number>();
  keys.forEach((k, i) => {
    if (!store.has(k) && !missing.has(k)) missing.set(k, i);
  });
  const todo = [...missing.values()];
  let dims = store.dims ?? 0;
  let fresh: { rows: Float32Array; at: Map<string, number> } | undefined;
  if (todo.length) {
    const ids = todo.map((i) => tokenizer.encode(texts[i]!));
    const order = todo.map((_, k) => k).sort((a, b) => ids[a]!.length - ids[b]!.length);
    const bs = opts.batchSize ?? 64;
    const s = await createSession(encoder);
    const writer: { w?: ReturnType<FeatureStore['writer']> } = {};
    let rows: Float32Array | undefined;
    const at = new Map<string, number>();
    try {
      for (let b = 0; b < order.length; b += bs) {
        const part = order.slice(b, b + bs);
        const T = Math.max(1, ...part.map((k) => ids[k]!.length));
        const x = new BigInt64Array(part.length * T);
        part.forEach((k, r) => {
          const row = ids[k]!;
          for (let t = 0; t < row.length; t++) x[r * T + t] = BigInt(row[t]!);
        });
        const out = await runChecked(s, { [s.inputNames[0]!]: new ort.Tensor('int64', x, [part.length, T]) }, undefined, TEXT_FEEDS);
        const f = out[s.outputNames[0]!]!;
        const data = f.data as Float32Array;
        const d = data.length / part.length;
        if (!rows) {
          dims = d;
          rows = new Float32Array(todo.length * d);
          writer.w = store.writer(d);
          writeStoreMeta(dir, encoder, cut, input);
        }
        const batchKeys = part.map((k) => keys[todo[k]!]!);
        part.forEach((k, r) => {
          rows!.set(data.subarray(r * d, (r + 1) * d), k * d);
          at.set(keys[todo[k]!]!, k);
        });
        writer.w!.add(batchKeys, data.slice());
        opts.onTaskProgress?.({ task: 'embedding texts', done: Math.min(b + bs, order.length), total: order.length, unit: 'text' });
      }
      writer.w?.commit();
    } finally {
      writer.w?.close();
      await s.release();
    }
    fresh = { rows: rows!, at };
  }
  const features = new Float32Array(texts.length * dims);
  const hitKeys: string[] = [];
  const hitDest: number[] = [];
  keys.forEach((k, i) => {
    const r = fresh?.at.get(k);
    if (r !== undefined) features.set(fresh!.rows.subarray(r * dims, (r + 1) * dims), i * dims);
    else {
      hitKeys.push(k);
      hitDest.push(i);
    }
  });
  if (hitKeys.length) store.readRows(hitKeys, hitDest, features);
  return { features, dims, store: dir, keys, hits };
}
