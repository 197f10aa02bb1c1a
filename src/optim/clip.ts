/** Gradient clipping by global norm, emitted as ONNX ops (`torch.nn.utils.clip_grad_norm_`). */
import type { Emitter } from '../ir/emit.js';

/**
 * Clips gradients by their global L2 norm exactly like `torch.nn.utils.clip_grad_norm_(…, maxNorm)`:
 * `total = √(Σ_i ‖g_i‖²)`, `coef = min(1, maxNorm / (total + 1e-6))`, `g_i ← coef · g_i`.
 *
 * @param e emitter of the step graph
 * @param grads names of the gradient values (any shapes)
 * @param maxNorm the maximum global norm, a finite number > 0
 * @returns the clipped gradient names (same order) and `norm`, a float scalar holding the
 *   pre-clipping total norm (useful to log). With no gradients, `grads` is empty and `norm` is a constant 0.
 */
export function clipGradNorm(e: Emitter, grads: string[], maxNorm: number): { grads: string[]; norm: string } {
  if (typeof maxNorm !== 'number' || !Number.isFinite(maxNorm) || maxNorm <= 0)
    throw new Error(`clipGradNorm: maxNorm must be a finite number > 0, got ${maxNorm}. Pass e.g. 1.0, or turn gradient clipping off.`);
  if (grads.length === 0) return { grads: [], norm: e.scalar(0) };
  const squares = grads.map((g) => e.reduceSum(e.mul(g, g), 'all', false));
  const norm = e.op('Sqrt', [e.sum(squares)], {}, 'grad_norm');
  const ratio = e.div(e.scalar(maxNorm), e.add(norm, e.scalar(1e-6)));
  const coef = e.op('Min', [ratio, e.scalar(1)], {}, 'clip_coef');
  return { grads: grads.map((g) => e.op('Mul', [g, coef], {}, `${g}.clipped`)), norm };
}
