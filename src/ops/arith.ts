/** Broadcasting arithmetic: Add, Sub, Mul, Div, Neg, Sum, Pow, Sqrt, Exp, Log, Abs, Reciprocal, and comparisons. */

import type { Node, ValueInfo } from '../ir/graph.js';
import { OpFamily, type TypeShape } from '../ir/op-registry.js';
import { broadcastAll, sameAsInput } from '../ir/shape-utils.js';

/** The arith ops, installed into the op table by registerStandardOps() (src/ops/index.ts). */
export const arithOps = new OpFamily('arith');
const defineOp = arithOps.define;

function broadcastInfer(n: Node, ins: (ValueInfo | undefined)[]): TypeShape[] {
  return [{ dtype: ins[0]?.dtype ?? ins[1]?.dtype ?? 'float32', shape: broadcastAll(ins, `node "${n.name}" (${n.op})`) }];
}
function boolInfer(n: Node, ins: (ValueInfo | undefined)[]): TypeShape[] {
  return [{ dtype: 'bool', shape: broadcastAll(ins, `node "${n.name}" (${n.op})`) }];
}

defineOp('Add', {
  infer: broadcastInfer,
  grad: (e, n, [dy], needs) => [needs[0] ? e.sumToShape(dy!, n.inputs[0]!, n) : null, needs[1] ? e.sumToShape(dy!, n.inputs[1]!, n) : null],
});

defineOp('Sub', {
  infer: broadcastInfer,
  grad: (e, n, [dy], needs) => [needs[0] ? e.sumToShape(dy!, n.inputs[0]!, n) : null, needs[1] ? e.sumToShape(e.neg(dy!), n.inputs[1]!, n) : null],
});

defineOp('Mul', {
  infer: broadcastInfer,
  grad: (e, n, [dy], needs) => {
    const [a, b] = n.inputs as [string, string];
    return [needs[0] ? e.sumToShape(e.mul(dy!, b), a, n) : null, needs[1] ? e.sumToShape(e.mul(dy!, a), b, n) : null];
  },
});

defineOp('Div', {
  infer: broadcastInfer,
  grad: (e, n, [dy], needs) => {
    const [a, b] = n.inputs as [string, string];
    const y = n.outputs[0]!;
    // d(a/b)/da = 1/b ; d(a/b)/db = -a/b² = -y/b
    return [needs[0] ? e.sumToShape(e.div(dy!, b), a, n) : null, needs[1] ? e.sumToShape(e.neg(e.div(e.mul(dy!, y), b)), b, n) : null];
  },
});

defineOp('Neg', { infer: sameAsInput(), grad: (e, _n, [dy]) => [e.neg(dy!)] });

defineOp('Sum', {
  infer: broadcastInfer,
  grad: (e, n, [dy], needs) => n.inputs.map((x, i) => (needs[i] ? e.sumToShape(dy!, x, n) : null)),
});

defineOp('Sqrt', {
  infer: sameAsInput(),
  // d sqrt(x) = 1 / (2 sqrt(x))
  grad: (e, n, [dy]) => [e.div(dy!, e.mul(n.outputs[0]!, e.scalar(2)))],
});

defineOp('Exp', { infer: sameAsInput(), grad: (e, n, [dy]) => [e.mul(dy!, n.outputs[0]!)] });

defineOp('Log', { infer: sameAsInput(), grad: (e, n, [dy]) => [e.div(dy!, n.inputs[0]!)] });

defineOp('Abs', { infer: sameAsInput(), grad: (e, n, [dy]) => [e.mul(dy!, e.op('Sign', [n.inputs[0]!]))] });

defineOp('Reciprocal', {
  infer: sameAsInput(),
  // d(1/x) = -1/x² = -y²
  grad: (e, n, [dy]) => [e.neg(e.mul(dy!, e.mul(n.outputs[0]!, n.outputs[0]!)))],
});

defineOp('Pow', {
  infer: (n, ins) => [{ dtype: ins[0]?.dtype ?? 'float32', shape: broadcastAll(ins, `node "${n.name}" (Pow)`) }],
  grad: (e, n, [dy], needs) => {
    const [a, b] = n.inputs as [string, string];
    const out: (string | null)[] = [null, null];
    // d a^b / da = b a^(b-1) ; d a^b / db = a^b ln a
    if (needs[0]) out[0] = e.sumToShape(e.mul(dy!, e.mul(b, e.op('Pow', [a, e.sub(b, e.scalar(1))]))), a, n);
    if (needs[1]) out[1] = e.sumToShape(e.mul(dy!, e.mul(n.outputs[0]!, e.op('Log', [a]))), b, n);
    return out;
  },
});

for (const op of ['Sign', 'Floor', 'Ceil', 'Round']) defineOp(op, { infer: sameAsInput() });
// elementwise functions graft can run and infer through (e.g. in a frozen backbone) but has no gradient rule for
for (const op of ['Sin', 'Cos', 'Tan', 'Asin', 'Acos', 'Atan', 'Sinh', 'Cosh', 'Asinh', 'Acosh', 'Atanh']) defineOp(op, { infer: sameAsInput() });
for (const op of ['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'And', 'Or', 'Xor']) defineOp(op, { infer: boolInfer });
defineOp('Not', { infer: (_n, ins) => [{ dtype: 'bool', shape: ins[0]?.shape }] });

defineOp('Where', {
  infer: (n, ins) => [{ dtype: ins[1]?.dtype ?? 'float32', shape: broadcastAll(ins, `node "${n.name}" (Where)`) }],
  grad: (e, n, [dy], needs) => {
    const [c, a, b] = n.inputs as [string, string, string];
    const zero = e.scalar(0);
    return [null, needs[1] ? e.sumToShape(e.op('Where', [c, dy!, zero]), a, n) : null, needs[2] ? e.sumToShape(e.op('Where', [c, zero, dy!]), b, n) : null];
  },
});

function minMaxGrad(e: import('../ir/emit.js').Emitter, n: Node, dy: string, needs: boolean[]): (string | null)[] {
  // Gradient goes to the input equal to the output (ties share it equally would be exact; we pick each equal input).
  const y = n.outputs[0]!;
  return n.inputs.map((x, i) => (needs[i] ? e.sumToShape(e.mul(dy, e.op('Cast', [e.op('Equal', [x, y])], { to: 1 })), x, n) : null));
}
defineOp('Max', { infer: broadcastInfer, grad: (e, n, [dy], needs) => minMaxGrad(e, n, dy!, needs) });
defineOp('Min', { infer: broadcastInfer, grad: (e, n, [dy], needs) => minMaxGrad(e, n, dy!, needs) });
