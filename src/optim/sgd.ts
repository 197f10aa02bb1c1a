/**
 * Stochastic gradient descent with optional momentum, dampening, Nesterov and L2 weight decay,
 * emitted as ONNX ops with exactly the semantics of `torch.optim.SGD`.
 */

import type { Emitter } from '../ir/emit.js';
import { type RankedScalars, scalarsOfRank } from '../ir/scalars.js';
import { Tensor } from '../tensor.js';
import { DEFAULT_LR } from './defaults.js';
import type { Optimizer, ParamGroup, ParamSlot, StateSlot, UpdateResult } from './optimizer.js';

/** Options of {@link sgd}. Defaults match `torch.optim.SGD`. */
export interface SgdOptions {
  /** Base learning rate the runner scales by each group's `lrScale` and the schedule. Default 0.01 ({@link DEFAULT_LR}). */
  lr?: number;
  /** Momentum factor μ (0 disables the momentum buffer). Default 0. */
  momentum?: number;
  /** Dampening τ applied to the gradient in the buffer update (not on the first step). Default 0. */
  dampening?: number;
  /** Nesterov momentum (needs momentum > 0 and dampening = 0). Default false. */
  nesterov?: boolean;
  /** L2 penalty λ added to the gradient (g + λ·p); a group's `weightDecay` overrides it. Default 0. */
  weightDecay?: number;
}

/** Name of the scalar input SGD declares when it needs a first-step gradient scale (dampening ≠ 0). */
export const SGD_GRAD_SCALE = 'sgd_grad_scale';

/**
 * SGD as in PyTorch:
 * `g = grad + λ·p`; with momentum `buf = μ·buf + (1−τ)·g` (on the first step `buf = g`);
 * `update = nesterov ? g + μ·buf : buf`; `p = p − lr·update`.
 *
 * First step: the momentum buffer starts at zeros, so `μ·0 + s·g` equals `g` when the gradient scale
 * `s` is 1. Without dampening `s = 1` always and is a constant. With dampening, `s` is the scalar input
 * {@link SGD_GRAD_SCALE} whose value {@link Optimizer.scalarValues} gives as 1 on step 1 and `1 − τ`
 * afterwards, so the graph reproduces PyTorch's `buf = clone(g)` exactly with no step counter.
 * Without momentum there is no state.
 *
 * `emit` does not add graph inputs or outputs: the caller declares each `StateSlot.input` as a float32 graph
 * input shaped like `init`, and outputs the updated params and `StateSlot.output`s.
 */
export function sgd(opts: SgdOptions = {}): Optimizer & { readonly lr: number } {
  const lr = opts.lr ?? DEFAULT_LR.sgd;
  const momentum = opts.momentum ?? 0;
  const dampening = opts.dampening ?? 0;
  const nesterov = opts.nesterov ?? false;
  const weightDecay = opts.weightDecay ?? 0;
  const where = 'sgd()';
  checkNonNegative(where, 'lr', lr);
  checkNonNegative(where, 'momentum', momentum);
  checkNonNegative(where, 'weightDecay', weightDecay);
  if (!Number.isFinite(dampening) || dampening < 0 || dampening > 1)
    throw new Error(`${where}: dampening must be in [0, 1], got ${dampening}. Pass e.g. { dampening: 0 }.`);
  if (nesterov && (momentum <= 0 || dampening !== 0))
    throw new Error(
      `${where}: Nesterov momentum needs momentum > 0 and dampening = 0 (got momentum ${momentum}, dampening ${dampening}), as in torch.optim.SGD. Set a positive momentum and dampening 0, or nesterov: false.`,
    );
  const scaled = momentum > 0 && dampening !== 0;

  return {
    name: 'sgd',
    lr,
    config: { lr, momentum, dampening, nesterov, weightDecay },
    scalarInputs: () => (scaled ? [SGD_GRAD_SCALE] : []),
    scalarValues: (step: number): Record<string, number> => {
      checkStep(where, step);
      return scaled ? { [SGD_GRAD_SCALE]: step === 1 ? 1 : 1 - dampening } : {};
    },
    emit(e: Emitter, slots: ParamSlot[], lrNames: string[], groups: ParamGroup[], scalars: Record<string, string>): UpdateResult {
      checkSlots(where, slots, lrNames, groups);
      const gradScale = scaled ? scalarName(where, scalars, SGD_GRAD_SCALE) : undefined;
      const params = new Map<string, string>();
      const state: StateSlot[] = [];
      const negLr = new Map<string, string>();
      const k = scalarsOfRank(e);
      for (const s of slots) {
        const wd = groupWeightDecay(where, groups, s.group, weightDecay);
        const r = s.dims.length;
        let g = wd !== 0 ? e.add(s.grad, e.mul(k.constant(wd, r), s.param)) : s.grad;
        if (momentum > 0) {
          const buf = declareState(e, s, 'momentum_buffer');
          const scaledG = gradScale ? e.mul(k.value(gradScale, r), g) : g;
          const next = e.op('Add', [e.mul(k.constant(momentum, r), buf), scaledG], {}, `${s.param}.momentum_buffer.next`);
          state.push({ input: buf, output: next, init: Tensor.f32(s.dims) });
          g = nesterov ? e.add(g, e.mul(k.constant(momentum, r), next)) : next;
        }
        params.set(s.param, descend(e, s, g, lrNames[s.group]!, negLr, k));
      }
      forgetStateTypes(e, state);
      return { params, state };
    },
  };
}

/** Parameters from this many elements up take their step `p − lr·u` as one Gemm (see {@link descend}). */
const GEMV_STEP_MIN = 1024;

/**
 * `p − lr·u`, the parameter's step. For a large parameter, one Gemm over the flattened tensors, `[−lr]·u[1, n] + p[1, n]`
 * (a 1×1 by 1×n product accumulating onto C = p), in place of Mul + Sub: one pass over u fewer and no temporary,
 * ~20 % less time for a 512×256 weight (22.7 against 28.5 µs on one thread; docs/benchmarks.md, head section, session
 * 8). MLAS may fuse the multiply and add (one rounding instead of two), as PyTorch's own `p.add_(u, alpha=−lr)`
 * does with its vectorised fmadd; either way the result is `p − lr·u` to float rounding. `negLr` caches `−lr` as a
 * [1, 1] tensor per learning-rate input; `k` shapes the small parameters' `lr` (`scalarsOfRank`, src/ir/scalars.ts).
 */
function descend(e: Emitter, s: ParamSlot, u: string, lr: string, negLr: Map<string, string>, k: RankedScalars): string {
  const size = s.dims.reduce((a, b) => a * b, 1);
  if (size < GEMV_STEP_MIN) return e.op('Sub', [s.param, e.mul(k.value(lr, s.dims.length), u)], {}, `${s.param}.updated`);
  let a = negLr.get(lr);
  if (!a) negLr.set(lr, (a = e.op('Reshape', [e.neg(lr), e.ints([1, 1])])));
  const row = e.ints([1, size]);
  const step = e.op('Gemm', [a, e.op('Reshape', [u, row]), e.op('Reshape', [s.param, row])]);
  return e.op('Reshape', [step, e.ints(s.dims)], {}, `${s.param}.updated`);
}

// ---- shared helpers (also used by adam.ts; not part of the public API) ----------------------

/** @internal Throws unless `v` is a finite number ≥ 0. */
export function checkNonNegative(where: string, key: string, v: number): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0)
    throw new Error(`${where}: ${key} must be a finite number ≥ 0, got ${v}. Fix the optimizer options.`);
}

/** @internal Throws unless `step` is a 1-based integer step number. */
export function checkStep(where: string, step: number): void {
  if (!Number.isInteger(step) || step < 1)
    throw new Error(`${where}.scalarValues: step must be a 1-based integer (1 for the first update), got ${step}. Pass the number of the update being made.`);
}

/** @internal Checks that every slot names an existing group with an LR input and a known shape. */
export function checkSlots(where: string, slots: ParamSlot[], lr: string[], groups: ParamGroup[]): void {
  for (const s of slots) {
    if (!Number.isInteger(s.group) || s.group < 0 || s.group >= Math.max(lr.length, groups.length) || lr[s.group] === undefined)
      throw new Error(
        `${where}.emit: parameter "${s.param}" is in group ${s.group}, but there are ${lr.length} lr inputs and ${groups.length} groups. Pass one lr input name and one ParamGroup per group index.`,
      );
    if (!s.dims.every((d) => Number.isInteger(d) && d >= 0))
      throw new Error(`${where}.emit: parameter "${s.param}" has dims [${s.dims.join(', ')}]; optimizer state needs static non-negative integer dims.`);
  }
}

/** @internal The weight decay of a group: its own if set, else the optimizer's default. */
export function groupWeightDecay(where: string, groups: ParamGroup[], group: number, fallback: number): number {
  const wd = groups[group]?.weightDecay ?? fallback;
  checkNonNegative(`${where} (param group ${group})`, 'weightDecay', wd);
  return wd;
}

/** @internal The graph name of a declared scalar input. */
export function scalarName(where: string, scalars: Record<string, string>, key: string): string {
  const name = scalars[key];
  if (!name)
    throw new Error(
      `${where}.emit: the scalar input "${key}" was not passed in \`scalars\`. Create a float scalar graph input for every name in scalarInputs() and pass the mapping.`,
    );
  return name;
}

/**
 * @internal Picks a fresh name for one state tensor shaped like the parameter. Its type is recorded only
 * while `emit` runs (so shape inference works); call {@link forgetStateTypes} before returning, because the
 * caller declares the state inputs as graph inputs (from `StateSlot.init`).
 */
export function declareState(e: Emitter, s: ParamSlot, kind: string): string {
  const name = e.graph.fresh(`${e.prefix}${s.param}.${kind}`);
  e.graph.valueInfo.set(name, { name, dtype: 'float32', shape: [...s.dims] });
  return name;
}

/** @internal Drops the temporary types recorded by {@link declareState}. */
export function forgetStateTypes(e: Emitter, state: StateSlot[]): void {
  for (const s of state) e.graph.valueInfo.delete(s.input);
}
