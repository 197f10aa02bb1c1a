/**
 * The joint batch of an adaptation step, as a {@link BatchSource} that `fit` drives: each batch is
 * [source (n) | target (m) | strong target view (m, FixMatch only)] along N, with the n source labels. `fit` picks
 * the source rows (its seeded epoch order); the target rows come from the target's own seeded permutation,
 * re-drawn when it runs out, and FixMatch's two views from a seeded augmentation stream (the protocol of
 * shared/ref/exp_da_shift.py). Both streams' positions are checkpoint state (this source is also a
 * {@link Callback}), so a resumed run draws exactly the batches an uninterrupted one would.
 */
import type { BatchSource } from '../step/batches.js';
import { Rng } from '../tensor.js';
import type { Callback } from '../train/callbacks.js';
import { strongAugment, weakAugment } from './augment.js';
import type { UnlabelledSource } from './data.js';

/** Where the target and augmentation streams stand (checkpoint state). */
interface JointState {
  /** The target Rng's state before it drew the current permutation. */
  permRng: number;
  tpos: number;
  augRng: number;
}

/** Source rows first, then `views` × `targetBatch` unlabelled target rows. */
export class JointBatchSource implements BatchSource, Callback {
  readonly name = 'joint-batch';
  readonly length: number;
  readonly sampleShape: readonly number[];
  readonly numClasses?: number;
  private readonly trng: Rng;
  private readonly arng: Rng;
  private permRng: number;
  private tperm: Int32Array;
  private tpos = 0;
  private readonly scratch: BigInt64Array;

  /**
   * @param views target views per step: 0 (source only), 1, or 2 (FixMatch's weak + strong).
   * @throws when the target has fewer images than one target batch.
   */
  constructor(
    private readonly source: BatchSource,
    private readonly target: UnlabelledSource | undefined,
    private readonly o: { views: 0 | 1 | 2; targetBatch: number; seed: number },
  ) {
    this.length = source.length;
    this.sampleShape = source.sampleShape;
    this.numClasses = source.numClasses;
    const m = o.targetBatch;
    if (o.views && (!target || target.length < m))
      throw new Error(`The target has ${target?.length ?? 0} samples, fewer than one batch of ${m}; lower the batch size or add target images.`);
    this.trng = new Rng((o.seed * 7919 + 1000) >>> 0);
    this.arng = new Rng((o.seed * 104729 + 7) >>> 0);
    this.permRng = this.trng.state;
    this.tperm = o.views && target ? this.trng.permutation(target.length) : new Int32Array(0);
    this.scratch = new BigInt64Array(Math.max(m, 1));
  }

  batchRows(size: number): number {
    return size + this.o.views * this.o.targetBatch;
  }

  async fill(indices: ArrayLike<number>, x: Float32Array, y: BigInt64Array, ctx: { epoch: number; seed: number }): Promise<void> {
    const shape = this.sampleShape;
    const per = shape.reduce((a, b) => a * b, 1);
    const n = indices.length;
    const m = this.o.targetBatch;
    await this.source.fill(indices, x.subarray(0, n * per), y, ctx);
    const target = this.target;
    if (!this.o.views || !target) return;
    if (this.tpos + m > target.length) {
      this.permRng = this.trng.state;
      this.tperm = this.trng.permutation(target.length);
      this.tpos = 0;
    }
    const weak = x.subarray(n * per, (n + m) * per);
    await target.fill(this.tperm.subarray(this.tpos, this.tpos + m), weak, this.scratch, ctx);
    this.tpos += m;
    if (this.o.views === 2) {
      const strong = x.subarray((n + m) * per, (n + 2 * m) * per);
      strong.set(weak);
      weakAugment(weak, m, shape, this.arng);
      strongAugment(strong, m, shape, this.arng);
    }
  }

  saveState(): JointState {
    return { permRng: this.permRng, tpos: this.tpos, augRng: this.arng.state };
  }

  loadState(state: unknown): void {
    const s = state as JointState;
    this.trng.state = s.permRng;
    this.permRng = s.permRng;
    if (this.o.views && this.target) this.tperm = this.trng.permutation(this.target.length);
    this.tpos = s.tpos;
    this.arng.state = s.augRng;
  }
}
