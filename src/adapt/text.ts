/**
 * Text domains for `graft adapt --encoder …`: labelled source texts, unlabelled target texts and (optionally)
 * labelled target texts that are only evaluated, all tokenized for one frozen text encoder; and the network
 * adaptation trains on them: the encoder frozen, a new bottleneck head after its embedding.
 *
 * Nothing else is text-specific: {@link adapt} sees a frozen backbone (every trainable parameter after the
 * encoder's `graft.cut`), so each text is embedded once through the feature store (`sourceFeatures`, keyed by
 * encoder, tokenizer and text) and the head trains on the embeddings with the same step compiler, joint batches,
 * loop and checkpoint selection as for images. CORAL and DAN align the head's hidden layer (the bottleneck).
 */
import { loadTextData, textLeakWarnings } from '../data/text.js';
import type { TextTokenizer, TokenizerSpec } from '../data/tokenize.js';
import { TextSource } from '../features/text.js';
import type { Model } from '../ir/model.js';
import type { TextEncoder } from '../models/text-encoders.js';
import type { TransformerPooling } from '../models/transformer.js';
import { mlp } from '../nn/index.js';
import { Network } from '../train/network.js';
import type { UnlabelledSource } from './data.js';
import { METHODS, type MethodName } from './methods.js';

/** Unlabelled texts for a text encoder: a {@link TextSource} whose labels are −1, marked as adaptation's target. */
export type UnlabelledTexts = TextSource & UnlabelledSource;

/** Unlabelled target texts (labels −1), accepted by {@link adapt} as the target; still embedded through the feature store. */
export function unlabelledTexts(texts: readonly string[], tokenizer: TokenizerSpec | TextTokenizer, origins?: readonly string[]): UnlabelledTexts {
  const src = new TextSource(texts, new Int32Array(texts.length).fill(-1), tokenizer, undefined, origins);
  return Object.assign(src, { unlabelled: true as const });
}

/** The methods that apply to text (FixMatch's two views are image augmentations; AdaBN needs BatchNorm, which the head has not). */
export const TEXT_METHODS: readonly MethodName[] = METHODS.filter((m) => m !== 'fixmatch' && m !== 'adabn');

/** Options of {@link loadTextDomains}. */
export interface TextDomainOptions {
  /** Labelled source texts: a CSV/TSV/JSONL table with text and label columns, or a folder of `<class>/<file>.txt`. */
  source: string;
  /** Unlabelled target texts (a table's label column, if any, is not read). */
  target: string;
  /** Labelled target texts, evaluated only (never trained on, never used to select). */
  targetEval?: string;
  /** The text encoder: a name (tfidf, glove, glove-sif, …) or an encoder .onnx (see `resolveTextEncoder`). */
  encoder: string;
  pooling?: TransformerPooling;
  /** Fraction of the source held out for source validation. */
  valSplit: number;
  seed: number;
  /** At most this many source training texts (a stratified, seeded subsample). */
  limit?: number;
  textColumn?: string;
  labelColumn?: string;
  warn: (message: string) => void;
  onNote?: (message: string) => void;
  /** Model cache folder (default GRAFT_MODELS_DIR). */
  modelsDir?: string;
}

/** The loaded domains, as batch sources of the encoder's tokenizer, and the encoder. */
export interface TextDomains {
  classes: string[];
  encoder: TextEncoder;
  train: TextSource;
  val?: TextSource;
  target: UnlabelledTexts;
  targetEval?: TextSource;
}

/**
 * Loads the source (split into train and a stratified, seeded validation part), the target and the evaluation
 * texts, and resolves the encoder (tfidf fits its IDF on the source's training texts only, as `graft train` does).
 * @throws naming file:line for bad text input (as `loadTextData`), a single-class source, or an unknown encoder.
 */
export async function loadTextDomains(o: TextDomainOptions): Promise<TextDomains> {
  const cols = { textColumn: o.textColumn, labelColumn: o.labelColumn, onWarning: o.warn };
  const src = await loadTextData(o.source, cols);
  if (src.classes.length < 2)
    throw new Error(`--source: ${o.source} has a single class (${src.classes[0]}); adaptation trains a classifier, which needs at least two classes.`);
  const { splitTrainVal } = await import('../data/split.js');
  const s = splitTrainVal(src.labels!, { val: o.valSplit, seed: o.seed, limit: o.limit, classes: src.classes });
  const pick = (idx: Int32Array) => ({
    texts: Array.from(idx, (i) => src.texts[i]!),
    labels: Int32Array.from(idx, (i) => src.labels![i]!),
    origins: Array.from(idx, (i) => src.origins[i]!),
  });
  const train = pick(s.train);
  const val = s.val.length ? pick(s.val) : undefined;
  const tgt = await loadTextData(o.target, { ...cols, labelled: false });
  if (tgt.labels)
    o.warn(
      `--target: ${o.target} has a "${o.labelColumn ?? 'label'}" column; its labels are ignored (unsupervised adaptation never trains on target labels). ` +
        'To evaluate on them, pass the same file as --target-eval.',
    );
  const ev = o.targetEval ? await loadTextData(o.targetEval, { ...cols, classes: src.classes }) : undefined;
  for (const w of textLeakWarnings([
    { name: 'source train', data: train },
    ...(val ? [{ name: 'source val', data: val }] : []),
    ...(ev ? [{ name: 'target eval', data: ev }] : []),
  ]))
    o.warn(w);
  const { resolveTextEncoder } = await import('../models/text-registry.js');
  const encoder = await resolveTextEncoder(o.encoder, { trainTexts: train.texts, pooling: o.pooling, onNote: o.onNote, dir: o.modelsDir });
  const tok = encoder.tokenizer;
  const n = src.classes.length;
  return {
    classes: src.classes,
    encoder,
    train: new TextSource(train.texts, train.labels, tok, n, train.origins),
    val: val && new TextSource(val.texts, val.labels, tok, n, val.origins),
    target: unlabelledTexts(tgt.texts, tok, tgt.origins),
    targetEval: ev && new TextSource(ev.texts, ev.labels!, tok, n, ev.origins),
  };
}

/**
 * The network text adaptation trains: the encoder frozen, a new head `mlp([bottleneck], classes)` grafted at its
 * embedding (`graft.cut`), initialised from `seed`. The adaptation terms act on the bottleneck layer.
 */
export function textAdaptModel(encoder: Model, classes: number, o: { bottleneck: number; seed: number }): { model: Model; trainable: string[] } {
  const net = new Network(encoder.clone());
  net.freeze().replaceHead(mlp([o.bottleneck], classes), { seed: o.seed });
  return { model: net.model, trainable: [...net.trainable] };
}
