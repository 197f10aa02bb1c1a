/**
 * `rank()`: score candidate backbones for a labelled data set without fine-tuning. The data is loaded and cut
 * to a class-stratified seeded subsample by the run layer (`loadRunData`: `splitTrainVal` with a limit), each
 * backbone is built by the run layer's one network builder (`buildNetwork`: a model file, a registry name
 * such as `nsfwjs:MobileNetV2`, or a built-in architecture `arch:<name>` at random initialisation, a control),
 * cut at its features by the one cut rule (`featureCut`) and run once over the subsample through the feature
 * path and its on-disk store (`sourceFeatures`), then scored: LogME, SFDA, leave-one-out kNN accuracy and a
 * linear probe's held-out accuracy (scores.ts). A failing backbone is reported with its error; the others go on.
 *
 * Text encoders rank the same way (`encoders` in place of `backbones`): the data is then a text table or a folder
 * of `.txt` files per class, each encoder is resolved by the run layer (`buildNetwork` with `model.encoder`; tfidf
 * fits its IDF on the subsample's texts) and its embeddings go through the same feature store.
 */
import { sourceFeatures } from '../features/backbone.js';
import { extractSubgraph, featureCut } from '../ir/surgery.js';
import { type GraftConfig, parseConfig } from '../run/config.js';
import { buildNetwork, type LabelledData, loadRunData, makeSource } from '../run/setup.js';
import type { BatchSource } from '../step/batches.js';
import type { OnTaskProgress } from '../util/progress.js';
import { type FeatureScores, SCORE_NAMES, type ScoreName, type ScoreOptions, scoreFeatures } from './scores.js';

/** Options of {@link rank}. */
export interface RankOptions extends ScoreOptions {
  /** Candidate backbones: model files, registry names (`nsfwjs:MobileNetV2`) or built-in architectures (`arch:lenet5`). */
  backbones?: string[];
  /** Candidate text encoders instead (tfidf, glove, glove-sif, an encoder .onnx, …); `data` is then text. */
  encoders?: string[];
  /** Labelled data: an image folder of `<class>/<images>`, a CSV/JSONL manifest (path,label) or `mnist`; with `encoders`, a text table (CSV/TSV/JSONL) or a folder of `<class>/*.txt`. */
  data: string;
  /** Text data: the text and label columns (default 'text' and 'label'). */
  textColumn?: string;
  labelColumn?: string;
  /** At most this many images, a class-stratified seeded subsample (default 2000). */
  limit?: number;
  /** Seed of the subsample, the probe's split and initialisation, and random-init architectures (default 0). */
  seed?: number;
  /** Feature cut used for every backbone (default: each model's recorded cut, else the input of its classifier). */
  cut?: string;
  /** Root of graft's cache for the feature store (default GRAFT_CACHE_DIR, else ./.graft-cache). */
  cacheDir?: string;
  /** Images per backbone run (default 32). */
  batchSize?: number;
  onNote?: (message: string) => void;
  onWarning?: (message: string) => void;
  /** Progress of hashing images and extracting features, per backbone (`task` names the backbone). */
  onTaskProgress?: OnTaskProgress;
}

/** One backbone's row of a ranking. */
export interface BackboneRank {
  backbone: string;
  /** The cut value features were taken at, and their size. */
  cut?: string;
  dims?: number;
  /** Rows scored (images that decoded). */
  n?: number;
  scores?: FeatureScores;
  /** Seconds for features and scores. */
  seconds: number;
  /** Why this backbone could not be scored. */
  error?: string;
}

/** Result of {@link rank}. */
export interface RankResult {
  data: string;
  classes: string[];
  /** Images (or texts) in the subsample. */
  n: number;
  seed: number;
  /** What was ranked on: 'images', or 'texts' for text encoders. */
  unit: 'images' | 'texts';
  /** Every backbone, in the order given. */
  backbones: BackboneRank[];
  /** Per score, the scored backbones best first. */
  ranking: Record<ScoreName, string[]>;
}

/** Prefix of a built-in architecture in a backbone list (random initialisation from the seed). */
export const ARCH_PREFIX = 'arch:';

/**
 * Scores every backbone on a stratified subsample of `data`.
 * @throws when the data cannot be loaded (missing folder, single class); a backbone's own failure is
 *   reported in its row instead.
 */
export async function rank(opts: RankOptions): Promise<RankResult> {
  const backbones = opts.backbones ?? [];
  const encoders = opts.encoders ?? [];
  if (backbones.length && encoders.length)
    throw new Error('rank: give backbones (image models) or encoders (text encoders), not both: one ranking is over one kind of data.');
  if (!backbones.length && !encoders.length)
    throw new Error('rank: no backbones given; pass model files, registry names (nsfwjs:MobileNetV2) or arch:<name>, or text encoders (tfidf, glove, …).');
  const seed = opts.seed ?? 0;
  const limit = opts.limit ?? 2000;
  const warn = opts.onWarning ?? ((m: string) => process.emitWarning(m));
  const text = encoders.length > 0;
  const unit = text ? 'texts' : 'images';
  const { classes, data } = await loadRankData({ ...opts, seed, limit, onWarning: warn, text });
  const rows: BackboneRank[] = [];
  for (const ref of text ? encoders : backbones) {
    const t0 = performance.now();
    try {
      const { cut, source } = await backboneFeatures(ref, data, classes, { ...opts, seed, limit, onWarning: warn, text });
      const dims = source.sampleShape.reduce((a, c) => a * c, 1);
      if (source.length <= dims)
        warn(
          `backbone ${ref}: ${source.length} ${unit} for ${dims} feature dimensions; LogME and SFDA fit a linear model per class and favour wide features when ${unit} are fewer than dimensions. Compare their values only among backbones with n > dims, or rank more ${unit} (limit ${limit}).`,
        );
      const scores = await scoreFeatures(source.x as Float32Array, source.length, dims, source.y as Int32Array, {
        ...opts,
        probe: { ...opts.probe, classes },
        seed,
        onWarning: (m) => warn(`backbone ${ref}: ${m}`),
      });
      rows.push({ backbone: ref, cut, dims, n: source.length, scores, seconds: (performance.now() - t0) / 1000 });
    } catch (e) {
      const error = (e as Error).message;
      warn(`backbone ${ref} was not scored: ${error}`);
      rows.push({ backbone: ref, seconds: (performance.now() - t0) / 1000, error });
    }
  }
  return { data: opts.data, classes, n: data.labels.length, seed, unit, backbones: rows, ranking: rankingOf(rows) };
}

/** What {@link loadRankData} and {@link backboneFeatures} need of the rank options. */
type FeatureJob = Omit<RankOptions, 'backbones' | 'encoders' | 'k' | 'probe'> & {
  seed: number;
  limit: number;
  onWarning: (message: string) => void;
  /** The candidates are text encoders (the data is text). */
  text?: boolean;
};

/** The class-stratified seeded subsample of `opts.data` (at most `opts.limit` images), by the run layer's data setup. */
export async function loadRankData(opts: FeatureJob): Promise<{ classes: string[]; data: LabelledData }> {
  const cfg = configFor(undefined, opts);
  const { classes, train } = await loadRunData(cfg, { warn: opts.onWarning, progress: opts.onTaskProgress });
  return { classes, data: train };
}

/**
 * The features of backbone `ref` (a model reference or `arch:<name>`) on `data`: built by the run layer, cut by
 * the one cut rule and run through the feature path and its store.
 */
export async function backboneFeatures(
  ref: string,
  data: LabelledData,
  classes: string[],
  opts: FeatureJob,
): Promise<{ cut: string; source: Awaited<ReturnType<typeof sourceFeatures>>['source'] }> {
  const { net, preprocess } = await buildNetwork(configFor(ref, opts), classes, {
    pretrain: true,
    mnist: opts.data === 'mnist',
    source: `graft rank (backbone ${ref})`,
    onNote: opts.onNote,
    onWarning: opts.onWarning,
    trainTexts: data.kind === 'texts' ? data.texts : undefined,
  });
  const cut = featureCut(net.model, opts.cut ?? net.cut).value;
  const src = await sourceOf(data, preprocess, classes.length, { warn: opts.onWarning });
  const progress = opts.onTaskProgress && ((p: Parameters<OnTaskProgress>[0]) => opts.onTaskProgress!({ ...p, task: `${ref}: ${p.task}` }));
  const { source } = await sourceFeatures(extractSubgraph(net.model, cut), src, {
    strict: false,
    onWarning: opts.onWarning,
    cacheDir: opts.cacheDir,
    batchSize: opts.batchSize ?? 32,
    onTaskProgress: progress,
  });
  return { cut, source };
}

/** Per score, the backbones with a finite value of it, best first (ties keep the given order). */
export function rankingOf(rows: readonly BackboneRank[]): Record<ScoreName, string[]> {
  const ranked = (s: ScoreName) =>
    rows
      .flatMap((r) => (r.scores && Number.isFinite(r.scores[s]) ? [{ backbone: r.backbone, value: r.scores[s] }] : []))
      .sort((a, b) => b.value - a.value)
      .map((r) => r.backbone);
  return Object.fromEntries(SCORE_NAMES.map((s) => [s, ranked(s)])) as Record<ScoreName, string[]>;
}

/**
 * The run config that loads the data subsample and builds `ref` (arch:<name>, a model reference, or with `o.text` a
 * text encoder; none: any backbone or encoder, the data alone).
 */
function configFor(ref: string | undefined, o: FeatureJob): GraftConfig {
  const model = o.text
    ? { encoder: ref ?? 'tfidf' }
    : ref?.startsWith(ARCH_PREFIX)
      ? { arch: ref.slice(ARCH_PREFIX.length) }
      : { backbone: ref ?? 'data-only.onnx' };
  const columns = { ...(o.textColumn ? { textColumn: o.textColumn } : {}), ...(o.labelColumn ? { labelColumn: o.labelColumn } : {}) };
  return parseConfig(
    { data: { train: o.data, valSplit: 0, limit: o.limit, ...columns }, model: { ...model, ...(o.cut ? { cut: o.cut } : {}) }, run: { seed: o.seed } },
    `graft rank${ref ? ` (backbone ${ref})` : ''}`,
  );
}

/** The subsample as a batch source with a backbone's preprocessing; files are decoded once, by the feature path. */
async function sourceOf(
  d: LabelledData,
  preprocess: Awaited<ReturnType<typeof buildNetwork>>['preprocess'],
  numClasses: number,
  io: { warn(m: string): void },
): Promise<BatchSource> {
  // arrays and texts (a text encoder's token ids) have nothing to validate; makeSource builds their source
  if (d.kind !== 'files' || 'tokenizer' in preprocess) return makeSource(d, preprocess, numClasses, { strict: false, io });
  const { ImageSource } = await import('../data/image-source.js');
  // undecodable files are skipped with a warning by sourceFeatures (strict: false), so no validation pass first
  return new ImageSource(d.paths, d.labels, { preprocess, numClasses, onWarning: io.warn });
}
