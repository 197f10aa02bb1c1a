/**
 * Datasets: in-memory arrays, `root/<class>/<images>` folders, CSV/JSONL manifests (manifest.ts) and
 * unlabelled image folders (target domains). All share the {@link Dataset} interface from base.ts.
 */

import { resolve } from 'node:path';
import { checkIndex, classCounts, type DataItem, type Dataset, PathDataset } from './base.js';
import { defaultWarn, fewPaths, listImages, readFolder, type WarnFn, warnLeftOut } from './files.js';
import type { ImageSplit } from './idx.js';

export { type DataItem, type Dataset, PathDataset, SubsetDataset } from './base.js';
export { ManifestDataset, type ManifestOptions } from './manifest.js';

/** Constructor options of {@link ArrayDataset}. */
export interface ArrayDatasetOptions {
  /** Features of all items, `length * prod(itemShape)` values, item-major. */
  x: Float32Array;
  /** Shape of one item, e.g. `[1, 28, 28]` or `[784]`. */
  itemShape: readonly number[];
  /** Labels (omit for unlabelled data). */
  y?: ArrayLike<number>;
  /** Class names; default '0'..'K-1' with K = max label + 1. */
  classes?: readonly string[];
  /** Name used in messages (default 'arrays'). */
  name?: string;
}

/** An in-memory dataset of float features or images with integer labels. */
export class ArrayDataset implements Dataset {
  readonly kind = 'array';
  readonly x: Float32Array;
  readonly itemShape: readonly number[];
  /** Values per item. */
  readonly itemSize: number;
  readonly classes: readonly string[];
  readonly name: string;
  private readonly y: Int32Array | undefined;
  private readonly n: number;

  constructor(opts: ArrayDatasetOptions) {
    this.name = opts.name ?? 'arrays';
    this.itemShape = [...opts.itemShape];
    this.itemSize = this.itemShape.reduce((a, b) => a * b, 1);
    if (!(this.itemSize > 0) || !this.itemShape.every((d) => Number.isInteger(d) && d > 0)) {
      throw new Error(`ArrayDataset ${this.name}: itemShape [${this.itemShape.join(', ')}] must be positive integers.`);
    }
    if (opts.x.length % this.itemSize !== 0) {
      throw new Error(
        `ArrayDataset ${this.name}: ${opts.x.length} feature values is not a multiple of the item size ${this.itemSize} ([${this.itemShape.join(', ')}]); fix itemShape or the data.`,
      );
    }
    this.x = opts.x;
    this.n = opts.x.length / this.itemSize;
    if (opts.y) {
      if (opts.y.length !== this.n) throw new Error(`ArrayDataset ${this.name}: ${this.n} items but ${opts.y.length} labels; pass one label per item.`);
      this.y = Int32Array.from(opts.y);
      let max = -1;
      for (let i = 0; i < this.n; i++) {
        const l = this.y[i]!;
        if (l < 0 || !Number.isInteger(opts.y[i])) throw new Error(`ArrayDataset ${this.name}: label ${opts.y[i]} of item ${i} is not a non-negative integer.`);
        if (l > max) max = l;
      }
      this.classes = opts.classes ? [...opts.classes] : Array.from({ length: max + 1 }, (_, i) => String(i));
      if (max >= this.classes.length) {
        throw new Error(`ArrayDataset ${this.name}: label ${max} is outside the ${this.classes.length} class names given; pass all class names.`);
      }
    } else {
      this.y = undefined;
      this.classes = opts.classes ? [...opts.classes] : [];
    }
  }

  /** Wraps one split returned by `loadMnist`/`loadFashionMnist` as `[1, rows, cols]` images. */
  static fromIdx(split: ImageSplit, classes: readonly string[], name = 'idx'): ArrayDataset {
    return new ArrayDataset({ x: split.x, y: split.y, itemShape: [1, split.rows, split.cols], classes, name });
  }

  get length(): number {
    return this.n;
  }

  item(i: number): DataItem {
    checkIndex(this, i);
    return this.y ? { index: i, label: this.y[i]! } : { index: i };
  }

  labels(): Int32Array | undefined {
    return this.y?.slice();
  }

  /** Features of item i (a view, not a copy). */
  features(i: number): Float32Array {
    checkIndex(this, i);
    return this.x.subarray(i * this.itemSize, (i + 1) * this.itemSize);
  }

  /**
   * Gathers items into one batch: `x` is `indices.length * itemSize` values (written into `out` when given,
   * which must be at least that long), `y` the labels (empty when unlabelled).
   */
  batch(indices: ArrayLike<number>, out?: Float32Array): { x: Float32Array; y: Int32Array } {
    const need = indices.length * this.itemSize;
    if (out && out.length < need)
      throw new Error(`ArrayDataset.batch: output buffer holds ${out.length} values, the batch needs ${need}; allocate a larger one.`);
    const x = out ? out.subarray(0, need) : new Float32Array(need);
    const y = new Int32Array(this.y ? indices.length : 0);
    for (let b = 0; b < indices.length; b++) {
      const i = indices[b]!;
      checkIndex(this, i);
      x.set(this.x.subarray(i * this.itemSize, (i + 1) * this.itemSize), b * this.itemSize);
      if (this.y) y[b] = this.y[i]!;
    }
    return { x, y };
  }

  /** A new ArrayDataset holding copies of the given items (same classes). */
  subset(indices: ArrayLike<number>, name = `${this.name} subset`): ArrayDataset {
    const { x, y } = this.batch(indices);
    return new ArrayDataset({ x, itemShape: this.itemShape, y: this.y ? y : undefined, classes: this.classes, name });
  }

  describe(): string {
    const counts = classCounts(this.classes, this.y);
    return `array dataset ${this.name}: ${this.n} items of shape [${this.itemShape.join(', ')}]${this.y ? `, ${this.classes.length} classes (${counts})` : ', unlabelled'}`;
  }
}

/** Options of {@link ImageFolderDataset.load}. */
export interface ImageFolderOptions {
  /**
   * Fixed class list (e.g. from the training set, when loading a validation folder): every class folder must
   * be in it and labels index into it; classes may be missing. Default: the folder names, sorted.
   */
  classes?: readonly string[];
  /** Warning sink for skipped files (default console.warn). */
  onWarning?: WarnFn;
}

/** Images in `root/<class name>/…` folders (like torchvision's ImageFolder); classes sorted alphabetically. */
export class ImageFolderDataset extends PathDataset {
  readonly kind = 'image folder';

  /**
   * Scans `root`. Sub-folders of a class folder are included; non-image files are skipped with one warning.
   * @throws naming the path when root cannot be read, has no class folders or only one (without `classes`),
   *   a class folder holds no images, or a folder is not in the given `classes`.
   */
  static async load(root: string, opts: ImageFolderOptions = {}): Promise<ImageFolderDataset> {
    const warn = opts.onWarning ?? defaultWarn;
    const abs = resolve(root);
    // class folders may be symbolic links (followed, like torchvision's ImageFolder)
    const { entries, leftOut } = await readFolder(abs, 'image folder');
    const dirs = entries.filter((e) => e.kind === 'dir').map((e) => e.name);
    const loose = entries.filter((e) => e.kind !== 'dir').map((e) => e.name);
    if (loose.length) warn(`ignoring ${loose.length} file(s) directly in ${abs} (${fewPaths(loose)}); images must be inside one folder per class.`);
    if (dirs.length === 0) {
      throw new Error(`Image folder ${abs} has no class sub-folders; lay it out as ${abs}/<class name>/<image files> (one folder per class).`);
    }
    if (!opts.classes && dirs.length === 1) {
      throw new Error(
        `Image folder ${abs} has a single class folder (${dirs[0]}); a classifier needs at least two classes: add a folder per class under ${abs}.`,
      );
    }
    const classes = opts.classes ? [...opts.classes] : dirs;
    const paths: string[] = [];
    const labels: number[] = [];
    const skipped: string[] = [];
    for (const d of dirs) {
      const label = classes.indexOf(d);
      if (label < 0) {
        throw new Error(
          `Class folder ${abs}/${d} is not one of the ${classes.length} known classes (${fewPaths(classes, 10)}); rename or remove it, or train with this class.`,
        );
      }
      const { images, skipped: sk, leftOut: lo } = await listImages(`${abs}/${d}`, 'class folder');
      skipped.push(...sk);
      leftOut.push(...lo);
      if (images.length === 0) {
        throw new Error(`Class folder ${abs}/${d} contains no images (.jpg, .png, .webp, .gif, …); add images to it or remove the folder.`);
      }
      for (const p of images) {
        paths.push(p);
        labels.push(label);
      }
    }
    if (skipped.length) warn(`skipping ${skipped.length} non-image file(s) in ${abs}: ${fewPaths(skipped)}.`);
    warnLeftOut(warn, leftOut);
    return new ImageFolderDataset(abs, paths, Int32Array.from(labels), classes);
  }
}

/** Options of {@link UnlabelledFolder.load}. */
export interface UnlabelledFolderOptions {
  /** Warning sink for skipped files (default console.warn). */
  onWarning?: WarnFn;
}

/** All images under a folder, recursively and sorted by path, without labels (e.g. a target domain). */
export class UnlabelledFolder extends PathDataset {
  readonly kind = 'unlabelled folder';

  /**
   * Scans `root` recursively.
   * @throws naming the folder when it cannot be read or contains no images.
   */
  static async load(root: string, opts: UnlabelledFolderOptions = {}): Promise<UnlabelledFolder> {
    const warn = opts.onWarning ?? defaultWarn;
    const abs = resolve(root);
    const { images, skipped, leftOut } = await listImages(abs, 'image folder');
    if (skipped.length) warn(`skipping ${skipped.length} non-image file(s) in ${abs}: ${fewPaths(skipped)}.`);
    warnLeftOut(warn, leftOut);
    if (images.length === 0) {
      throw new Error(`Folder ${abs} contains no images (.jpg, .png, .webp, .gif, …) at any depth; point to the folder holding the target-domain images.`);
    }
    return new UnlabelledFolder(abs, images, undefined, []);
  }
}
