/**
 * Emitter: appends ONNX nodes to a graph with fresh names and runs shape inference as it goes,
 * so later code (gradient rules, optimizers, losses) can ask for any value's shape.
 * Opset-dependent forms (axes as attribute or input) are hidden behind helpers.
 */

import { Tensor } from '../tensor.js';
import type { AttrValue, Dim, Graph, Node, ValueInfo } from './graph.js';
import { type InferContext, requireOpDef } from './op-registry.js';
import { broadcastReduceAxes, desc } from './shape-utils.js';

export class Emitter implements InferContext {
  private producers?: Map<string, Node>;

  constructor(
    public readonly graph: Graph,
    public readonly opset: number,
    public prefix = '',
  ) {}

  /** The node that produces `name`, if any. */
  producer(name: string): Node | undefined {
    if (!this.producers) this.producers = this.graph.producers();
    return this.producers.get(name);
  }

  /** Emits one node with `nOut` outputs and returns their names, with their inferred shapes (throws for an op graft does not know). */
  opN(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, nOut = 1, hint?: string): string[] {
    const base = `${this.prefix}${hint ?? op}`;
    const outputs = Array.from({ length: nOut }, () => this.graph.fresh(base));
    const node = this.graph.addNode(op, inputs, outputs, attrs, this.graph.fresh(`${base}_node`));
    if (this.producers) for (const o of outputs) this.producers.set(o, node);
    inferNode(this.graph, node, this);
    return outputs;
  }

  /** Emits one single-output node and returns the output name. */
  op(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, hint?: string): string {
    return this.opN(op, inputs, attrs, 1, hint)[0]!;
  }

  /** Adds a constant as an initializer and returns its name. */
  constTensor(t: Tensor, hint = 'const'): string {
    const name = this.graph.fresh(`${this.prefix}${hint}`);
    this.graph.addInitializer(name, t);
    return name;
  }
  /** A float32 scalar constant. */
  scalar(v: number): string {
    return this.constTensor(Tensor.scalar(v), 'c');
  }
  /** A 1-D int64 constant (shapes, axes, starts...). */
  ints(values: number[]): string {
    return this.constTensor(Tensor.i64([values.length], values), 'i');
  }

  shape(name: string): Dim[] | undefined {
    return this.graph.info(name)?.shape;
  }
  rank(name: string): number | undefined {
    return this.shape(name)?.length;
  }
  info(name: string): ValueInfo | undefined {
    return this.graph.info(name);
  }

  constant(name: string): Tensor | undefined {
    const t = this.graph.initializers.get(name);
    if (t) return t;
    const p = this.producer(name);
    const v = p?.op === 'Constant' ? p.attrs.value : undefined;
    return v instanceof Tensor ? v : undefined;
  }

  shapeValue(name: string): Dim[] | undefined {
    const c = this.constant(name);
    if (c) return c.toNumbers();
    const p = this.producer(name);
    if (p?.op === 'Shape' && p.attrs.start === undefined && p.attrs.end === undefined) return this.shape(p.inputs[0]!);
    return undefined;
  }

  // ---- opset-aware helpers --------------------------------------------------------------
  /** Reduction over `axes` ('all' reduces every axis; an empty list is the identity). */
  reduce(op: 'ReduceSum' | 'ReduceMean' | 'ReduceMax' | 'ReduceSumSquare', x: string, axes: number[] | 'all', keepdims: boolean): string {
    if (axes === 'all') {
      const r = this.rank(x);
      if (r === undefined) return this.op(op, [x], { keepdims: keepdims ? 1 : 0 });
      axes = [...Array(r).keys()];
    }
    if (axes.length === 0) return x;
    const axesAsInput = op === 'ReduceSum' ? this.opset >= 13 : this.opset >= 18;
    return axesAsInput ? this.op(op, [x, this.ints(axes)], { keepdims: keepdims ? 1 : 0 }) : this.op(op, [x], { axes, keepdims: keepdims ? 1 : 0 });
  }
  reduceSum(x: string, axes: number[] | 'all', keepdims = true): string {
    return this.reduce('ReduceSum', x, axes, keepdims);
  }
  reduceMean(x: string, axes: number[] | 'all', keepdims = true): string {
    return this.reduce('ReduceMean', x, axes, keepdims);
  }
  unsqueeze(x: string, axes: number[]): string {
    return this.op('Unsqueeze', [x, this.ints(axes)]);
  }
  squeeze(x: string, axes: number[]): string {
    return this.op('Squeeze', [x, this.ints(axes)]);
  }
  add(a: string, b: string): string {
    return this.op('Add', [a, b]);
  }
  sub(a: string, b: string): string {
    return this.op('Sub', [a, b]);
  }
  mul(a: string, b: string): string {
    return this.op('Mul', [a, b]);
  }
  div(a: string, b: string): string {
    return this.op('Div', [a, b]);
  }
  neg(a: string): string {
    return this.op('Neg', [a]);
  }
  /** Sum of several values (one Sum node; identity for one). */
  sum(values: string[]): string {
    return values.length === 1 ? values[0]! : this.op('Sum', values);
  }
  /** Reshape to the runtime shape of `like`. */
  reshapeLike(x: string, like: string): string {
    return this.op('Reshape', [x, this.op('Shape', [like])]);
  }
  transpose(x: string, perm: number[]): string {
    return this.op('Transpose', [x], { perm });
  }

  /**
   * Sums a broadcast result `dy` back to the shape of operand `x` (the reverse of NumPy broadcasting).
   * Uses static ranks and unit dims; falls back to a runtime reshape only for the final shape.
   */
  sumToShape(dy: string, x: string, node: Node): string {
    const ys = this.shape(dy);
    const xs = this.shape(x);
    if (!ys || !xs) throw new Error(`${desc(node)}: cannot undo broadcasting without known ranks for "${dy}" and "${x}". Give the model static input ranks.`);
    const { lead, keep } = broadcastReduceAxes(ys, xs);
    let out = dy;
    if (keep.length) out = this.reduceSum(out, keep, true);
    if (lead.length) out = this.reduceSum(out, lead, false);
    return out;
  }
}

/** Infers and records the output types of one node; throws naming the node and op when graft has no definition of the op. */
export function inferNode(graph: Graph, node: Node, ctx: InferContext): void {
  const def = requireOpDef(node);
  const ins = node.inputs.map((i) => (i ? graph.info(i) : undefined));
  const outs = def.infer(node, ins, ctx);
  node.outputs.forEach((o, k) => {
    const ts = outs[k];
    if (o && ts) graph.valueInfo.set(o, { name: o, dtype: ts.dtype, shape: ts.shape });
  });
}

/** Runs shape inference over a whole (topologically sorted) graph; throws at the first op graft does not know. */
export function inferShapes(graph: Graph, opset: number): void {
  const e = new Emitter(graph, opset);
  for (const n of graph.nodes) inferNode(graph, n, e);
}

/** Drops stale inferred types and infers again (after surgery that changed shapes upstream). */
export function reinferShapes(graph: Graph, opset: number): void {
  const produced = new Set(graph.nodes.flatMap((n) => n.outputs));
  for (const k of [...graph.valueInfo.keys()]) if (produced.has(k)) graph.valueInfo.delete(k);
  inferShapes(graph, opset);
}
