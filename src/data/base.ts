/**
 * The common Dataset shape: a list of items, each with an index, and a path and label where they
 * apply. Concrete datasets live in dataset.ts and manifest.ts.
 */

/** One example of a dataset. */
export interface DataItem {
  /** Position in the dataset (0-based). */
  index: number;
  /** Image file, for file-backed datasets. */
  path?: string;
  /** Class index into `classes`, for labelled datasets. */
  label?: number;
}

/** What every dataset offers. */
export interface Dataset {
  /** Short kind name, e.g. 'image-folder'. */
  readonly kind: string;
  /** Number of items. */
  readonly length: number;
  /** Class names, index = label; empty for unlabelled data. */
  readonly classes: readonly string[];
  /** The i-th item (0 <= i < length). */
  item(i: number): DataItem;
  /** All labels in item order, or undefined when the dataset is unlabelled. */
  labels(): Int32Array | undefined;
  /** One-line human description (for `graft inspect` and logs). */
  describe(): string;
}

/** Throws a clear error when `i` is not a valid item index. */
export function checkIndex(ds: { kind: string; length: number }, i: number): void {
  if (!Number.isInteger(i) || i < 0 || i >= ds.length) {
    throw new Error(`Index ${i} is out of range for ${ds.kind} dataset of ${ds.length} items; use 0..${ds.length - 1}.`);
  }
}

/** Per-class counts as "name: n" pairs, for descriptions. */
export function classCounts(classes: readonly string[], labels: Int32Array | undefined): string {
  if (!labels || classes.length === 0) return '';
  const c = new Array<number>(classes.length).fill(0);
  for (const l of labels) c[l] = (c[l] ?? 0) + 1;
  const parts = classes.map((name, i) => `${name}: ${c[i]}`);
  return parts.length > 12 ? `${parts.slice(0, 12).join(', ')}, …` : parts.join(', ');
}

/**
 * A dataset backed by a list of image files (folder, manifest or unlabelled folder).
 */
export abstract class PathDataset implements Dataset {
  abstract readonly kind: string;
  protected constructor(
    /** Where the dataset comes from (folder or manifest file). */
    readonly source: string,
    /** Image paths, item order. */
    readonly paths: readonly string[],
    /** Labels, item order, or undefined when unlabelled. */
    protected readonly labelArray: Int32Array | undefined,
    readonly classes: readonly string[],
  ) {}

  get length(): number {
    return this.paths.length;
  }

  item(i: number): DataItem {
    checkIndex(this, i);
    const it: DataItem = { index: i, path: this.paths[i]! };
    if (this.labelArray) it.label = this.labelArray[i]!;
    return it;
  }

  labels(): Int32Array | undefined {
    return this.labelArray?.slice();
  }

  describe(): string {
    const counts = classCounts(this.classes, this.labelArray);
    const cls = this.classes.length ? `, ${this.classes.length} classes (${counts})` : ', unlabelled';
    return `${this.kind} ${this.source}: ${this.length} images${cls}`;
  }
}

/** A view of some items of another dataset (e.g. one side of a split). Item i is `base.item(indices[i])` re-indexed. */
export class SubsetDataset implements Dataset {
  readonly kind = 'subset';
  constructor(
    readonly base: Dataset,
    readonly indices: Int32Array,
  ) {
    for (const i of indices) checkIndex(base, i);
  }
  get length(): number {
    return this.indices.length;
  }
  get classes(): readonly string[] {
    return this.base.classes;
  }
  item(i: number): DataItem {
    checkIndex(this, i);
    return { ...this.base.item(this.indices[i]!), index: i };
  }
  labels(): Int32Array | undefined {
    const all = this.base.labels();
    if (!all) return undefined;
    return Int32Array.from(this.indices, (i) => all[i]!);
  }
  describe(): string {
    return `subset of ${this.indices.length} items of ${this.base.describe()}`;
  }
}
