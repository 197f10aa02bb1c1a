/**
 * Scalar operands shaped to the rank of the tensor they meet. onnxruntime 1.31's CPU Mul/Div/Add/Sub of a rank-0 (or
 * lower-rank) scalar with a tensor of rank ≥ 3 whose innermost dims are small — a Conv weight `[K, C, 1, 1]` or
 * `[C, 1, 3, 3]`, a per-channel statistic `[1, C, 1, 1]`, a pooled `[N, C, 1, 1]` — takes its general per-span
 * broadcast path, 5–60× slower than the same op with a `[1, …, 1]` operand of the tensor's rank (2.7 ms against 44 µs
 * for a scalar × `[1280, 320, 1, 1]` on one thread; docs/benchmarks.md, "Session 8: the optimizer's Muls" and
 * "Session 9: BN's scalar broadcasts"; `bench/scalar-broadcast.ts`). The arithmetic is the same multiply, divide or
 * add per element, so results are bit for bit those of the plain scalar. Used by the optimizers (src/optim) and by the
 * gradient and lowering rules of src/ops that meet such tensors.
 */
import { Tensor } from '../tensor.js';
import type { Emitter } from './emit.js';

/** Tensors from this rank up take their scalar operands shaped [1, …, 1] of the same rank (see {@link scalarsOfRank}). */
export const RANKED_SCALAR_MIN = 3;

/** Makes scalars for elementwise ops on tensors of a given rank; each is made once per value (or name) and rank. */
export interface RankedScalars {
  /** A float32 constant `v`: shaped `[1, …, 1]` with `rank` axes from {@link RANKED_SCALAR_MIN} up, else rank 0. */
  constant(v: number, rank: number): string;
  /** The scalar graph value `name` reshaped to `[1, …, 1]` with `rank` axes from {@link RANKED_SCALAR_MIN} up, else itself. */
  value(name: string, rank: number): string;
}

/**
 * Scalar operands for elementwise ops on a tensor of rank `rank`, shaped `[1, …, 1]` with that rank (from rank
 * {@link RANKED_SCALAR_MIN} up; below it the plain scalar), so that onnxruntime takes its scalar path instead of its
 * per-span broadcast (see the module comment). One instance caches what it made: share it within one emit.
 */
export function scalarsOfRank(e: Emitter): RankedScalars {
  const made = new Map<string, string>();
  const once = (key: string, make: () => string) => {
    let name = made.get(key);
    if (!name) made.set(key, (name = make()));
    return name;
  };
  const ones = (rank: number) => new Array<number>(rank).fill(1);
  return {
    constant: (v, rank) => once(`c${rank}:${v}`, () => (rank < RANKED_SCALAR_MIN ? e.scalar(v) : e.constTensor(Tensor.f32(ones(rank), [v]), 'scalar'))),
    value: (name, rank) => (rank < RANKED_SCALAR_MIN ? name : once(`v${rank}:${name}`, () => e.op('Reshape', [name, e.ints(ones(rank))]))),
  };
}
