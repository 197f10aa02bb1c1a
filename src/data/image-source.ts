/**
 * ImageSource: a {@link BatchSource} over labelled image files. `fill()` decodes a minibatch with
 * {@link decodeBatch} (several files in flight) straight into the training loop's buffer.
 *
 * Augmentation randomness is a pure function of (seed, epoch, sample index), so a resumed run decodes
 * exactly the same crops and flips as an uninterrupted one, whatever the batch composition or timing.
 * Corrupt files are found up front by {@link ImageSource.create}'s validation pass: dropped with a
 * warning naming each file, or an error in strict mode.
 */

import { availableParallelism } from 'node:os';
import type { BatchSource } from '../step/batches.js';
import { Rng } from '../tensor.js';
import type { AugmentConfig } from './augment.js';
import type { WarnFn } from './files.js';
import { decodeBatch, type ImageDecodeError, imageSize } from './image.js';
import { type PreprocessConfig, parsePreprocessConfig } from './preprocess.js';

/** Options of {@link ImageSource}. */
export interface ImageSourceOptions {
  /** How files become tensors (size, channels, normalisation, layout). */
  preprocess: PreprocessConfig;
  /** Train-time augmentation; omit for evaluation data. */
  augment?: AugmentConfig;
  /** Files decoded at once (default: CPU cores, at most 16). */
  concurrency?: number;
  /** Number of classes (default: max label + 1). */
  numClasses?: number;
  /** Warning sink for files that fail to decode during training (default console.warn). */
  onWarning?: WarnFn;
}

/** Options of {@link ImageSource.create}: those of the source plus how to treat corrupt files. */
export interface CreateImageSourceOptions extends ImageSourceOptions {
  /** Throw on the first corrupt image instead of dropping it with a warning (the CLI's --strict). */
  strict?: boolean;
  /** Skip the validation pass (every file is assumed decodable). */
  skipValidation?: boolean;
  /** Called after each validated file (for progress reporting). */
  onValidated?: (done: number, total: number) => void;
}

/** A corrupt file found by the validation pass. */
export interface DroppedImage {
  /** Index in the list given to {@link ImageSource.create}. */
  index: number;
  file: string;
  reason: string;
}

/** A 32-bit mix of (seed, epoch, index): the sub-seed of one sample's augmentation in one epoch. */
export function sampleSeed(seed: number, epoch: number, index: number): number {
  let h = Math.imul((seed >>> 0) ^ 0x9e3779b9, 0x85ebca6b) >>> 0;
  for (const v of [epoch, index]) {
    h = Math.imul(h ^ (v >>> 0), 0xcc9e2d51) >>> 0;
    h = ((h << 15) | (h >>> 17)) >>> 0;
    h = (Math.imul(h, 0x1b873593) + 0xe6546b64) >>> 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * An Rng that hands out a fixed list of sub-seeds: {@link decodeBatch} draws one sub-seed per file, in file
 * order, with `int(2^32)`; feeding it per-sample seeds makes each image's augmentation independent of the batch.
 */
class SeedList extends Rng {
  private k = 0;
  constructor(private readonly seeds: readonly number[]) {
    super(0);
  }
  override int(_n: number): number {
    const s = this.seeds[this.k++];
    if (s === undefined) throw new Error('ImageSource: more sub-seeds drawn than files in the batch (decodeBatch changed how it seeds images).');
    return s;
  }
}

/** Labelled image files as a training/evaluation batch source. */
export class ImageSource implements BatchSource {
  readonly sampleShape: readonly number[];
  readonly numClasses?: number;
  /** The augmentation config when augmentation is on (Network.fit then skips the feature cache). */
  readonly augment?: AugmentConfig;
  readonly preprocess: PreprocessConfig;
  private readonly per: number;
  private readonly concurrency: number;
  private readonly warned = new Set<string>();
  private readonly warn: WarnFn;

  /** Use {@link ImageSource.create} to drop corrupt files first; this constructor trusts every file. */
  constructor(
    /** Image files, sample order. */
    readonly paths: readonly string[],
    /** Class index of each file. */
    readonly labels: Int32Array,
    opts: ImageSourceOptions,
  ) {
    if (paths.length !== labels.length) throw new Error(`ImageSource: ${paths.length} files but ${labels.length} labels; pass one label per file.`);
    this.preprocess = opts.preprocess;
    this.augment = opts.augment;
    this.per = imageSize(opts.preprocess);
    const [h, w] = opts.preprocess.size;
    const c = opts.preprocess.channels;
    this.sampleShape = opts.preprocess.layout === 'NCHW' ? [c, h, w] : [h, w, c];
    let max = -1;
    for (const l of labels) if (l > max) max = l;
    this.numClasses = opts.numClasses ?? max + 1;
    this.concurrency = Math.max(1, opts.concurrency ?? Math.min(16, availableParallelism()));
    this.warn = opts.onWarning ?? ((m) => console.warn(`warning: ${m}`));
  }

  /**
   * Validates every file (a full decode at a small size, `concurrency` at a time), drops the corrupt ones
   * with one warning per file (or throws the first {@link ImageDecodeError} when `strict`), and returns the
   * source over the remaining files plus the list of dropped ones.
   * @throws when `strict` and a file cannot be decoded, or when no file is left.
   */
  static async create(
    paths: readonly string[],
    labels: ArrayLike<number>,
    opts: CreateImageSourceOptions,
  ): Promise<{ source: ImageSource; dropped: DroppedImage[] }> {
    const warn = opts.onWarning ?? ((m: string) => console.warn(`warning: ${m}`));
    const dropped = opts.skipValidation ? [] : await findCorrupt(paths, opts);
    if (dropped.length && opts.strict) {
      const d = dropped[0]!;
      throw new Error(
        `Cannot decode image ${d.file}: ${d.reason}. Re-encode or remove the file, or run without --strict to skip unreadable images with a warning.`,
      );
    }
    for (const d of dropped) warn(`skipping corrupt image ${d.file} (${d.reason}); re-encode or remove it (--strict makes this an error).`);
    const bad = new Set(dropped.map((d) => d.index));
    const keepPaths: string[] = [];
    const keepLabels: number[] = [];
    for (let i = 0; i < paths.length; i++) {
      if (bad.has(i)) continue;
      keepPaths.push(paths[i]!);
      keepLabels.push(labels[i]!);
    }
    if (keepPaths.length === 0 && paths.length > 0)
      throw new Error(
        `None of the ${paths.length} images could be decoded (first: ${dropped[0]?.file}); check that the files are images (JPEG, PNG, WebP, …).`,
      );
    const source = new ImageSource(keepPaths, Int32Array.from(keepLabels), opts);
    return { source, dropped };
  }

  get length(): number {
    return this.paths.length;
  }

  /** A new source over some of this source's samples (same preprocessing and augmentation). */
  subset(indices: ArrayLike<number>, opts: { augment?: AugmentConfig | false } = {}): ImageSource {
    const paths = Array.from(indices, (i) => this.paths[i]!);
    const labels = Int32Array.from(indices, (i) => this.labels[i]!);
    return new ImageSource(paths, labels, {
      preprocess: this.preprocess,
      augment: opts.augment === false ? undefined : (opts.augment ?? this.augment),
      concurrency: this.concurrency,
      numClasses: this.numClasses,
      onWarning: this.warn,
    });
  }

  /**
   * Decodes samples `indices` into `x` and their labels into `y`. With augmentation, sample i of epoch e uses
   * the sub-seed {@link sampleSeed}(seed, e, i). A file that fails now (it passed validation) is zero-filled
   * with one warning naming it.
   */
  async fill(indices: ArrayLike<number>, x: Float32Array, y: BigInt64Array, ctx: { epoch: number; seed: number }): Promise<void> {
    const files = Array.from(indices, (i) => this.paths[i]!);
    const rng = this.augment ? new SeedList(Array.from(indices, (i) => sampleSeed(ctx.seed, ctx.epoch, i))) : undefined;
    const r = await decodeBatch(files, this.preprocess, {
      concurrency: this.concurrency,
      augment: this.augment,
      rng,
      out: x.subarray(0, files.length * this.per),
      onError: 'skip',
    });
    for (const f of r.failed) {
      if (this.warned.has(f.file)) continue;
      this.warned.add(f.file);
      this.warn(`${f.error.message} Its sample was replaced by a blank image.`);
    }
    for (let k = 0; k < indices.length; k++) y[k] = BigInt(this.labels[indices[k]!]!);
  }
}

/** A tiny preprocessing config used only to prove that a file decodes (JPEG shrink-on-load keeps it cheap). */
const PROBE = parsePreprocessConfig({ size: [8, 8], resize: 'stretch' }, 'image probe');

/** Decodes every file once at 8×8 and returns those that fail, in index order. */
async function findCorrupt(paths: readonly string[], opts: CreateImageSourceOptions): Promise<DroppedImage[]> {
  const out: DroppedImage[] = [];
  const chunk = 64;
  for (let s = 0; s < paths.length; s += chunk) {
    const files = paths.slice(s, s + chunk);
    const r = await decodeBatch(files, PROBE, { concurrency: opts.concurrency, onError: 'skip' });
    for (const f of r.failed) out.push({ index: s + f.index, file: f.file, reason: reasonOf(f.error) });
    opts.onValidated?.(Math.min(paths.length, s + chunk), paths.length);
  }
  return out;
}

function reasonOf(e: ImageDecodeError): string {
  const prefix = `Cannot decode image ${e.file}: `;
  let m = e.message.startsWith(prefix) ? e.message.slice(prefix.length) : e.message;
  const end = m.indexOf('. Re-encode or remove');
  if (end >= 0) m = m.slice(0, end);
  return m;
}
