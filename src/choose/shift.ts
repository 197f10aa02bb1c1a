/**
 * `shift()`: how far two domains are apart in a backbone's feature space, and what that means for adaptation.
 * Features of a seeded subsample of each domain go through the one feature path (`features/backbone.ts`:
 * image files through the on-disk store); the measures are those of `shift-stats.ts` (proxy A-distance, MMD
 * with a permutation p-value, class-free summaries); {@link shiftAdvice} turns them into plain words.
 */
import { sampleIndices } from '../adapt/data.js';
import { sourceFeatures } from '../features/backbone.js';
import type { Model } from '../ir/model.js';
import { extractSubgraph, featureCut } from '../ir/surgery.js';
import { BatchBuffers, type BatchSource, batches, subsetSource } from '../step/batches.js';
import { Rng } from '../tensor.js';
import type { OnTaskProgress } from '../util/progress.js';
import { type ADistanceResult, type FeatureRows, type MmdResult, type MomentSummary, mmdTest, momentSummary, proxyADistance } from './shift-stats.js';

/** Options of {@link shift}. */
export interface ShiftOptions {
  /** The source domain's images (labels, if any, are not read). */
  source: BatchSource;
  /** The target domain's images (labels, if any, are not read). */
  target: BatchSource;
  /** A model whose features are compared (cut by the one rule, `featureCut`); without it, the input values (pixels) themselves. */
  backbone?: Model;
  /** Feature value to cut at instead of the model's recorded/classifier cut. */
  cut?: string;
  /** Images per domain (a seeded subsample; default 1000). */
  samples?: number;
  /** Images per domain in the MMD test (the first of the subsample; default 500: the kernel matrix is quadratic). */
  mmdSamples?: number;
  /** Permutations of the MMD test (default 200). */
  permutations?: number;
  /** Seed of the subsamples, the classifier's split and the permutations (default 0). */
  seed?: number;
  /**
   * The two domains are the same data (e.g. `--source mnist --target mnist`): compare two disjoint halves of it
   * instead of a sample with itself (default: true when `source === target`).
   */
  disjoint?: boolean;
  /** Whether the model has BatchNorm layers (so AdaBN applies); read from `backbone` when omitted. */
  hasBatchNorm?: boolean;
  onTaskProgress?: OnTaskProgress;
}

/** How large a shift is, in words. */
export type ShiftLevel = 'none' | 'small' | 'moderate' | 'large';

/** The result of {@link shift}. */
export interface ShiftReport {
  /** Images compared per domain. */
  samples: { source: number; target: number };
  /** Feature width, and where the features came from. */
  features: { dims: number; from: string };
  /** Proxy A-distance from a logistic-regression domain classifier. */
  aDistance: ADistanceResult;
  /** Unbiased MMD² (Gaussian kernel, median heuristic) with its permutation p-value. */
  mmd: MmdResult & { samples: number };
  /** Class-free summaries: mean distance, CORAL distance, covariance gap, norm ratio. */
  summary: MomentSummary;
  level: ShiftLevel;
  /** The advice in plain words, one sentence per line. */
  advice: string[];
  /** The `graft adapt` methods suggested for a shift of this size (empty when none is needed). */
  methods: string[];
  seconds: number;
}

/** Rows of `src` at `idx`, flattened to one row per sample. */
async function inputRows(src: BatchSource, idx: Int32Array): Promise<FeatureRows> {
  const per = src.sampleShape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(idx.length * per);
  const sub = subsetSource(src, idx);
  const bufs = new BatchBuffers(src.sampleShape);
  let row = 0;
  for await (const b of batches(sub, bufs, { batchSize: 256, seed: 0, epoch: 0, shuffle: false })) {
    x.set((b.x.data as Float32Array).subarray(0, b.size * per), row * per);
    row += b.size;
  }
  return { x, n: idx.length, d: per };
}

/**
 * Measures the shift from `source` to `target` in the feature space of `backbone` (or of the raw inputs).
 * @throws when a domain has fewer than 8 images, or the two give samples of different shapes.
 */
export async function shift(o: ShiftOptions): Promise<ShiftReport> {
  const t0 = performance.now();
  const seed = o.seed ?? 0;
  const want = o.samples ?? 1000;
  const a = o.source.sampleShape.join('x');
  const b = o.target.sampleShape.join('x');
  if (a !== b) throw new Error(`shift: the source gives samples of shape [${a}] but the target gives [${b}]; decode both domains with the same preprocessing.`);
  const disjoint = o.disjoint ?? o.source === o.target;
  let si: Int32Array;
  let ti: Int32Array;
  if (disjoint) {
    // one domain against itself: two disjoint random halves
    const all = sampleIndices(o.source.length, Math.min(o.source.length, 2 * want), seed + 11);
    const p = shuffled(all, seed + 12);
    const h = p.length >> 1;
    si = p.subarray(0, h).sort();
    ti = p.subarray(h, 2 * h).sort();
  } else {
    si = sampleIndices(o.source.length, want, seed + 11);
    ti = sampleIndices(o.target.length, want, seed + 13);
  }
  if (si.length < 8 || ti.length < 8)
    throw new Error(`shift: needs at least 8 images per domain (got ${si.length} source and ${ti.length} target); give more images.`);

  let fa: FeatureRows;
  let fb: FeatureRows;
  let from = 'input values (no backbone)';
  if (o.backbone) {
    const cut = featureCut(o.backbone, o.cut);
    const fx = extractSubgraph(o.backbone, cut.value);
    const feats = async (src: BatchSource, idx: Int32Array) => {
      const f = (await sourceFeatures(fx, subsetSource(src, idx), { onTaskProgress: o.onTaskProgress })).source;
      const d = f.sampleShape.reduce((x, y) => x * y, 1);
      return { x: f.x, n: f.length, d };
    };
    fa = await feats(o.source, si);
    fb = await feats(o.target, ti);
    from = `${cut.value} (${cut.rule === 'classifier' ? 'the input of the final classifier' : `${cut.rule} cut`})`;
  } else {
    fa = await inputRows(o.source, si);
    fb = await inputRows(o.target, ti);
  }
  const mm = Math.min(o.mmdSamples ?? 500, fa.n, fb.n);
  const head = (f: FeatureRows, n: number): FeatureRows => ({ x: f.x.subarray(0, n * f.d), n, d: f.d });
  const mmd = mmdTest(head(fa, mm), head(fb, mm), { permutations: o.permutations, seed });
  const aDistance = proxyADistance(fa, fb, { seed });
  const summary = momentSummary(fa, fb);
  const hasBN = o.hasBatchNorm ?? !!o.backbone?.graph.nodes.some((n) => n.op === 'BatchNormalization');
  const { level, advice, methods } = shiftAdvice({ aDistance: aDistance.aDistance, pValue: mmd.pValue, summary, hasBatchNorm: hasBN });
  return {
    samples: { source: fa.n, target: fb.n },
    features: { dims: fa.d, from },
    aDistance,
    mmd: { ...mmd, samples: mm },
    summary,
    level,
    advice,
    methods,
    seconds: (performance.now() - t0) / 1000,
  };
}

function shuffled(v: Int32Array, seed: number): Int32Array {
  const p = new Rng(seed).permutation(v.length);
  return Int32Array.from(p, (i) => v[i]!);
}

/** What {@link shiftAdvice} reads. */
export interface AdviceInput {
  aDistance: number;
  pValue: number;
  summary: MomentSummary;
  hasBatchNorm?: boolean;
}

/**
 * Plain-words advice from the measures. The thresholds are heuristics calibrated on graft's known shifts
 * (docs/benchmarks.md, "Shift"): MMD p ≥ 0.05 or proxy A-distance < 0.1 → none; A < 0.5 small, < 1.5
 * moderate, else large. The method lists follow what worked on those shifts (docs/cli/adapt.md, bench/adapt.ts).
 */
export function shiftAdvice(m: AdviceInput): { level: ShiftLevel; advice: string[]; methods: string[] } {
  const a = m.aDistance.toFixed(2);
  const p = m.pValue < 0.001 ? '< 0.001' : m.pValue.toFixed(3);
  // a detectable difference that no linear classifier can use (A < 0.1) is no shift to adapt to
  const level: ShiftLevel = m.pValue >= 0.05 || m.aDistance < 0.1 ? 'none' : m.aDistance < 0.5 ? 'small' : m.aDistance < 1.5 ? 'moderate' : 'large';
  const advice: string[] = [];
  let methods: string[] = [];
  if (level === 'none') {
    advice.push(
      m.pValue >= 0.05
        ? `No shift detected: the MMD test cannot tell the domains apart (p = ${p}) and a linear domain classifier does little better than chance (proxy A-distance ${a}).`
        : `No shift that matters: the MMD test sees a difference (p = ${p}), but a linear domain classifier does no better than chance (proxy A-distance ${a}).`,
      'Adaptation is likely not needed: train on the source (graft train) and check on a few labelled target images.',
    );
  } else if (level === 'small') {
    methods = [...(m.hasBatchNorm ? ['adabn'] : []), 'coral', 'mcc'];
    advice.push(
      `A small shift: the domains differ (MMD p = ${p}) but a linear domain classifier separates them only partly (proxy A-distance ${a}).`,
      `A source-trained model may lose a little on the target; light adaptation is enough: ${methods.join(', ')} (graft adapt --method …), ` +
        'or source-only if a few labelled target images show no loss.',
    );
  } else if (level === 'moderate') {
    methods = ['mcc', 'dan', 'cdan', ...(m.hasBatchNorm ? ['adabn'] : [])];
    advice.push(
      `A moderate shift: the domains are clearly different (MMD p = ${p}, proxy A-distance ${a}).`,
      `Adaptation is likely needed. Methods that suit it: ${methods.join(', ')}; let graft adapt --method auto pick among them without target labels.`,
    );
  } else {
    methods = ['mcc', 'cdan+e', 'dan'];
    advice.push(
      `A large shift: a linear classifier tells the domains apart almost perfectly (proxy A-distance ${a}, MMD p = ${p}).`,
      `Adaptation is needed, and may not be enough. Try ${methods.join(', ')} with graft adapt --method auto; ` +
        'self-training and FixMatch tend to reinforce wrong pseudo-labels at this size, and if the target has other classes than the source, ' +
        'unsupervised adaptation does not apply: label some target images and fine-tune (graft train).',
    );
  }
  if (m.summary.normRatio > 2 || m.summary.normRatio < 0.5)
    advice.push(
      `The target's features are ${m.summary.normRatio.toFixed(2)}× as large as the source's: check that both domains are preprocessed alike (scale, mean, std).`,
    );
  return { level, advice, methods };
}
