/**
 * Reverse-mode autodiff over the IR. Walks only the nodes that lie both downstream of a
 * trainable value and upstream of the loss, so nothing frozen is differentiated.
 * Each op's rule lives beside the op in src/ops/<family>.ts.
 */
import { Emitter } from '../ir/emit.js';
import type { Graph, Node } from '../ir/graph.js';
import { opDef, requireOpDef } from '../ir/op-registry.js';
import { registerStandardOps } from '../ops/index.js';

export interface BackwardResult {
  /** Gradient value name for each requested value (absent if the loss does not depend on it). */
  grads: Map<string, string>;
  /** Number of forward nodes that were differentiated. */
  differentiated: number;
  /** The gradient of any value on the differentiated path (for rewrites that gate on it, e.g. step/recompute.ts). */
  gradOf(value: string): string | undefined;
}

/**
 * Appends the gradient of scalar `loss` with respect to each of `wrt` to `graph` (in place).
 * @param seed optional name of the incoming gradient for `loss` (defaults to 1.0).
 * @throws when an op on the path has no gradient rule (naming the node and op).
 */
export function backward(graph: Graph, opset: number, loss: string, wrt: string[], seed?: string): BackwardResult {
  registerStandardOps();
  const e = new Emitter(graph, opset, 'grad/');
  const fwd = [...graph.nodes];

  // 1. values that depend on a trainable value (forward closure)
  const live = new Set(wrt);
  for (const n of fwd) {
    if (n.inputs.some((i) => live.has(i))) {
      const def = opDef(n.op);
      const nd = new Set(def?.nonDifferentiableOutputs ?? []);
      n.outputs.forEach((o, k) => {
        const dt = graph.info(o)?.dtype ?? 'float32';
        if (o && !nd.has(k) && dt.startsWith('float')) live.add(o);
      });
    }
  }
  if (!live.has(loss)) return { grads: new Map(), differentiated: 0, gradOf: () => undefined };

  // 2. nodes on a path from a trainable value to the loss
  const needed = new Set<string>([loss]);
  const onPath: Node[] = [];
  for (let i = fwd.length - 1; i >= 0; i--) {
    const n = fwd[i]!;
    if (!n.outputs.some((o) => needed.has(o))) continue;
    if (!n.inputs.some((x) => live.has(x))) continue;
    onPath.push(n);
    for (const x of n.inputs) if (live.has(x)) needed.add(x);
  }

  // 3. reverse walk, accumulating contributions
  const contrib = new Map<string, string[]>();
  const push = (name: string, g: string) => {
    const list = contrib.get(name);
    if (list) list.push(g);
    else contrib.set(name, [g]);
  };
  const total = (name: string): string | null => {
    const list = contrib.get(name);
    if (!list || list.length === 0) return null;
    if (list.length > 1) contrib.set(name, [e.sum(list)]);
    return contrib.get(name)![0]!;
  };
  push(loss, seed ?? e.op('Expand', [e.scalar(1), e.op('Shape', [loss])], {}, 'dloss'));

  for (const n of onPath) {
    const dys = n.outputs.map((o) => (o ? total(o) : null));
    if (dys.every((d) => d === null)) continue;
    const def = requireOpDef(n);
    if (!def.grad)
      throw new Error(
        `No gradient rule for op ${n.op} (node "${n.name}") inside the trainable part of the graph. ` +
          `Freeze the layers up to and including this node (train only what comes after it), or file an issue asking for a ${n.op} rule.`,
      );
    const needs = n.inputs.map((x) => !!x && live.has(x) && needed.has(x));
    const dxs = def.grad(e, n, dys, needs);
    n.inputs.forEach((x, i) => {
      const g = dxs[i];
      if (g && needs[i]) push(x, g);
    });
  }

  const grads = new Map<string, string>();
  for (const w of wrt) {
    const g = total(w);
    if (g) grads.set(w, g);
  }
  return { grads, differentiated: onPath.length, gradOf: (v) => (contrib.get(v)?.length === 1 ? contrib.get(v)![0] : undefined) };
}
