/** ReduceSum, ReduceMean, ReduceMax (axes as attribute before opset 13/18, as input after). */

import type { Emitter } from '../ir/emit.js';
import { attrInt, attrInts, type Dim, type Node, type ValueInfo } from '../ir/graph.js';
import { type InferContext, type OpDef, OpFamily } from '../ir/op-registry.js';
import { normAxis } from '../ir/shape-utils.js';

/** The reduce ops, installed into the op table by registerStandardOps() (src/ops/index.ts). */
export const reduceOps = new OpFamily('reduce');
const defineOp = reduceOps.define;

/** The normalized reduction axes of a Reduce* node (all axes when none are given). */
export function reduceAxes(n: Node, rank: number, ctx: InferContext): number[] {
  let axes: number[] | undefined;
  if (n.inputs[1]) {
    const t = ctx.constant(n.inputs[1]);
    if (!t) throw new Error(`node "${n.name}" (${n.op}): axes must be a constant for graft to infer shapes and gradients.`);
    axes = t.toNumbers();
  } else if (n.attrs.axes !== undefined) axes = attrInts(n, 'axes', []);
  if (!axes || axes.length === 0) {
    if (attrInt(n, 'noop_with_empty_axes', 0)) return [];
    return [...Array(rank).keys()];
  }
  return axes.map((a) => normAxis(a, rank)).sort((a, b) => a - b);
}

function inferReduce(n: Node, ins: (ValueInfo | undefined)[], ctx: InferContext) {
  const s = ins[0]?.shape;
  if (!s) return [{ dtype: ins[0]?.dtype ?? 'float32' }];
  const axes = new Set(reduceAxes(n, s.length, ctx));
  const keep = attrInt(n, 'keepdims', 1);
  const out: Dim[] = [];
  s.forEach((d, i) => {
    if (!axes.has(i)) out.push(d);
    else if (keep) out.push(1);
  });
  return [{ dtype: ins[0]!.dtype, shape: out }];
}

/** dy broadcast back over the reduced axes to the input's shape. */
function expandBack(e: Emitter, n: Node, dy: string): { g: string; axes: number[] } {
  const x = n.inputs[0]!;
  const rank = e.rank(x);
  if (rank === undefined) throw new Error(`node "${n.name}" (${n.op}): input rank unknown; cannot build its gradient.`);
  const axes = reduceAxes(n, rank, e);
  let g = dy;
  if (!attrInt(n, 'keepdims', 1) && axes.length) g = e.unsqueeze(g, axes);
  return { g: e.op('Expand', [g, e.op('Shape', [x])]), axes };
}

const sumDef: OpDef = {
  infer: inferReduce,
  grad: (e, n, [dy], needs) => [needs[0] ? expandBack(e, n, dy!).g : null, null],
};
defineOp('ReduceSum', sumDef);

/** ReduceSumSquare: Σx² in one pass; d/dx = 2·x·dy broadcast back. */
defineOp('ReduceSumSquare', {
  infer: inferReduce,
  grad: (e, n, [dy], needs) => [needs[0] ? e.mul(e.mul(expandBack(e, n, dy!).g, n.inputs[0]!), e.scalar(2)) : null, null],
});

defineOp('ReduceMean', {
  infer: inferReduce,
  grad: (e, n, [dy], needs) => {
    if (!needs[0]) return [null, null];
    const { g, axes } = expandBack(e, n, dy!);
    const s = e.shape(n.inputs[0]!)!;
    const dims = axes.map((a) => s[a]);
    let count: string;
    if (dims.every((d) => typeof d === 'number')) count = e.scalar((dims as number[]).reduce((a, b) => a * b, 1));
    else count = e.div(e.op('Cast', [e.op('Size', [n.inputs[0]!])], { to: 1 }), e.op('Cast', [e.op('Size', [n.outputs[0]!])], { to: 1 }));
    return [e.div(g, count), null];
  },
});

defineOp('ReduceMax', {
  infer: inferReduce,
  grad: (e, n, [dy], needs) => {
    if (!needs[0]) return [null, null];
    const x = n.inputs[0]!;
    const { g, axes } = expandBack(e, n, dy!);
    let y = n.outputs[0]!;
    if (!attrInt(n, 'keepdims', 1) && axes.length) y = e.unsqueeze(y, axes);
    const mask = e.op('Cast', [e.op('Equal', [x, y])], { to: 1 });
    return [e.mul(g, mask), null];
  },
});

defineOp('Size', { infer: () => [{ dtype: 'int64', shape: [] }] });
defineOp('Expand', {
  infer: (n, ins, ctx) => {
    const target = ctx.shapeValue(n.inputs[1]!);
    const s = ins[0]?.shape;
    if (!target || !s) return [{ dtype: ins[0]?.dtype ?? 'float32', shape: undefined }];
    const r = Math.max(target.length, s.length);
    const out: Dim[] = [];
    for (let i = 0; i < r; i++) {
      const a = s[s.length - r + i] ?? 1;
      const b = target[target.length - r + i] ?? 1;
      out.push(a === 1 ? b : b === 1 ? a : typeof b === 'number' ? b : a);
    }
    return [{ dtype: ins[0]!.dtype, shape: out }];
  },
  grad: (e, n, [dy], needs) => [needs[0] ? e.sumToShape(dy!, n.inputs[0]!, n) : null, null],
});
