/**
 * Loss functions built from standard ONNX ops with an {@link Emitter}, so their gradients come from the
 * existing op rules. Semantics follow PyTorch (`F.cross_entropy`, `F.mse_loss`, `F.binary_cross_entropy_with_logits`).
 */
import type { Emitter } from '../ir/emit.js';
import { Tensor } from '../tensor.js';

/** Options of {@link softmaxCrossEntropy}. */
export interface CrossEntropyOptions {
  /** One non-negative weight per class (PyTorch `weight`). */
  classWeights?: number[];
  /** ε in [0, 1]: targets become (1 − ε)·onehot + ε/C (PyTorch `label_smoothing`). */
  labelSmoothing?: number;
}

/**
 * Softmax cross-entropy of `logits` [N, C] against int64 class indices `labels` [N], with PyTorch semantics.
 *
 * Per sample (PyTorch `reduction='none'`): l_i = −Σ_c w_c·t_ic·log softmax(logits)_ic with
 * t = (1 − ε)·onehot(y) + ε/C and w = classWeights (all ones when absent). Note that, as in PyTorch, the
 * smoothing term is weighted by each class's own weight w_c, not by the sample's w_{y_i}.
 * `loss` = Σ_i l_i / Σ_i w_{y_i} (the mean over the batch when unweighted) — exactly PyTorch's
 * `(1−ε)·nll_loss(weight) + ε/C·Σ_i Σ_c w_c(−log p_ic) / Σ_i w_{y_i}`.
 * Labels outside [0, C) are not checked here (validate them when loading data): such a sample adds only its
 * smoothing term and no weight.
 * @returns `loss` (float32 scalar), `correct` (float32 scalar: count of argmax(logits) == label, first max wins),
 *   `perSample` ([N] float32).
 */
export function softmaxCrossEntropy(
  e: Emitter,
  logits: string,
  labels: string,
  numClasses: number,
  opts: CrossEntropyOptions = {},
): { loss: string; correct: string; perSample: string } {
  const shape = e.shape(logits);
  if (shape && (shape.length !== 2 || (typeof shape[1] === 'number' && shape[1] !== numClasses)))
    throw new Error(
      `softmaxCrossEntropy: logits "${logits}" have shape [${shape}], expected [N, ${numClasses}]. Flatten the head's output to [N, C] and check numClasses.`,
    );
  const eps = opts.labelSmoothing ?? 0;
  if (!(eps >= 0 && eps <= 1)) throw new Error(`softmaxCrossEntropy: labelSmoothing ${eps} is outside [0, 1]. Use a value such as 0.1.`);
  const w = opts.classWeights;
  if (w && (w.length !== numClasses || w.some((v) => !(v >= 0))))
    throw new Error(`softmaxCrossEntropy: classWeights needs ${numClasses} non-negative numbers (one per class), got [${w.join(', ')}].`);
  let lab = labels;
  const dt = e.info(labels)?.dtype;
  if (dt && dt !== 'int64') {
    if (dt.startsWith('float')) throw new Error(`softmaxCrossEntropy: labels "${labels}" are ${dt}; pass class indices as an int64 [N] tensor.`);
    lab = e.op('Cast', [labels], { to: 7 });
  }

  const logp = e.op('LogSoftmax', [logits], { axis: 1 });
  const classes = e.constTensor(Tensor.i64([numClasses], [...Array(numClasses).keys()]), 'classes');
  const onehot = e.op('Cast', [e.op('Equal', [e.unsqueeze(lab, [1]), classes])], { to: 1 });
  let target = eps > 0 ? e.add(e.mul(onehot, e.scalar(1 - eps)), e.scalar(eps / numClasses)) : onehot;
  const weights = w ? e.constTensor(Tensor.f32([numClasses], w), 'class_weights') : null;
  if (weights) target = e.mul(target, weights);
  const perSample = e.neg(e.reduceSum(e.mul(target, logp), [1], false));
  const loss = weights ? e.div(e.reduceSum(perSample, 'all', false), e.reduceSum(e.mul(onehot, weights), 'all', false)) : e.reduceMean(perSample, 'all', false);
  const hit = e.op('Equal', [e.op('ArgMax', [logits], { axis: 1, keepdims: 0 }), lab]);
  const correct = e.reduceSum(e.op('Cast', [hit], { to: 1 }), 'all', false);
  return { loss, correct, perSample };
}

/** Mean squared error over all elements (PyTorch `F.mse_loss`, reduction 'mean'); `pred` and `target` must have the same shape. */
export function mseLoss(e: Emitter, pred: string, target: string): { loss: string } {
  checkSameShape(e, 'mseLoss', pred, target);
  const d = e.sub(pred, target);
  return { loss: e.reduceMean(e.mul(d, d), 'all', false) };
}

/**
 * Binary cross-entropy on logits, mean over all elements (PyTorch `F.binary_cross_entropy_with_logits`), in the
 * numerically stable form l = (1 − t)·x + (1 + (p − 1)·t)·(log(1 + e^(−|x|)) + max(−x, 0)), p = posWeight
 * (broadcast along the last axis; 1 when absent). `targets` are float probabilities with the shape of `logits`.
 */
export function binaryCrossEntropyWithLogits(e: Emitter, logits: string, targets: string, opts: { posWeight?: number[] } = {}): { loss: string } {
  checkSameShape(e, 'binaryCrossEntropyWithLogits', logits, targets);
  const x = logits;
  const softplusNeg = e.add(e.op('Log', [e.add(e.scalar(1), e.op('Exp', [e.neg(e.op('Abs', [x]))]))]), e.op('Relu', [e.neg(x)]));
  const lin = e.mul(e.sub(e.scalar(1), targets), x);
  let coef: string | null = null;
  if (opts.posWeight) {
    const pw = e.constTensor(
      Tensor.f32(
        [opts.posWeight.length],
        opts.posWeight.map((v) => v - 1),
      ),
      'pos_weight_m1',
    );
    coef = e.add(e.scalar(1), e.mul(pw, targets));
  }
  const l = e.add(lin, coef ? e.mul(coef, softplusNeg) : softplusNeg);
  return { loss: e.reduceMean(l, 'all', false) };
}

function checkSameShape(e: Emitter, fn: string, a: string, b: string): void {
  const sa = e.shape(a);
  const sb = e.shape(b);
  if (!sa || !sb) return;
  const clash = sa.length !== sb.length || sa.some((d, i) => typeof d === 'number' && typeof sb[i] === 'number' && d !== sb[i]);
  if (clash) throw new Error(`${fn}: "${a}" has shape [${sa}] but "${b}" has shape [${sb}]; they must match. Reshape the target to the prediction's shape.`);
}
