/**
 * Adam and AdamW emitted as ONNX ops with the semantics of `torch.optim.Adam` / `torch.optim.AdamW`.
 * Bias corrections are host-computed scalar inputs, so the graph carries no step counter.
 */

import type { Emitter } from '../ir/emit.js';
import { scalarsOfRank } from '../ir/scalars.js';
import { Tensor } from '../tensor.js';
import { DEFAULT_LR } from './defaults.js';
import type { Optimizer, ParamGroup, ParamSlot, StateSlot, UpdateResult } from './optimizer.js';
import { checkNonNegative, checkSlots, checkStep, declareState, forgetStateTypes, groupWeightDecay, scalarName } from './sgd.js';

/** Options of {@link adam} and {@link adamw}. Defaults match PyTorch. */
export interface AdamOptions {
  /** Base learning rate the runner scales by each group's `lrScale` and the schedule. Default 1e-3 ({@link DEFAULT_LR}). */
  lr?: number;
  /** Decay rates (β1, β2) of the first and second moment estimates, each in [0, 1). Default [0.9, 0.999]. */
  betas?: [number, number];
  /** Term added to the denominator for numerical stability. Default 1e-8. */
  eps?: number;
  /**
   * Weight decay λ; a group's `weightDecay` overrides it. For {@link adam} it is an L2 penalty added to the
   * gradient (default 0); for {@link adamw} it is decoupled, `p ← p − lr·λ·p` (default 0.01).
   */
  weightDecay?: number;
  /** Use the AMSGrad variant (keeps the running maximum of the second moment). Default false. */
  amsgrad?: boolean;
}

/** Scalar input holding 1 / (1 − β1^t) at step t. */
export const ADAM_BC1 = 'adam_bias_correction1';
/** Scalar input holding 1 / √(1 − β2^t) at step t. */
export const ADAM_BC2 = 'adam_bias_correction2_rsqrt';

/**
 * Adam (PyTorch `torch.optim.Adam`), with L2 weight decay added to the gradient:
 * `g = grad + λ·p; m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;`
 * `p = p − lr·(m / (1−β1^t)) / (√(v / (1−β2^t)) + ε)`.
 * State: `m` and `v` per parameter (plus `v_max` with AMSGrad), initialised to zeros; the caller declares
 * the state inputs and outputs (see {@link sgd}).
 */
export function adam(opts: AdamOptions = {}): Optimizer & { readonly lr: number } {
  return makeAdam('adam', false, opts, 0);
}

/**
 * AdamW (PyTorch `torch.optim.AdamW`): decoupled weight decay `p ← p − lr·λ·p` applied before the
 * Adam step, which then uses the raw gradient. Default weight decay 0.01.
 */
export function adamw(opts: AdamOptions = {}): Optimizer & { readonly lr: number } {
  return makeAdam('adamw', true, opts, 0.01);
}

function makeAdam(name: 'adam' | 'adamw', decoupled: boolean, opts: AdamOptions, defaultWd: number): Optimizer & { readonly lr: number } {
  const where = `${name}()`;
  const lr = opts.lr ?? DEFAULT_LR[name];
  const betas = opts.betas ?? [0.9, 0.999];
  const eps = opts.eps ?? 1e-8;
  const weightDecay = opts.weightDecay ?? defaultWd;
  const amsgrad = opts.amsgrad ?? false;
  checkNonNegative(where, 'lr', lr);
  checkNonNegative(where, 'eps', eps);
  checkNonNegative(where, 'weightDecay', weightDecay);
  if (!Array.isArray(betas) || betas.length !== 2 || !betas.every((b) => typeof b === 'number' && Number.isFinite(b) && b >= 0 && b < 1))
    throw new Error(`${where}: betas must be two numbers in [0, 1), got ${JSON.stringify(betas)}. Pass e.g. { betas: [0.9, 0.999] }.`);
  const [b1, b2] = betas;

  return {
    name,
    lr,
    config: { lr, betas: [b1, b2], eps, weightDecay, amsgrad },
    scalarInputs: () => [ADAM_BC1, ADAM_BC2],
    scalarValues(step: number) {
      checkStep(where, step);
      return { [ADAM_BC1]: 1 / (1 - b1 ** step), [ADAM_BC2]: 1 / Math.sqrt(1 - b2 ** step) };
    },
    emit(e: Emitter, slots: ParamSlot[], lrNames: string[], groups: ParamGroup[], scalars: Record<string, string>): UpdateResult {
      checkSlots(where, slots, lrNames, groups);
      const bc1 = scalarName(where, scalars, ADAM_BC1);
      const bc2 = scalarName(where, scalars, ADAM_BC2);
      // scalar operands shaped to each parameter's rank (onnxruntime's slow broadcast otherwise; see scalarsOfRank)
      const k = scalarsOfRank(e);
      // Per group: step size lr / (1 − β1^t), and the decoupled decay factor 1 − lr·λ (AdamW).
      const stepSize = new Map<number, string>();
      const decay = new Map<number, string>();
      const params = new Map<string, string>();
      const state: StateSlot[] = [];
      for (const s of slots) {
        const wd = groupWeightDecay(where, groups, s.group, weightDecay);
        const lrG = lrNames[s.group]!;
        const r = s.dims.length;
        let p = s.param;
        let g = s.grad;
        if (wd !== 0 && decoupled) {
          let keep = decay.get(s.group);
          if (!keep) decay.set(s.group, (keep = e.sub(e.scalar(1), e.mul(lrG, e.scalar(wd)))));
          p = e.mul(p, k.value(keep, r));
        } else if (wd !== 0) g = e.add(g, e.mul(k.constant(wd, r), p));

        const m = declareState(e, s, 'exp_avg');
        const v = declareState(e, s, 'exp_avg_sq');
        const mNext = e.op('Add', [e.mul(k.constant(b1, r), m), e.mul(k.constant(1 - b1, r), g)], {}, `${s.param}.exp_avg.next`);
        const vNext = e.op('Add', [e.mul(k.constant(b2, r), v), e.mul(k.constant(1 - b2, r), e.mul(g, g))], {}, `${s.param}.exp_avg_sq.next`);
        state.push({ input: m, output: mNext, init: Tensor.f32(s.dims) }, { input: v, output: vNext, init: Tensor.f32(s.dims) });
        let vUse = vNext;
        if (amsgrad) {
          const vMax = declareState(e, s, 'max_exp_avg_sq');
          vUse = e.op('Max', [vMax, vNext], {}, `${s.param}.max_exp_avg_sq.next`);
          state.push({ input: vMax, output: vUse, init: Tensor.f32(s.dims) });
        }
        // denom = √v · 1/√(1 − β2^t) + ε ; p ← p − (lr / (1 − β1^t)) · m / denom
        const denom = e.add(e.mul(e.op('Sqrt', [vUse]), k.value(bc2, r)), k.constant(eps, r));
        let ss = stepSize.get(s.group);
        if (!ss) stepSize.set(s.group, (ss = e.mul(lrG, bc1)));
        params.set(s.param, e.op('Sub', [p, e.mul(k.value(ss, r), e.div(mNext, denom))], {}, `${s.param}.updated`));
      }
      forgetStateTypes(e, state);
      return { params, state };
    },
  };
}
