/** Softmax and LogSoftmax (opset ≥ 13 semantics: one axis, default -1). */

import type { Emitter } from '../ir/emit.js';
import type { Node } from '../ir/graph.js';
import { attrInt } from '../ir/graph.js';
import { OpFamily } from '../ir/op-registry.js';
import { normAxis, sameAsInput } from '../ir/shape-utils.js';

/** The softmax ops, installed into the op table by registerStandardOps() (src/ops/index.ts). */
export const softmaxOps = new OpFamily('softmax');
const defineOp = softmaxOps.define;

function axisOf(e: Emitter, n: Node): number {
  return normAxis(attrInt(n, 'axis', -1), e.rank(n.inputs[0]!) ?? 2);
}

defineOp('Softmax', {
  infer: sameAsInput(),
  // dx = y * (dy - sum(dy * y, axis))
  grad: (e, n, [dy]) => {
    const y = n.outputs[0]!;
    const s = e.reduceSum(e.mul(dy!, y), [axisOf(e, n)], true);
    return [e.mul(y, e.sub(dy!, s))];
  },
});

defineOp('LogSoftmax', {
  infer: sameAsInput(),
  // dx = dy - softmax(x) * sum(dy, axis)
  grad: (e, n, [dy]) => {
    const p = e.op('Exp', [n.outputs[0]!]);
    const s = e.reduceSum(dy!, [axisOf(e, n)], true);
    return [e.sub(dy!, e.mul(p, s))];
  },
});
