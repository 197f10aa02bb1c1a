/**
 * A look at a labelled image folder before training, as a UI shows it: the classes with their image counts and
 * a few example files, and the warnings a run would give — corrupt files (the validation pass of the batch
 * sources), files in both train and val (data/leakage.ts, through `loadRunData`), and class imbalance.
 */
import { parsePreprocessConfig } from '../data/preprocess.js';
import { parseConfig } from './config.js';
import { loadRunData, makeSource } from './setup.js';

/** Classes whose largest / smallest image count is above this get an imbalance warning. */
export const IMBALANCE_RATIO = 3;

/** The summary of an image folder. */
export interface DataSummary {
  folder: string;
  classes: { name: string; count: number; examples: string[] }[];
  /** Images in the train and validation splits a run with the same `data.valSplit` and `run.seed` makes. */
  split: { train: number; val: number };
  warnings: string[];
}

/**
 * Lists, splits (as a run with the same `valSplit` and `seed` would) and validates the images of `folder`.
 * @throws the run layer's message for a missing folder, a single class or no images.
 */
export async function summarizeData(folder: string, opts: { valSplit?: number; seed?: number; examples?: number } = {}): Promise<DataSummary> {
  const warnings: string[] = [];
  const io = { warn: (m: string) => void warnings.push(m) };
  // the model does not matter to the data: any valid config names the folder, the split and the seed
  // unset valSplit and seed take the config schema's defaults, as a run's would
  const cfg = parseConfig({
    data: { train: folder, ...(opts.valSplit !== undefined ? { valSplit: opts.valSplit } : {}) },
    model: { arch: 'small-cnn' },
    run: opts.seed !== undefined ? { seed: opts.seed } : {},
  });
  const data = await loadRunData(cfg, io);
  // decoding each image once at a tiny size finds the corrupt ones, with the same warning a run gives
  const tiny = parsePreprocessConfig({ size: [8, 8] });
  for (const d of [data.train, data.val]) if (d) await makeSource(d, tiny, data.classes.length, { strict: false, io });
  const files = [data.train, data.val].flatMap((d) => (d?.kind === 'files' ? d.paths.map((p, i) => [p, d.labels[i]!] as const) : []));
  const classes = data.classes.map((name, c) => {
    const mine = files.filter(([, l]) => l === c).map(([p]) => p);
    return { name, count: mine.length, examples: mine.sort().slice(0, opts.examples ?? 6) };
  });
  const counts = classes.map((c) => c.count);
  const [most, least] = [Math.max(...counts), Math.min(...counts)];
  if (least > 0 && most / least > IMBALANCE_RATIO) {
    const big = classes.find((c) => c.count === most)!.name;
    const small = classes.find((c) => c.count === least)!.name;
    warnings.push(
      `class imbalance: ${big} has ${most} images, ${small} only ${least} (${(most / least).toFixed(1)}×). Add images of the small classes, or train with data.classWeights: balanced.`,
    );
  }
  return { folder, classes, split: { train: data.train.labels.length, val: data.val?.labels.length ?? 0 }, warnings };
}
