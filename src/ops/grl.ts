/**
 * Gradient-control ops (domain "graft") used by domain adaptation:
 *
 * - `GradReverse(x, lambda)`: the gradient reversal layer of DANN (Ganin & Lempitsky, 2015). Forward is
 *   the identity; backward multiplies the incoming gradient by −λ. λ is a float32 scalar *input* (not an
 *   attribute), so a host-side schedule can change it every step without rebuilding the graph. λ itself
 *   receives no gradient.
 * - `StopGradient(x)`: identity forward, no gradient (PyTorch's `.detach()`); its output is not
 *   differentiable, so the autodiff driver never walks through it.
 *
 * Both exist only while graft differentiates: lowerGraftOps (src/ir/op-registry.ts) turns them into
 * `Identity` before a model is serialized, through the `lower` of their op definitions.
 */
import { type Emitter, inferNode } from '../ir/emit.js';
import type { Node } from '../ir/graph.js';
import { GRAFT_DOMAIN, OpFamily } from '../ir/op-registry.js';
import { desc, sameAsInput } from '../ir/shape-utils.js';

/** The grl ops, installed into the op table by registerStandardOps() (src/ops/index.ts). */
export const grlOps = new OpFamily('grl');
const defineOp = grlOps.define;

defineOp('GradReverse', {
  infer: sameAsInput(),
  grad: (e, n, [dy], needs) => {
    const lambda = n.inputs[1];
    if (!lambda) throw new Error(`${desc(n)}: GradReverse needs a second input λ (a float32 scalar). Build it with gradReverse(e, x, lambda).`);
    return [needs[0] ? e.mul(dy!, e.neg(lambda)) : null, null];
  },
  lower: lowerToIdentity,
});

defineOp('StopGradient', {
  infer: sameAsInput(),
  nonDifferentiableOutputs: [0],
  lower: lowerToIdentity,
});

function emitGraft(e: Emitter, op: string, inputs: string[]): string {
  const out = e.graph.fresh(`${e.prefix}${op}`);
  const node = e.graph.addNode(op, inputs, [out], {}, e.graph.fresh(`${e.prefix}${op}_node`));
  node.domain = GRAFT_DOMAIN;
  inferNode(e.graph, node, e);
  return out;
}

/**
 * Emits a gradient reversal layer on `x`: the output equals `x`, its gradient is −λ·dy.
 * @param lambda name of a float32 scalar value (typically a graph input fed each step).
 */
export function gradReverse(e: Emitter, x: string, lambda: string): string {
  const info = e.info(lambda);
  if (info && (info.dtype !== 'float32' || (info.shape && info.shape.length !== 0)))
    throw new Error(
      `gradReverse: λ "${lambda}" must be a float32 scalar, got ${info.dtype} of shape [${info.shape ?? '?'}]. Declare it as a float32 input of shape [].`,
    );
  return emitGraft(e, 'GradReverse', [x, lambda]);
}

/** Emits `x` with its gradient cut (PyTorch's `x.detach()`). */
export function stopGradient(e: Emitter, x: string): string {
  return emitGraft(e, 'StopGradient', [x]);
}

/** Both are the identity once nothing is differentiated any more. */
function lowerToIdentity(e: Emitter, n: Node): void {
  e.graph.addNode('Identity', [n.inputs[0]!], [n.outputs[0]!], {}, e.graph.fresh(`${n.name}/Identity`));
}
