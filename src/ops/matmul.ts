/** Gemm and MatMul, with gradients as Gemm/MatMul using transpose flags instead of explicit Transpose where possible. */

import { attrFloat, attrInt, type Dim } from '../ir/graph.js';
import { OpFamily } from '../ir/op-registry.js';
import { broadcastShapes, desc } from '../ir/shape-utils.js';

/** The matmul ops, installed into the op table by registerStandardOps() (src/ops/index.ts). */
export const matmulOps = new OpFamily('matmul');
const defineOp = matmulOps.define;

defineOp('Gemm', {
  infer: (n, ins) => {
    const a = ins[0]?.shape;
    const b = ins[1]?.shape;
    const ta = attrInt(n, 'transA', 0);
    const tb = attrInt(n, 'transB', 0);
    const m = a ? a[ta ? 1 : 0] : null;
    const k1 = a ? a[ta ? 0 : 1] : null;
    const k2 = b ? b[tb ? 1 : 0] : null;
    const nn = b ? b[tb ? 0 : 1] : null;
    if (typeof k1 === 'number' && typeof k2 === 'number' && k1 !== k2)
      throw new Error(`${desc(n)}: inner dimensions differ (${k1} vs ${k2}); the layer expects ${k2} input features but gets ${k1}.`);
    return [{ dtype: ins[0]?.dtype ?? 'float32', shape: [m ?? null, nn ?? null] }];
  },
  grad: (e, n, [dy], needs) => {
    const [a, b, c] = n.inputs as [string, string, string | undefined];
    const alpha = attrFloat(n, 'alpha', 1);
    const beta = attrFloat(n, 'beta', 1);
    const ta = attrInt(n, 'transA', 0);
    const tb = attrInt(n, 'transB', 0);
    const g = (x: string, y: string, transA: number, transB: number) => e.op('Gemm', [x, y], { alpha, transA, transB });
    let da: string | null = null;
    let db: string | null = null;
    if (needs[0]) da = !ta ? g(dy!, b, 0, tb ? 0 : 1) : tb ? g(b, dy!, 1, 1) : g(b, dy!, 0, 1);
    if (needs[1]) db = !tb ? (ta ? g(a, dy!, 0, 0) : g(a, dy!, 1, 0)) : ta ? g(dy!, a, 1, 1) : g(dy!, a, 1, 0);
    let dc: string | null = null;
    if (c && needs[2]) {
      dc = e.sumToShape(dy!, c, n);
      if (beta !== 1) dc = e.mul(dc, e.scalar(beta));
    }
    return [da, db, dc];
  },
});

function matmulShape(a: Dim[], b: Dim[], where: string): Dim[] {
  if (a.length < 2 || b.length < 2) {
    const aa = a.length === 1 ? [1, a[0]!] : a;
    const bb = b.length === 1 ? [b[0]!, 1] : b;
    const full = matmulShape(aa, bb, where);
    if (a.length === 1) full.splice(full.length - 2, 1);
    if (b.length === 1) full.splice(full.length - 1, 1);
    return full;
  }
  const batch = broadcastShapes(a.slice(0, -2), b.slice(0, -2), where);
  return [...batch, a[a.length - 2]!, b[b.length - 1]!];
}

defineOp('MatMul', {
  infer: (n, ins) => {
    const a = ins[0]?.shape;
    const b = ins[1]?.shape;
    return [{ dtype: ins[0]?.dtype ?? 'float32', shape: a && b ? matmulShape(a, b, desc(n)) : undefined }];
  },
  grad: (e, n, [dy], needs) => {
    const [a, b] = n.inputs as [string, string];
    const ra = e.rank(a);
    const rb = e.rank(b);
    if (ra === undefined || rb === undefined || ra < 2 || rb < 2)
      throw new Error(`${desc(n)}: MatMul gradients need inputs of known rank ≥ 2 (got ${ra} and ${rb}). Reshape 1-D operands to 2-D.`);
    if (ra === 2 && rb === 2) {
      return [needs[0] ? e.op('Gemm', [dy!, b], { transB: 1 }) : null, needs[1] ? e.op('Gemm', [a, dy!], { transA: 1 }) : null];
    }
    const tr = (x: string, r: number) => e.transpose(x, [...Array(r - 2).keys(), r - 1, r - 2]);
    return [needs[0] ? e.sumToShape(e.op('MatMul', [dy!, tr(b, rb)]), a, n) : null, needs[1] ? e.sumToShape(e.op('MatMul', [tr(a, ra), dy!]), b, n) : null];
  },
});
