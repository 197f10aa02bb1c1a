/**
 * The domains `graft shift` compares: an image folder (read recursively; sub-folder names are ignored), a
 * manifest (its label column, if any, is not read), or a built-in set of 28×28 grey images: `mnist` (the MNIST
 * training images), `mnist-style-shift` (graft adapt's style-shifted target) and `fashion-mnist`; or, for a text
 * encoder, a text table or a folder of `.txt` files ({@link loadTextDomain}).
 */
import fs from 'node:fs';
import { sampleIndices } from '../adapt/data.js';
import { arraysFor, checkMnistSized } from '../adapt/sources.js';
import type { PreprocessConfig } from '../data/preprocess.js';
import type { TokenizerSpec } from '../data/tokenize.js';
import type { TextSource } from '../features/text.js';
import { ArraySource, type BatchSource } from '../step/batches.js';

/** Built-in domain names. */
export const SHIFT_BUILTINS = ['mnist', 'mnist-style-shift', 'fashion-mnist'] as const;

/** Options of {@link loadDomain}. */
export interface LoadDomainOptions {
  /** The flag the reference came from, for messages (default 'domain'). */
  flag?: string;
  /** Keep at most this many images of a folder or manifest (a seeded subsample), so only those are decoded. */
  maxImages?: number;
  seed?: number;
  warn?: (message: string) => void;
}

/** True when `ref` names a built-in set rather than a path. */
export function isShiftBuiltin(ref: string): boolean {
  return (SHIFT_BUILTINS as readonly string[]).includes(ref);
}

/**
 * Loads one domain's images, decoded with `pre` (built-ins need a 28×28 grayscale preprocessing).
 * @throws naming the flag when the reference is neither a built-in nor an existing folder or manifest.
 */
export async function loadDomain(ref: string, pre: PreprocessConfig, o: LoadDomainOptions = {}): Promise<BatchSource> {
  const flag = o.flag ?? 'domain';
  if (isShiftBuiltin(ref)) {
    checkMnistSized(pre, `${flag} ${ref}`);
    const { loadFashionMnist, loadMnist } = await import('../data/idx.js');
    const ds = ref === 'fashion-mnist' ? await loadFashionMnist() : await loadMnist();
    let x = ds.train.x;
    if (ref === 'mnist-style-shift') x = (await import('../data/shift.js')).styleShift(x, { seed: 123 });
    return new ArraySource(arraysFor(x, pre, `${flag} ${ref}`), ds.train.y, [1, 28, 28], 10);
  }
  let st: fs.Stats;
  try {
    st = fs.statSync(ref);
  } catch (e) {
    throw new Error(
      `${flag}: ${ref} does not exist (${(e as NodeJS.ErrnoException).code}); give an image folder, a manifest (.csv/.jsonl) or one of ${SHIFT_BUILTINS.join(', ')}.`,
    );
  }
  const { ManifestDataset, UnlabelledFolder } = await import('../data/dataset.js');
  const { ImageSource } = await import('../data/image-source.js');
  let paths: string[];
  try {
    paths = st.isDirectory()
      ? [...(await UnlabelledFolder.load(ref, { onWarning: o.warn })).paths]
      : [...(await ManifestDataset.load(ref, { onWarning: o.warn })).paths];
  } catch (e) {
    throw new Error(`${flag}: ${(e as Error).message}`);
  }
  if (o.maxImages !== undefined && paths.length > o.maxImages) {
    const keep = sampleIndices(paths.length, o.maxImages, o.seed ?? 0);
    paths = Array.from(keep, (i) => paths[i]!);
  }
  return (await ImageSource.create(paths, new Int32Array(paths.length), { preprocess: pre, onWarning: o.warn })).source;
}

/** One domain's texts, and the batch source of them for an encoder's tokenizer. */
export interface TextDomain {
  texts: string[];
  /** The texts as a source for the encoder whose tokenizer is given (labels unread, all 0). */
  source(tokenizer: TokenizerSpec): TextSource;
}

/**
 * Loads one domain's texts: a CSV/TSV/JSONL table (its label column not read) or a folder of `.txt` files.
 * @throws naming the flag and file:line for bad text input (see `loadTextData`).
 */
export async function loadTextDomain(ref: string, o: { flag?: string; textColumn?: string; warn?: (message: string) => void } = {}): Promise<TextDomain> {
  const { loadTextData } = await import('../data/text.js');
  const { TextSource } = await import('../features/text.js');
  let t: Awaited<ReturnType<typeof loadTextData>>;
  try {
    t = await loadTextData(ref, { labelled: false, textColumn: o.textColumn, onWarning: o.warn });
  } catch (e) {
    throw new Error(`${o.flag ?? 'domain'}: ${(e as Error).message}`);
  }
  return { texts: t.texts, source: (tokenizer) => new TextSource(t.texts, new Int32Array(t.texts.length), tokenizer, undefined, t.origins) };
}
