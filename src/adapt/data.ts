/**
 * Data for unsupervised domain adaptation: the target domain is *unlabelled* by type and at run time.
 * {@link unlabelled} wraps any batch source so it never hands out labels, and {@link assertUnlabelled} is the
 * gate every training entry point passes the target through, so target labels cannot reach the loss.
 */
import type { BatchSource } from '../step/batches.js';

/** Unlabelled target images: a batch source whose labels are always −1, branded so the training path accepts it. */
export interface UnlabelledSource extends BatchSource {
  readonly unlabelled: true;
  /** The preprocessing the images were decoded with, when known (compared with the source's). */
  readonly preprocess?: unknown;
}

/** Wraps `src` as unlabelled target data: its labels are never read (y is filled with −1). */
export function unlabelled(src: BatchSource): UnlabelledSource {
  if ((src as Partial<UnlabelledSource>).unlabelled === true) return src as UnlabelledSource;
  return {
    unlabelled: true,
    length: src.length,
    sampleShape: src.sampleShape,
    preprocess: (src as { preprocess?: unknown }).preprocess,
    async fill(indices, x, y, ctx) {
      await src.fill(indices, x, y, ctx);
      y.fill(-1n, 0, indices.length);
    },
  };
}

/** Unlabelled images held in memory: `x` holds `length · prod(sampleShape)` values. */
export function unlabelledArrays(x: Float32Array, sampleShape: readonly number[]): UnlabelledSource {
  const per = sampleShape.reduce((a, b) => a * b, 1);
  if (per <= 0 || x.length % per !== 0)
    throw new Error(`unlabelledArrays: ${x.length} values do not make whole samples of shape [${sampleShape.join(', ')}]; check the sample shape.`);
  return {
    unlabelled: true,
    length: x.length / per,
    sampleShape: [...sampleShape],
    fill(indices, out: Float32Array, y) {
      for (let i = 0; i < indices.length; i++) out.set(x.subarray(indices[i]! * per, (indices[i]! + 1) * per), i * per);
      y.fill(-1n, 0, indices.length);
    },
  };
}

/**
 * The gate of the training path: throws unless `target` is an {@link UnlabelledSource}. Adaptation never trains on
 * target labels; labelled target data belongs in `targetEval`, where it is only evaluated.
 */
export function assertUnlabelled(target: BatchSource, where = 'adapt'): asserts target is UnlabelledSource {
  if ((target as Partial<UnlabelledSource>).unlabelled === true) return;
  const kind = (target as object).constructor?.name ?? 'object';
  throw new Error(
    `${where}: the target data (${kind}, ${target.length} samples) carries labels, and unsupervised adaptation never trains on target labels. ` +
      'Pass the target images through unlabelled(target) (or unlabelledArrays), and give labelled target data as targetEval, which is only evaluated.',
  );
}

/**
 * Checks that source and target feed the same network: same sample shape and, when both are known, the same
 * preprocessing. Throws naming both shapes/configs and how to fix it.
 */
export function checkDomains(source: BatchSource, target: BatchSource, names = { source: 'source', target: 'target' }): void {
  const a = source.sampleShape.join('x');
  const b = target.sampleShape.join('x');
  if (a !== b)
    throw new Error(
      `The ${names.source} gives samples of shape [${a}] but the ${names.target} gives [${b}]; both domains must be preprocessed to the model's input size. ` +
        'Decode both with the same preprocessing (image size, channels, layout).',
    );
  const pa = (source as { preprocess?: unknown }).preprocess;
  const pb = (target as { preprocess?: unknown }).preprocess;
  if (pa && pb) {
    const keys = ['size', 'channels', 'layout', 'mean', 'std', 'scale', 'resize', 'cropFraction', 'channelOrder'];
    const diff = keys.filter((k) => JSON.stringify((pa as Record<string, unknown>)[k]) !== JSON.stringify((pb as Record<string, unknown>)[k]));
    if (diff.length)
      throw new Error(
        `The ${names.source} and ${names.target} use different preprocessing (${diff
          .map((k) => `${k}: ${JSON.stringify((pa as Record<string, unknown>)[k])} vs ${JSON.stringify((pb as Record<string, unknown>)[k])}`)
          .join('; ')}). Decode both domains with the model's preprocessing.`,
      );
  }
}

/** A fixed, seeded sample of at most `k` indices out of `n` (sorted), for target criteria. */
export function sampleIndices(n: number, k: number, seed: number): Int32Array {
  if (n <= k) return Int32Array.from({ length: n }, (_, i) => i);
  // a seeded partial Fisher–Yates
  let s = (seed * 2654435761 + 12345) >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(next() * (n - i));
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p.slice(0, k).sort();
}
