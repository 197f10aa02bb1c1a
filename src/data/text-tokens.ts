/**
 * Text → token ids (the browser-safe core: no Node built-ins, no packages; data/tokenize.ts adds files and the
 * Hugging Face library), the text counterpart of image preprocessing. A tokenizer is described by a plain JSON
 * {@link TokenizerSpec}, written beside an exported text model (`<model>.tokenizer.json`), so the model runs
 * anywhere onnxruntime does with the same few lines of tokenization (docs/formats.md spells them out).
 *
 * The word rule shared by the hashed and the vocabulary tokenizers ({@link wordTokens}): Unicode NFKC, lower
 * case, then every maximal run of letters, digits and marks (`[\p{L}\p{N}\p{M}]+`) is a word; everything else
 * separates words. The first `maxTokens` words are kept.
 *
 * Batches are right-padded to the longest text of the batch ([N, T] int64, T ≥ 1) with id 0 ({@link PAD_ID}), or a
 * Hugging Face tokenizer's own pad id.
 */

/** A loaded Hugging Face tokenizer: `encode(text).ids`, with special tokens. */
export interface HfEncoder {
  encode(text: string): { ids: ArrayLike<number | bigint> };
}

/** Makes an {@link HfEncoder} from a tokenizer.json object and its tokenizer_config.json (`new Tokenizer(json, config)`). */
export type HfFactory = (tokenizer: Record<string, unknown>, config: Record<string, unknown>) => HfEncoder;

/** Id of the padding token in every graft tokenizer. */
export const PAD_ID = 0;
/** Id of an out-of-vocabulary word in a vocabulary tokenizer. */
export const UNK_ID = 1;

/** Hashed words (TF-IDF): word → 1 + FNV-1a-32(UTF-8 bytes) mod (buckets − 1); 0 is padding. */
export interface HashedWordsSpec {
  kind: 'hashed-words';
  buckets: number;
  maxTokens: number;
}

/** Vocabulary words (static word vectors): word → 2 + its index in `vocab`, 1 for other words, 0 is padding. */
export interface VocabWordsSpec {
  kind: 'vocab-words';
  maxTokens: number;
  vocab: string[];
}

/**
 * A Hugging Face tokenizer (transformer encoders): `tokenizer` is the content of its `tokenizer.json`, run by
 * `@huggingface/tokenizers` with special tokens ([CLS] … [SEP]); a text longer than `maxTokens` keeps its first
 * `maxTokens − 1` ids and its last (the closing special token). Batches are padded with `padId`.
 */
export interface HfTokenizerSpec {
  kind: 'hf';
  maxTokens: number;
  padId: number;
  tokenizer: Record<string, unknown>;
  /** The content of `tokenizer_config.json`, when there is one. */
  config?: Record<string, unknown>;
}

/** A tokenizer's full description (JSON). */
export type TokenizerSpec = HashedWordsSpec | VocabWordsSpec | HfTokenizerSpec;

/** Token ids of a batch of texts: [n, T] int64, right-padded with {@link PAD_ID}. */
export interface TokenBatch {
  ids: BigInt64Array;
  dims: [number, number];
}

/** Turns texts into padded token-id batches. */
export interface TextTokenizer {
  readonly spec: TokenizerSpec;
  /** Token ids of one text (at most maxTokens; possibly empty). */
  encode(text: string): number[];
  /** Token ids of texts, right-padded to the longest (at least 1 column). */
  encodeBatch(texts: readonly string[]): TokenBatch;
}

const WORD = /[\p{L}\p{N}\p{M}]+/gu;

/** The words of a text by graft's word rule (NFKC, lower case, runs of letters/digits/marks), the first `max` of them. */
export function wordTokens(text: string, max = Number.POSITIVE_INFINITY): string[] {
  const out: string[] = [];
  for (const m of text.normalize('NFKC').toLowerCase().matchAll(WORD)) {
    if (out.length >= max) break;
    out.push(m[0]);
  }
  return out;
}

const utf8 = new TextEncoder();

/** FNV-1a, 32 bits, of the UTF-8 bytes of `s`. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (const b of utf8.encode(s)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** Token-id rows right-padded with `padId` to the longest (at least 1 column): how every text batch is padded. */
export function padTokenIds(rows: readonly (readonly number[])[], padId = PAD_ID): TokenBatch {
  const T = Math.max(1, ...rows.map((r) => r.length));
  const ids = new BigInt64Array(rows.length * T);
  if (padId !== 0) ids.fill(BigInt(padId));
  rows.forEach((r, i) => {
    for (let t = 0; t < r.length; t++) ids[i * T + t] = BigInt(r[t]!);
  });
  return { ids, dims: [rows.length, T] };
}

/**
 * The tokenizer a spec describes; a "hf" spec needs `hf`, the Hugging Face tokenizers library's constructor (the Node
 * side passes it in data/tokenize.ts, the web bundle its bundled copy).
 * @throws naming the field when the spec is malformed (e.g. a damaged `<model>.tokenizer.json`).
 */
export function makeTokenizer(spec: TokenizerSpec, where = 'tokenizer', hf?: HfFactory): TextTokenizer {
  const s = spec as unknown as { kind?: unknown; maxTokens?: number; buckets?: number; vocab?: unknown[] };
  if (!(Number.isInteger(s.maxTokens) && s.maxTokens! >= 1))
    throw new Error(`${where}: "maxTokens" must be a positive integer, got ${JSON.stringify(s.maxTokens)}; fix or regenerate the tokenizer file.`);
  const max = s.maxTokens!;
  let encode: (text: string) => number[];
  if (s.kind === 'hashed-words') {
    const B = s.buckets!;
    if (!(Number.isInteger(B) && B >= 2))
      throw new Error(`${where}: "buckets" must be an integer >= 2, got ${JSON.stringify(B)}; fix or regenerate the tokenizer file.`);
    encode = (text) => wordTokens(text, max).map((w) => 1 + (fnv1a(w) % (B - 1)));
  } else if (s.kind === 'vocab-words') {
    if (!Array.isArray(s.vocab) || s.vocab.some((w) => typeof w !== 'string'))
      throw new Error(`${where}: "vocab" must be a list of words (strings); fix or regenerate the tokenizer file.`);
    const index = new Map<string, number>();
    (s.vocab as string[]).forEach((w, i) => {
      if (!index.has(w)) index.set(w, i + 2);
    });
    encode = (text) => wordTokens(text, max).map((w) => index.get(w) ?? UNK_ID);
  } else if (s.kind === 'hf') {
    const h = spec as HfTokenizerSpec;
    if (!h.tokenizer || typeof h.tokenizer !== 'object' || !Number.isInteger(h.padId))
      throw new Error(`${where}: a "hf" tokenizer needs "tokenizer" (the tokenizer.json object) and an integer "padId"; regenerate the tokenizer file.`);
    if (!hf)
      throw new Error(
        `${where}: a "hf" tokenizer needs the Hugging Face tokenizers library, which this build does not load; use graft's data/tokenize.js (Node) or the web bundle's loader.`,
      );
    let tok: HfEncoder;
    try {
      tok = hf(h.tokenizer, h.config ?? {});
    } catch (e) {
      throw new Error(
        `${where}: @huggingface/tokenizers cannot load this tokenizer.json (${(e as Error).message}); check that it is a tokenizer.json of the Hugging Face tokenizers library.`,
      );
    }
    encode = (text) => {
      const ids = Array.from(tok.encode(text).ids, Number);
      return ids.length > max ? [...ids.slice(0, max - 1), ids.at(-1)!] : ids;
    };
    return { spec, encode, encodeBatch: (texts) => padTokenIds(texts.map(encode), h.padId) };
  } else
    throw new Error(
      `${where}: unknown tokenizer kind ${JSON.stringify(s.kind)}; graft writes "hashed-words", "vocab-words" or "hf". Regenerate the tokenizer file.`,
    );
  return { spec, encode, encodeBatch: (texts) => padTokenIds(texts.map(encode)) };
}
