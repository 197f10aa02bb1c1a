/**
 * Convenience loaders that turn an image folder into batch sources in one call: train/validation splits for
 * `net.fit`, and every image (with its file list) for `net.predict`, `net.evaluate` or `net.classify`.
 */
import type { AugmentConfig } from '../data/augment.js';
import { ImageFolderDataset } from '../data/dataset.js';
import { ImageSource } from '../data/image-source.js';
import type { PreprocessConfig } from '../data/preprocess.js';
import { splitTrainVal } from '../data/split.js';
import { Network } from '../train/network.js';

export interface ImageFolderSplit {
  train: ImageSource;
  val: ImageSource;
  /** Every decodable image, unsplit and in folder order (for predict and evaluate). */
  all: ImageSource;
  /** The files of `all`, in the same order (for `net.classify`). */
  files: string[];
  classes: string[];
}

/**
 * Loads `dir/<class>/*` images and splits them with graft's one splitter (`splitTrainVal`: stratified, seeded;
 * 15% validation by default; `limit` keeps a stratified seeded subset of about that many images).
 * Corrupt images are dropped with a warning naming each file (or an error with `strict`).
 * @param preprocess the preprocessing, or a network whose preprocessing to use.
 */
export async function loadImageFolder(
  dir: string,
  preprocess: PreprocessConfig | Network,
  opts: { val?: number; seed?: number; limit?: number; augment?: AugmentConfig; strict?: boolean } = {},
): Promise<ImageFolderSplit> {
  const pre = preprocess instanceof Network ? preprocess.preprocess : preprocess;
  if (!pre) throw new Error(`loadImageFolder(${dir}): the network has no preprocessing config; pass one (e.g. parsePreprocessConfig({ size: 224 })) instead.`);
  const ds = await ImageFolderDataset.load(dir);
  const labels = ds.labels()!;
  const { source: all } = await ImageSource.create(
    Array.from({ length: ds.length }, (_, i) => ds.item(i).path!),
    labels,
    { preprocess: pre, numClasses: ds.classes.length, strict: opts.strict },
  );
  // split the validated files: a corrupt file is reported once, not once per split
  const split = splitTrainVal(all.labels, { val: opts.val, seed: opts.seed, limit: opts.limit, classes: ds.classes });
  const train = all.subset(split.train, { augment: opts.augment });
  return { train, val: all.subset(split.val, { augment: false }), all, files: [...all.paths], classes: [...ds.classes] };
}
