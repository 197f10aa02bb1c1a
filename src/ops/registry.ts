/**
 * The op registry: for every ONNX op graft understands, its shape/type inference and (when it has
 * one) its gradient rule, registered together in the op's own file (src/ops/<family>.ts).
 */

import type { Emitter } from '../ir/emit.js';
import type { Dim, Node, ValueInfo } from '../ir/graph.js';
import type { DType } from '../tensor.js';

/** Type and shape of one output; `shape` undefined means unknown rank. */
export interface TypeShape {
  dtype: DType;
  shape?: Dim[];
}

/** What shape inference can ask about the graph. */
export interface InferContext {
  opset: number;
  /** The value of a constant input (initializer or Constant node), if it is one. */
  constant(name: string): import('../tensor.js').Tensor | undefined;
  /** The (possibly symbolic) contents of a 1-D int64 shape vector: a constant, or Shape(x) of a value with known shape. */
  shapeValue(name: string): Dim[] | undefined;
}

/**
 * A gradient rule: given the node and the gradients of its outputs (null where no gradient flows),
 * emit ONNX ops with `e` and return the gradient of each input (null when not needed or not differentiable).
 * `needs[i]` tells whether input i needs a gradient; rules should skip work for inputs that do not.
 */
export type GradRule = (e: Emitter, node: Node, dys: (string | null)[], needs: boolean[]) => (string | null)[];

export interface OpDef {
  infer(node: Node, inputs: (ValueInfo | undefined)[], ctx: InferContext): TypeShape[];
  grad?: GradRule;
  /** Outputs that never carry gradient (indices, shapes, running stats). */
  nonDifferentiableOutputs?: number[];
}

const ops = new Map<string, OpDef>();

/** Registers an op. Called at module load by each src/ops/<family>.ts file. */
export function defineOp(op: string, def: OpDef): void {
  ops.set(op, def);
}

export function opDef(op: string): OpDef | undefined {
  return ops.get(op);
}

export function registeredOps(): string[] {
  return [...ops.keys()].sort();
}

/** Ops that have a gradient rule. */
export function differentiableOps(): string[] {
  return [...ops]
    .filter(([, d]) => d.grad)
    .map(([k]) => k)
    .sort();
}
