/**
 * The part every training-step compiler shares: backward through the trainable part, gradient
 * clipping, per-group learning-rate and optimizer scalar inputs, the optimizer update, and the
 * carried slots (parameters, optimizer state, BN running statistics) the runner feeds back.
 */
import { backward } from '../autodiff/backward.js';
import { Emitter } from '../ir/emit.js';
import type { Graph } from '../ir/graph.js';
import { clipGradNorm } from '../optim/clip.js';
import type { Optimizer, ParamGroup, ParamSlot } from '../optim/optimizer.js';
import { Tensor } from '../tensor.js';
import type { CarriedSlot } from './compile.js';

export interface UpdateSpec {
  optimizer: Optimizer;
  groups?: ParamGroup[];
  /** Group index of each parameter (default 0). */
  groupOf?: (param: string) => number;
  clipNorm?: number;
  /** Prefix for error messages, e.g. 'compileAdaptStep: '. */
  where?: string;
}

export interface UpdateResult {
  carried: CarriedSlot[];
  lrInputs: string[];
  scalarInputs: string[];
  gradNormOutput?: string;
  differentiated: number;
  groups: ParamGroup[];
  /** The gradient of a forward value on the differentiated path (see BackwardResult.gradOf). */
  gradOf(value: string): string | undefined;
}

/**
 * Appends backward + clipping + optimizer update for `trainable` (already graph inputs, initial values in
 * `inits`) to `g`, declares the lr/scalar/state inputs, and moves the BN running stats in `runningStats` from
 * initializers to carried inputs.
 */
export function emitBackwardAndUpdate(
  g: Graph,
  opset: number,
  loss: string,
  trainable: string[],
  inits: Map<string, Tensor>,
  runningStats: { input: string; output: string }[],
  spec: UpdateSpec,
): UpdateResult {
  const where = spec.where ?? '';
  const { grads, differentiated, gradOf } = backward(g, opset, loss, trainable);
  const e = new Emitter(g, opset, 'optim/');
  // a parameter the loss does not depend on has a zero gradient
  let gradNames = trainable.map((p) => grads.get(p) ?? e.constTensor(Tensor.f32([...inits.get(p)!.dims]), 'zero_grad'));
  let gradNormOutput: string | undefined;
  if (spec.clipNorm !== undefined) {
    if (!(spec.clipNorm > 0)) throw new Error(`${where}clipNorm must be > 0 (got ${spec.clipNorm}).`);
    const c = clipGradNorm(e, gradNames, spec.clipNorm);
    gradNames = c.grads;
    gradNormOutput = c.norm;
  }
  const groups = spec.groups ?? [{}];
  const lrInputs = groups.map((_, i) => `lr_${i}`);
  for (const name of lrInputs) g.inputs.push({ name, dtype: 'float32', shape: [] });
  const scalarInputs: string[] = [];
  const scalars: Record<string, string> = {};
  for (const s of spec.optimizer.scalarInputs()) {
    const name = `opt_${s}`;
    g.inputs.push({ name, dtype: 'float32', shape: [] });
    scalarInputs.push(name);
    scalars[s] = name;
  }
  const slots: ParamSlot[] = trainable.map((p, i) => {
    const group = spec.groupOf?.(p) ?? 0;
    if (!(group >= 0 && group < groups.length))
      throw new Error(`${where}parameter "${p}" is assigned to group ${group}, but only ${groups.length} groups exist.`);
    return { param: p, grad: gradNames[i]!, group, dims: [...inits.get(p)!.dims] };
  });
  const upd = spec.optimizer.emit(e, slots, lrInputs, groups, scalars);
  const carried: CarriedSlot[] = [];
  for (const p of trainable) {
    const next = upd.params.get(p);
    if (!next) throw new Error(`${where}optimizer ${spec.optimizer.name} produced no update for "${p}".`);
    carried.push({ kind: 'param', input: p, output: next, init: inits.get(p)! });
  }
  for (const s of upd.state) {
    g.inputs.push({ name: s.input, dtype: s.init.dtype, shape: [...s.init.dims] });
    carried.push({ kind: 'optim', input: s.input, output: s.output, init: s.init });
  }
  for (const rs of runningStats) {
    const init = g.initializers.get(rs.input);
    if (!init) continue;
    g.initializers.delete(rs.input);
    g.inputs.push({ name: rs.input, dtype: 'float32', shape: [...init.dims] });
    carried.push({ kind: 'bn', input: rs.input, output: rs.output, init });
  }
  return { carried, lrInputs, scalarInputs, gradNormOutput, differentiated, groups, gradOf };
}
