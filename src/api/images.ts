/** Convenience loaders that turn an image folder into train/validation batch sources in one call. */
import type { AugmentConfig } from '../data/augment.js';
import { ImageFolderDataset } from '../data/dataset.js';
import { ImageSource } from '../data/image-source.js';
import type { PreprocessConfig } from '../data/preprocess.js';
import { splitTrainVal } from '../data/split.js';

export interface ImageFolderSplit {
  train: ImageSource;
  val: ImageSource;
  classes: string[];
}

/**
 * Loads `dir/<class>/*` images and splits them with graft's one splitter (`splitTrainVal`: stratified, seeded;
 * 15% validation by default; `limit` keeps a stratified seeded subset of about that many images).
 * Corrupt images are dropped with a warning naming each file (or an error with `strict`).
 */
export async function loadImageFolder(
  dir: string,
  preprocess: PreprocessConfig,
  opts: { val?: number; seed?: number; limit?: number; augment?: AugmentConfig; strict?: boolean } = {},
): Promise<ImageFolderSplit> {
  const ds = await ImageFolderDataset.load(dir);
  const labels = ds.labels()!;
  const split = splitTrainVal(labels, { val: opts.val, seed: opts.seed, limit: opts.limit, classes: ds.classes });
  const make = async (idx: Int32Array, augment?: AugmentConfig) =>
    (
      await ImageSource.create(
        Array.from(idx, (i) => ds.item(i).path!),
        Array.from(idx, (i) => labels[i]!),
        { preprocess, augment, numClasses: ds.classes.length, strict: opts.strict },
      )
    ).source;
  return { train: await make(split.train, opts.augment), val: await make(split.val), classes: [...ds.classes] };
}
