/**
 * Domain-adaptation losses as ONNX ops (built with an {@link Emitter}), so they join the training-step
 * graph and their gradients come from the op rules: Deep CORAL, multi-kernel MMD (DAN), Minimum Class
 * Confusion, and pseudo-label cross-entropy (self-training, FixMatch). The adversarial losses (DANN, CDAN)
 * live in adversarial.ts.
 *
 * Inputs are 2-D: features [n, d] or logits [n, C] with static sizes (the step graph has fixed batch sizes).
 */
import type { Emitter } from '../ir/emit.js';
import { stopGradient } from '../ops/grl.js';
import { Tensor } from '../tensor.js';

/** The static [rows, cols] of a 2-D value; throws naming the value and the loss otherwise. */
export function dims2(e: Emitter, x: string, who: string): [number, number] {
  const s = e.shape(x);
  if (s?.length !== 2 || typeof s[0] !== 'number' || typeof s[1] !== 'number')
    throw new Error(
      `${who}: "${x}" must be a 2-D value with static sizes [n, d], got [${s?.map((d) => d ?? '?') ?? 'unknown'}]. Flatten features to [N, d] and compile with fixed batch sizes.`,
    );
  return [s[0], s[1]];
}

/**
 * Deep CORAL (Sun & Saenko, 2016) in the Transfer-Learning-Library form:
 * `mean((μs − μt)²) + mean((Cs − Ct)²)`, with C the unbiased feature covariance of each domain.
 * @param fs source features [ns, d]; @param ft target features [nt, d] (ns, nt ≥ 2).
 */
export function coralLoss(e: Emitter, fs: string, ft: string): string {
  const [ns, d] = dims2(e, fs, 'coralLoss');
  const [nt, dt] = dims2(e, ft, 'coralLoss');
  if (d !== dt) throw new Error(`coralLoss: source features have ${d} columns, target features ${dt}; both must come from the same feature layer.`);
  if (ns < 2 || nt < 2) throw new Error(`coralLoss: covariances need at least 2 samples per domain (got ${ns} source, ${nt} target); use a larger batch.`);
  const stats = (f: string, n: number) => {
    const mu = e.reduceMean(f, [0], true);
    const c = e.sub(f, mu);
    return { mu, cov: e.mul(e.op('Gemm', [c, c], { transA: 1 }), e.scalar(1 / (n - 1))) };
  };
  const s = stats(fs, ns);
  const t = stats(ft, nt);
  const sq = (a: string, b: string) => {
    const diff = e.sub(a, b);
    return e.reduceMean(e.mul(diff, diff), 'all', false);
  };
  return e.add(sq(s.mu, t.mu), sq(s.cov, t.cov));
}

/** Options of {@link mmdLoss}. */
export interface MmdOptions {
  /**
   * Base bandwidth σ² of the Gaussian kernels exp(−‖a − b‖² / (2·σ²·m)): 'mean' (the mean of the batch's full
   * N×N squared-distance matrix, diagonal included — the Transfer-Learning-Library's `GaussianKernel`, so the
   * default kernels are exactly TLlib DAN's `GaussianKernel(alpha=2^k)`, k = −3 … 1), 'median' (the median
   * heuristic: the median pairwise squared distance), or a fixed number. The heuristics are computed per batch
   * and not differentiated (PyTorch's `.detach()`).
   */
  bandwidth?: 'mean' | 'median' | number;
  /** Multipliers m of the base bandwidth, one kernel each (default 2^-3 … 2^1, DAN's five kernels). */
  multipliers?: number[];
}

/** The default DAN kernel family: σ²·2^k for k = −3 … 1. */
export const DAN_MULTIPLIERS: readonly number[] = [0.125, 0.25, 0.5, 1, 2];

/**
 * Multi-kernel maximum mean discrepancy (DAN, Long et al. 2015), unbiased estimate:
 * MMD² = Σ_{i≠j} k(s_i,s_j)/(n(n−1)) + Σ_{i≠j} k(t_i,t_j)/(m(m−1)) − 2·Σ k(s_i,t_j)/(nm), with k the sum of
 * Gaussian kernels at the given bandwidths. Computed on the joint feature matrix [n + m, d] (source rows first).
 * For n = m this is TLlib's `MultipleKernelMaximumMeanDiscrepancy(linear=False)` less its constant 2/(n − 1)
 * (bench/adapt-vs-torch.ts checks it against PyTorch).
 * @param all joint features [n + m, d]; @param n number of source rows.
 */
export function mmdLoss(e: Emitter, all: string, n: number, opts: MmdOptions = {}): string {
  const [rows] = dims2(e, all, 'mmdLoss');
  const m = rows - n;
  if (n < 2 || m < 2) throw new Error(`mmdLoss: needs at least 2 samples per domain (got ${n} source, ${m} target); use a larger batch.`);
  const mults = opts.multipliers ?? DAN_MULTIPLIERS;
  if (!mults.length || mults.some((v) => !(v > 0))) throw new Error(`mmdLoss: multipliers must be positive numbers, got [${mults.join(', ')}].`);
  const bw = opts.bandwidth ?? 'mean';
  if (typeof bw === 'number' && !(bw > 0)) throw new Error(`mmdLoss: a fixed bandwidth must be > 0, got ${bw}.`);
  // pairwise squared distances ‖a‖² + ‖b‖² − 2a·b, clamped at 0 against round-off
  const sq = e.reduceSum(e.mul(all, all), [1], true);
  const gram = e.op('Gemm', [all, all], { transB: 1 });
  const dist = e.op('Relu', [e.sub(e.add(sq, e.transpose(sq, [1, 0])), e.mul(gram, e.scalar(2)))]);
  // weights: +1/(n(n−1)) and +1/(m(m−1)) off the diagonal within a domain, −1/(nm) across domains
  const w = Tensor.f32([rows, rows]);
  const wd = w.data as Float32Array;
  const offDiag = Tensor.f32([rows, rows]);
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < rows; j++) {
      if (i === j) continue;
      const si = i < n;
      const sj = j < n;
      wd[i * rows + j] = si && sj ? 1 / (n * (n - 1)) : !si && !sj ? 1 / (m * (m - 1)) : -1 / (n * m);
      (offDiag.data as Float32Array)[i * rows + j] = 1;
    }
  let sigma: string;
  if (typeof bw === 'number') sigma = e.scalar(bw);
  else if (bw === 'mean') {
    const mean = e.div(e.reduceSum(dist, 'all', false), e.scalar(rows * rows));
    sigma = stopGradient(e, e.op('Max', [mean, e.scalar(1e-12)]));
  } else sigma = stopGradient(e, medianOffDiagonal(e, dist, rows));
  const terms = mults.map((k) => e.op('Exp', [e.neg(e.div(dist, e.mul(sigma, e.scalar(2 * k))))]));
  const kernel = e.sum(terms);
  return e.reduceSum(e.mul(kernel, e.constTensor(w, 'mmd_weights')), 'all', false);
}

/** Median of the strictly upper-triangular entries of a [rows, rows] matrix (the lower median for an even count). */
function medianOffDiagonal(e: Emitter, dist: string, rows: number): string {
  const idx: number[] = [];
  for (let i = 0; i < rows; i++) for (let j = i + 1; j < rows; j++) idx.push(i * rows + j);
  const flat = e.op('Reshape', [dist, e.ints([rows * rows])]);
  const upper = e.op('Gather', [flat, e.constTensor(Tensor.i64([idx.length], idx), 'triu')], { axis: 0 });
  const k = Math.ceil(idx.length / 2);
  // the k smallest, ascending; the last is the median
  const [vals] = e.opN('TopK', [upper, e.ints([k])], { axis: 0, largest: 0, sorted: 1 }, 2);
  const last = e.op('Slice', [e.op('Reshape', [vals!, e.ints([k])]), e.ints([k - 1]), e.ints([k]), e.ints([0])]);
  return e.op('Max', [e.op('Reshape', [last, e.ints([])]), e.scalar(1e-12)]);
}

/**
 * Minimum Class Confusion (Jin et al., 2020), exactly as the PyTorch reference (shared/ref/exp_da_shift.py):
 * p = softmax(logits/T); w_i = 1 + exp(−H(p_i)) rescaled to sum to B; cc = (p·w)ᵀp row-normalised;
 * loss = (Σ cc − trace cc)/C. By default the entropy weights are differentiated (the reference does not detach
 * them); `detachWeights` stops their gradient, as TLlib's `MinimumClassConfusionLoss` does (same value).
 * @param logits target logits [B, C].
 */
export function mccLoss(e: Emitter, logits: string, temperature = 2.5, opts: { detachWeights?: boolean } = {}): string {
  const [b, c] = dims2(e, logits, 'mccLoss');
  if (!(temperature > 0)) throw new Error(`mccLoss: temperature must be > 0, got ${temperature}.`);
  const p = e.op('Softmax', [e.mul(logits, e.scalar(1 / temperature))], { axis: 1 });
  const entropy = e.neg(e.reduceSum(e.mul(p, e.op('Log', [e.add(p, e.scalar(1e-5))])), [1], true)); // [B,1]
  const ent = opts.detachWeights ? stopGradient(e, entropy) : entropy;
  const w0 = e.add(e.scalar(1), e.op('Exp', [e.neg(ent)]));
  const w = e.div(e.mul(w0, e.scalar(b)), e.reduceSum(w0, 'all', false));
  const cc = e.op('Gemm', [e.mul(p, w), p], { transA: 1 }); // [C,C]
  const ccn = e.div(cc, e.reduceSum(cc, [1], true));
  const eye = Tensor.f32([c, c]);
  for (let i = 0; i < c; i++) (eye.data as Float32Array)[i * c + i] = 1;
  const trace = e.reduceSum(e.mul(ccn, e.constTensor(eye, 'eye')), 'all', false);
  return e.div(e.sub(e.reduceSum(ccn, 'all', false), trace), e.scalar(c));
}

/**
 * Cross-entropy on confident pseudo-labels (self-training; FixMatch when `teacher` is a weakly augmented view):
 * labels = argmax(teacher), mask = max softmax(teacher) ≥ threshold; loss = Σ mask·CE(student, labels) / B.
 * Neither the labels nor the mask carry gradient (they go through ArgMax and a comparison).
 * @returns the loss and the fraction of target samples above the threshold.
 */
export function pseudoLabelLoss(e: Emitter, student: string, teacher: string, threshold: number): { loss: string; rate: string } {
  const [b, c] = dims2(e, student, 'pseudoLabelLoss');
  const [bt, ct] = dims2(e, teacher, 'pseudoLabelLoss');
  if (b !== bt || c !== ct) throw new Error(`pseudoLabelLoss: student [${b}, ${c}] and teacher [${bt}, ${ct}] logits must have the same shape.`);
  if (!(threshold >= 0 && threshold < 1)) throw new Error(`pseudoLabelLoss: threshold must be in [0, 1), got ${threshold}.`);
  const conf = e.reduce('ReduceMax', e.op('Softmax', [teacher], { axis: 1 }), [1], false);
  const mask = e.op('Cast', [e.op('GreaterOrEqual', [conf, e.scalar(threshold)])], { to: 1 }); // [B], no gradient
  const labels = e.op('ArgMax', [teacher], { axis: 1, keepdims: 1 }); // [B,1] int64
  const classes = e.constTensor(Tensor.i64([c], [...Array(c).keys()]), 'classes');
  const onehot = e.op('Cast', [e.op('Equal', [labels, classes])], { to: 1 });
  const ce = e.neg(e.reduceSum(e.mul(onehot, e.op('LogSoftmax', [student], { axis: 1 })), [1], false));
  return { loss: e.div(e.reduceSum(e.mul(ce, mask), 'all', false), e.scalar(b)), rate: e.reduceMean(mask, 'all', false) };
}

/** Mean Shannon entropy of softmax(logits) over the rows (entropy minimisation, used by CDAN+E's weights too). */
export function entropyRows(e: Emitter, logits: string): string {
  const p = e.op('Softmax', [logits], { axis: 1 });
  return e.neg(e.reduceSum(e.mul(p, e.op('LogSoftmax', [logits], { axis: 1 })), [1], true));
}
