/**
 * Loading the domains of `graft adapt`: a labelled source (image folder or the built-in `mnist`), an unlabelled
 * target (image folder, or `mnist` / `mnist-style-shift`), and optional labelled target data for evaluation.
 * Built-ins are MNIST arrays ([1, 28, 28], values in [0, 1]); `mnist-style-shift` is the demo's style shift
 * (|x − smooth texture|, training images seed 123, test images seed 456).
 */
import fs from 'node:fs';
import type { PreprocessConfig } from '../data/preprocess.js';
import { ArraySource, type BatchSource } from '../step/batches.js';
import { type UnlabelledSource, unlabelled, unlabelledArrays } from './data.js';

/** The preprocessing that matches the MNIST built-ins: 28×28 grayscale in [0, 1]. */
export const MNIST_ARRAYS_PREPROCESS = { size: [28, 28], channels: 1, resize: 'stretch', scale: 255, mean: [0], std: [1] } as const;

/** Names accepted as built-in data. */
export const BUILTINS = ['mnist', 'mnist-style-shift'] as const;

const isBuiltin = (ref: string) => (BUILTINS as readonly string[]).includes(ref);

/** Warning sink. */
export type Warn = (message: string) => void;

async function mnist() {
  const { loadMnist } = await import('../data/idx.js');
  return loadMnist();
}

/** Throws unless the model's preprocessing takes the built-ins' 28×28 grayscale NCHW images. */
export function checkMnistSized(pre: PreprocessConfig, what: string): void {
  if (pre.channels !== 1 || pre.size[0] !== 28 || pre.size[1] !== 28 || pre.layout !== 'NCHW')
    throw new Error(
      `${what} gives 1x28x28 grayscale images, but the model's preprocessing gives ${pre.channels}x${pre.size.join('x')} (${pre.layout}). ` +
        'Source and target must have the same input size: use image folders decoded at the model size, or an MNIST-sized model.',
    );
}

/** Builds the built-in arrays with the model's scale/mean/std (they must be 28×28 grayscale). */
export function arraysFor(x: Float32Array, pre: PreprocessConfig, what: string): Float32Array {
  checkMnistSized(pre, what);
  const a = 255 / pre.scale / pre.std[0]!;
  const b = -pre.mean[0]! / pre.std[0]!;
  return a === 1 && b === 0 ? x : x.map((v) => v * a + b);
}

function statOrThrow(ref: string, flag: string, want: string): fs.Stats {
  try {
    return fs.statSync(ref);
  } catch (e) {
    throw new Error(`${flag}: ${ref} does not exist (${(e as NodeJS.ErrnoException).code}); give ${want}.`);
  }
}

/** The labelled source: train part, validation part and class names. Folders are split with a seeded stratified split. */
export async function loadSource(
  ref: string,
  pre: PreprocessConfig,
  opts: { valSplit: number; seed: number; warn: Warn; limit?: number },
): Promise<{ train: BatchSource; val?: BatchSource; classes: string[] }> {
  if (ref === 'mnist') {
    checkMnistSized(pre, '--source mnist');
    const m = await mnist();
    const k = Math.min(opts.limit ?? m.train.y.length, m.train.y.length);
    const train = new ArraySource(arraysFor(m.train.x.subarray(0, k * 784), pre, '--source mnist'), Int32Array.from(m.train.y).subarray(0, k), [1, 28, 28], 10);
    const val = new ArraySource(arraysFor(m.test.x, pre, '--source mnist'), m.test.y, [1, 28, 28], 10);
    return { train, val, classes: [...m.classes] };
  }
  if (ref === 'mnist-style-shift')
    throw new Error('--source: mnist-style-shift is a target domain (its labels are for evaluation); use --source mnist or an image folder.');
  if (!statOrThrow(ref, '--source', 'an image folder with one sub-folder per class, or mnist').isDirectory())
    throw new Error(`--source: ${ref} is a file; give an image folder with one sub-folder per class, or mnist.`);
  const { ImageFolderDataset } = await import('../data/dataset.js');
  const { splitTrainVal } = await import('../data/split.js');
  const { ImageSource } = await import('../data/image-source.js');
  const ds = await ImageFolderDataset.load(ref, { onWarning: opts.warn });
  const labels = ds.labels()!;
  const paths = [...ds.paths];
  const { source: all } = await ImageSource.create(paths, labels, { preprocess: pre, numClasses: ds.classes.length, onWarning: opts.warn });
  // graft adapt keeps its own limit rule (the first n training images) so its runs give the same numbers as before
  const s = splitTrainVal(all.labels, { val: opts.valSplit, seed: opts.seed, limit: opts.limit, limitBy: 'first-train', classes: ds.classes });
  const train = s.train.length === all.length ? all : all.subset(s.train);
  return { train, val: s.val.length ? all.subset(s.val) : undefined, classes: [...ds.classes] };
}

/**
 * The unlabelled target. A folder's images are read recursively (labels from sub-folder names are ignored);
 * a manifest's label column, if any, is ignored too (with a warning): adaptation never trains on target labels.
 */
export async function loadTarget(ref: string, pre: PreprocessConfig, warn: Warn): Promise<UnlabelledSource> {
  if (isBuiltin(ref)) {
    checkMnistSized(pre, `--target ${ref}`);
    const m = await mnist();
    const { styleShift } = await import('../data/shift.js');
    const x = ref === 'mnist' ? m.train.x : styleShift(m.train.x, { seed: 123 });
    return unlabelledArrays(arraysFor(x, pre, `--target ${ref}`), [1, 28, 28]);
  }
  const st = statOrThrow(ref, '--target', 'a folder of unlabelled target images, or mnist-style-shift');
  const { ImageSource } = await import('../data/image-source.js');
  if (!st.isDirectory()) {
    const { ManifestDataset } = await import('../data/dataset.js');
    const ds = await ManifestDataset.load(ref, { onWarning: warn });
    if (ds.labels())
      warn(
        `--target: the manifest ${ref} has a label column; its labels are ignored (unsupervised adaptation never trains on target labels). ` +
          'To evaluate on them, pass the same file as --target-eval.',
      );
    const paths = [...ds.paths];
    return unlabelled((await ImageSource.create(paths, new Int32Array(paths.length), { preprocess: pre, onWarning: warn })).source);
  }
  const { UnlabelledFolder } = await import('../data/dataset.js');
  let ds: Awaited<ReturnType<typeof UnlabelledFolder.load>>;
  try {
    ds = await UnlabelledFolder.load(ref, { onWarning: warn });
  } catch (e) {
    throw new Error(`--target: ${(e as Error).message}`);
  }
  const paths = [...ds.paths];
  return unlabelled((await ImageSource.create(paths, new Int32Array(paths.length), { preprocess: pre, onWarning: warn })).source);
}

/** Labelled target data for evaluation only: `mnist-style-shift` (the shifted MNIST test set), `mnist`, a class folder or a labelled manifest. */
export async function loadTargetEval(ref: string, pre: PreprocessConfig, classes: string[], warn: Warn): Promise<BatchSource> {
  if (isBuiltin(ref)) {
    checkMnistSized(pre, `--target-eval ${ref}`);
    const m = await mnist();
    const { styleShift } = await import('../data/shift.js');
    const x = ref === 'mnist' ? m.test.x : styleShift(m.test.x, { seed: 456 });
    if (classes.length !== 10)
      throw new Error(`--target-eval ${ref} has the 10 MNIST digit classes, but the source has ${classes.length} classes (${classes.join(', ')}).`);
    return new ArraySource(arraysFor(x, pre, `--target-eval ${ref}`), m.test.y, [1, 28, 28], 10);
  }
  const isDir = statOrThrow(
    ref,
    '--target-eval',
    'a labelled image folder (one sub-folder per class), a labelled manifest, or mnist-style-shift',
  ).isDirectory();
  const { ImageFolderDataset, ManifestDataset } = await import('../data/dataset.js');
  const { ImageSource } = await import('../data/image-source.js');
  let ds: Awaited<ReturnType<typeof ImageFolderDataset.load>> | Awaited<ReturnType<typeof ManifestDataset.load>>;
  try {
    ds = isDir ? await ImageFolderDataset.load(ref, { classes, onWarning: warn }) : await ManifestDataset.load(ref, { classes });
  } catch (e) {
    throw new Error(`--target-eval: ${(e as Error).message}`);
  }
  if (!ds.labels())
    throw new Error(`--target-eval: the manifest ${ref} has no label column; evaluation needs labels (a "label" column with the source's class names).`);
  const paths = [...ds.paths];
  return (await ImageSource.create(paths, ds.labels()!, { preprocess: pre, numClasses: classes.length, onWarning: warn })).source;
}
