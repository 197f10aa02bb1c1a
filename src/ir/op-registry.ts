/**
 * The op table: for every ONNX op graft understands, its shape/type inference and (when it has one) its
 * gradient rule. The rules live beside each op in src/ops/<family>.ts, where each family file collects its
 * definitions in an {@link OpFamily}; `registerStandardOps()` (src/ops/index.ts) installs them all here,
 * once. The table lives in ir/ because shape inference (ir/emit.ts) reads it; ir never imports ops/.
 */

import type { DType, Tensor } from '../tensor.js';
import type { Emitter } from './emit.js';
import type { Dim, Node, ValueInfo } from './graph.js';

/** Type and shape of one output; `shape` undefined means unknown rank. */
export interface TypeShape {
  dtype: DType;
  shape?: Dim[];
}

/** What shape inference can ask about the graph. */
export interface InferContext {
  opset: number;
  /** The value of a constant input (initializer or Constant node), if it is one. */
  constant(name: string): Tensor | undefined;
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
  /** For graft-domain ops only: expands the node into standard ONNX ops writing its output names (see lowerGraftOps). */
  lower?: (e: Emitter, node: Node) => void;
}

/** The definitions of one op family (one src/ops/<family>.ts file), collected when the file loads and installed by {@link registerOps}. */
export class OpFamily {
  readonly defs = new Map<string, OpDef>();
  constructor(readonly name: string) {}
  /** Adds one op's definition to this family (not yet to the table). */
  readonly define = (op: string, def: OpDef): void => {
    this.defs.set(op, def);
  };
}

const ops = new Map<string, OpDef>();

/** The ONNX domain of the ops graft uses only while it differentiates (BatchNormTrain, GradReverse, StopGradient). */
export const GRAFT_DOMAIN = 'graft';

/** Installs every op of the given families into the table (a later definition of the same op replaces the earlier). */
export function registerOps(...families: OpFamily[]): void {
  for (const f of families) for (const [op, def] of f.defs) ops.set(op, def);
}

/** Registers (or replaces) one op directly: for extensions, and for tests that swap a rule. */
export function defineOp(op: string, def: OpDef): void {
  ops.set(op, def);
}

export function opDef(op: string): OpDef | undefined {
  return ops.get(op);
}

/**
 * The definition of `node`'s op; throws naming the op and the node when graft has none, because then it can
 * neither infer the shapes after it nor differentiate through it.
 */
export function requireOpDef(node: Node): OpDef {
  const def = ops.get(node.op);
  if (def) return def;
  if (ops.size === 0)
    throw new Error(
      `node "${node.name}" (${node.op}): graft's op table is empty. Call registerStandardOps() (exported by graft, src/ops/index.ts) before building or differentiating graphs.`,
    );
  const domain = node.domain ? ` in domain "${node.domain}"` : '';
  throw new Error(
    `node "${node.name}" uses op ${node.op}${domain}, which graft does not know, so it cannot infer shapes through it or build a ` +
      'training or evaluation graph that contains it. ' +
      `Cut the model before it so that the new head replaces it (\`graft train --cut <value>\`, or replaceHead(head, { cut }) in the API), ` +
      `re-export the model without ${node.op}, or file an issue asking graft to support ${node.op}.`,
  );
}

/** Whether any op has been registered (registerStandardOps() has run, or an extension defined its own). */
export function opTableLoaded(): boolean {
  return ops.size > 0;
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

/** Replaces every graft-domain node by standard ONNX ops, through each op's `lower` (call before serializing a graph graft built). */
export function lowerGraftOps(e: Emitter): void {
  const g = e.graph;
  const custom = g.nodes.filter((n) => n.domain === GRAFT_DOMAIN);
  if (!custom.length) return;
  // the leaves' order is onnxruntime's execution order (step/compile.ts, leavesForOrt): kept through the re-sort.
  // A leaf is read by no node at all: a value only a graft op reads is not one (it must stay before its lowering)
  const consumed = new Set(g.nodes.flatMap((n) => n.inputs));
  g.nodes = g.nodes.filter((n) => n.domain !== GRAFT_DOMAIN);
  const leaves = g.nodes.filter((n) => n.outputs.every((o) => !o || !consumed.has(o)));
  for (const n of custom) {
    const lower = requireOpDef(n).lower;
    if (!lower) throw new Error(`Internal error: no lowering for graft op ${n.op} (node "${n.name}").`);
    lower(e, n);
  }
  g.topoSort();
  const isLeaf = new Set(leaves);
  g.nodes = [...g.nodes.filter((n) => !isLeaf.has(n)), ...leaves];
}
