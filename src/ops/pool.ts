/**
 * MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool (1-D, 2-D, 3-D): shape inference and gradients in standard ops.
 *
 *  - MaxPool: the gradient goes to the one argmax of each window (as in PyTorch), via the Indices output of a MaxPool.
 *    Non-overlapping windows (stride ≥ window, the common 2×2/2) route dY with MaxUnpool: measured on the SmallCNN step
 *    it is ~3× cheaper than comparing x with the upsampled max. Overlapping windows use ScatterElements into zeros
 *    with reduction='add' (opset ≥ 16); on opsets 13–15 the output positions are split into phases whose windows do
 *    not overlap, scattered separately and summed.
 *  - AveragePool: dY divided by each window's count (count_include_pad either way, ceil_mode, computed on the host),
 *    spread back with a ConvTranspose of a ones kernel, or with Expand when windows tile the input exactly.
 *  - GlobalAveragePool: dY / (H·W) expanded; GlobalMaxPool: like a MaxPool whose window is the whole image.
 */

import { type Emitter, inferNode } from '../ir/emit.js';
import { attrInt, attrInts, type Dim, type Node, type ValueInfo } from '../ir/graph.js';
import { OpFamily, type TypeShape } from '../ir/op-registry.js';
import { scalarsOfRank } from '../ir/scalars.js';
import { desc, requireShape, staticDims } from '../ir/shape-utils.js';
import { Tensor } from '../tensor.js';
import { annotate, windowAxis } from './conv.js';

/** The pool ops, installed into the op table by registerStandardOps() (src/ops/index.ts). */
export const poolOps = new OpFamily('pool');
const defineOp = poolOps.define;

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);
const prod = (xs: number[]) => xs.reduce((a, b) => a * b, 1);

function kernelShape(n: Node): number[] {
  const k = attrInts(n, 'kernel_shape', []);
  if (!k.length) throw new Error(`${desc(n)}: the kernel_shape attribute is missing; ONNX requires it for ${n.op}. Re-export the model.`);
  return k;
}

function inferPool(n: Node, ins: (ValueInfo | undefined)[]): TypeShape[] {
  const dtype = ins[0]?.dtype ?? 'float32';
  const x = ins[0]?.shape;
  if (!x) return [{ dtype }, { dtype: 'int64' }];
  const k = kernelShape(n);
  const rank = x.length - 2;
  if (k.length !== rank)
    throw new Error(`${desc(n)}: kernel_shape [${k}] has ${k.length} axes but the input [${x}] has ${rank} spatial axes. Fix the attribute or the input rank.`);
  const ceil = attrInt(n, 'ceil_mode', 0) === 1;
  const shape: Dim[] = [x[0] ?? null, x[1] ?? null, ...x.slice(2).map((L, i) => windowAxis(n, i, rank, L, k[i]!, ceil).out)];
  return [
    { dtype, shape },
    { dtype: 'int64', shape },
  ];
}

/** Static geometry of a pooling node (spatial sizes, kernel, strides, dilations, resolved pads, output sizes). */
interface PoolPlan {
  rank: number;
  xShape: Dim[];
  L: number[];
  k: number[];
  s: number[];
  d: number[];
  pb: number[];
  pe: number[];
  Lo: number[];
}

function poolPlan(e: Emitter, n: Node): PoolPlan {
  const x = n.inputs[0]!;
  const xShape = requireShape(e.info(x), n, `input "${x}"`);
  const rank = xShape.length - 2;
  const L = staticDims(xShape, n, `input "${x}"`, range(2, rank + 2));
  const k = kernelShape(n);
  const axes = L.map((l, i) => windowAxis(n, i, rank, l, k[i]!, attrInt(n, 'ceil_mode', 0) === 1));
  const s = L.map((_, i) => attrInts(n, 'strides', [])[i] ?? 1);
  const d = L.map((_, i) => attrInts(n, 'dilations', [])[i] ?? 1);
  return { rank, xShape, L, k, s, d, pb: axes.map((a) => a.pb), pe: axes.map((a) => a.pe), Lo: axes.map((a) => a.out as number) };
}

/** Zeros shaped like `x`, flattened to 1-D. */
function flatZeros(e: Emitter, x: string, total: Dim): string {
  const z = e.op('Reshape', [annotate(e, e.op('ConstantOfShape', [e.op('Shape', [x])]), e.shape(x)!), e.ints([-1])]);
  return annotate(e, z, [total]);
}

/**
 * Sends each window's gradient to its argmax: `idx` holds flat positions in `x` (MaxPool Indices, storage_order 0).
 * `overlap` says whether two windows can share an input pixel; `phases[i]` = ⌈window span / stride⌉ is the period along
 * axis i after which windows stop overlapping (used by the opset < 16 split).
 */
function scatterToArgmax(e: Emitter, n: Node, x: string, dy: string, idx: string, overlap: boolean, phases: number[]): string {
  const xShape = e.shape(x)!;
  const total = xShape.every((v) => typeof v === 'number') ? prod(xShape as number[]) : null;
  const flat = (v: string) => e.op('Reshape', [v, e.ints([-1])]);
  const scatter = (i: string, u: string, attrs: Record<string, string | number>) =>
    annotate(e, e.op('ScatterElements', [flatZeros(e, x, total), flat(i), flat(u)], { axis: 0, ...attrs }), [total]);
  let out: string;
  if (!overlap) out = scatter(idx, dy, {});
  else if (e.opset >= 16) out = scatter(idx, dy, { reduction: 'add' });
  else {
    // Output positions p ≡ phase (mod m) per axis have disjoint windows: scatter each phase without reduction, then sum.
    const rank = phases.length;
    const terms: string[] = [];
    const count = prod(phases);
    const dyShape = e.shape(dy)!;
    const ends = staticDims(dyShape, n, 'the output gradient', range(2, rank + 2));
    for (let c = 0; c < count; c++) {
      const start = phases.map((_, i) => Math.floor(c / prod(phases.slice(i + 1))) % phases[i]!);
      if (start.some((v, i) => v >= ends[i]!)) continue;
      const args = [e.ints(start), e.ints(ends), e.ints(range(2, rank + 2)), e.ints(phases)];
      terms.push(scatter(e.op('Slice', [idx, ...args]), e.op('Slice', [dy, ...args]), {}));
    }
    out = annotate(e, e.sum(terms), [total]);
  }
  return annotate(e, e.reshapeLike(out, x), xShape);
}

/** MaxUnpool: scatters X to the flat positions I in zeros of `output_shape` (no gradient: graft emits it only in backward graphs). */
defineOp('MaxUnpool', {
  infer: (_n, ins) => [{ dtype: ins[0]?.dtype ?? 'float32' }],
});

/**
 * Non-overlapping windows (stride ≥ window span): MaxUnpool writes each window's gradient to its first argmax — one
 * pass over dY plus the zero fill, far cheaper than comparing every input with its window's max.
 */
function unpoolMaxPoolGrad(e: Emitter, n: Node, p: PoolPlan, dy: string, idx: string): string {
  const x = n.inputs[0]!;
  const attrs = { kernel_shape: p.k, strides: p.s, pads: [...p.pb, ...p.pe] };
  const out = e.op('MaxUnpool', [dy, idx, e.op('Shape', [x])], attrs, 'dmaxpool');
  return annotate(e, out, p.xShape);
}

defineOp('MaxPool', {
  infer: inferPool,
  nonDifferentiableOutputs: [1],
  grad: (e, n, [dy], needs) => {
    if (!needs[0] || !dy) return [null];
    const p = poolPlan(e, n);
    const span = p.k.map((k, i) => p.d[i]! * (k - 1) + 1);
    const phases = span.map((v, i) => Math.ceil(v / p.s[i]!));
    const overlap = phases.some((m) => m > 1);
    const dilated = p.d.some((v) => v !== 1);
    const x = n.inputs[0]!;
    let idx = n.outputs[1];
    if (!idx && attrInt(n, 'storage_order', 0) === 0) {
      // The forward MaxPool emits its argmax too: onnxruntime's Indices kernel computes Y anyway, so this drops a second
      // pass over x (the plain MaxPool and its NCHWc reorders, ~2 ms of a 70 ms SmallCNN step).
      idx = e.graph.fresh(`${n.name}/argmax`);
      n.outputs[1] = idx;
      inferNode(e.graph, n, e);
    } else if (!idx || attrInt(n, 'storage_order', 0) !== 0) {
      const { storage_order: _, ...attrs } = n.attrs;
      idx = e.opN('MaxPool', [x], attrs, 2, 'argmax')[1]!;
    }
    if (!overlap && !dilated) return [unpoolMaxPoolGrad(e, n, p, dy, idx)];
    return [scatterToArgmax(e, n, x, dy, idx, overlap, phases)];
  },
});

/** Number of window taps that count for output position `o` along one axis. */
function tapCount(p: PoolPlan, i: number, o: number, includePad: boolean): number {
  const [lo, hi] = includePad ? [-p.pb[i]!, p.L[i]! + p.pe[i]!] : [0, p.L[i]!];
  let c = 0;
  for (let t = 0; t < p.k[i]!; t++) {
    const pos = o * p.s[i]! - p.pb[i]! + t * p.d[i]!;
    if (pos >= lo && pos < hi) c++;
  }
  return c;
}

/** 1 / window count for every output position, as a constant broadcasting over [N, C] (one value when uniform). */
function inverseCounts(e: Emitter, p: PoolPlan, includePad: boolean): string {
  const per = p.Lo.map((lo, i) => Array.from({ length: lo }, (_, o) => tapCount(p, i, o, includePad)));
  const t = Tensor.f32(p.Lo);
  const data = t.data as Float32Array;
  for (let j = 0; j < data.length; j++) {
    let c = 1;
    let rest = j;
    for (let i = p.rank - 1; i >= 0; i--) {
      c *= per[i]![rest % p.Lo[i]!]!;
      rest = Math.floor(rest / p.Lo[i]!);
    }
    data[j] = 1 / c;
  }
  // uniform: one value, shaped [1, …, 1] to dy's rank (a global 7×7 pool's dy is [N, C, 1, 1], where onnxruntime's
  // broadcast of a rank-0 scalar is slow; src/ir/scalars.ts)
  return data.every((v) => v === data[0]) ? scalarsOfRank(e).constant(data[0]!, p.rank + 2) : e.constTensor(t, 'inv_count');
}

/** Spreads each output position's gradient uniformly over its window (the adjoint of a sum pool). */
function spreadOverWindows(e: Emitter, x: string, g: string, p: PoolPlan): string {
  const tiles = p.k.every((k, i) => k === p.s[i] && p.d[i] === 1 && p.pb[i] === 0 && p.Lo[i]! * k === p.L[i]);
  if (tiles) {
    // Windows tile the input: repeat each value k times per axis with Expand over interleaved unit axes.
    const g6 = e.op('Reshape', [g, e.ints([0, 0, ...p.Lo.flatMap((l) => [l, 1])])]);
    const big = e.op('Expand', [g6, e.ints([1, 1, ...p.k.flatMap((k) => [1, k])])]);
    return annotate(e, e.reshapeLike(big, x), p.xShape);
  }
  const pe: number[] = [];
  const op: number[] = [];
  for (let i = 0; i < p.rank; i++) {
    const base = p.s[i]! * (p.Lo[i]! - 1) + p.d[i]! * (p.k[i]! - 1) + 1 - p.pb[i]! - p.L[i]!;
    pe.push(Math.max(0, base));
    op.push(Math.max(0, -base));
  }
  const attrs = { kernel_shape: p.k, strides: p.s, dilations: p.d, pads: [...p.pb, ...pe], ...(op.some((v) => v) ? { output_padding: op } : {}) };
  const one = e.constTensor(Tensor.f32([1, 1, ...p.k], Array(prod(p.k)).fill(1)), 'ones_kernel');
  const spread = e.op('ConvTranspose', [e.op('Reshape', [g, e.ints([-1, 1, ...p.Lo])]), one], attrs);
  return annotate(e, e.reshapeLike(spread, x), p.xShape);
}

defineOp('AveragePool', {
  infer: (n, ins) => [inferPool(n, ins)[0]!],
  grad: (e, n, [dy], needs) => {
    if (!needs[0]) return [null];
    const p = poolPlan(e, n);
    const g = e.mul(dy!, inverseCounts(e, p, attrInt(n, 'count_include_pad', 0) === 1));
    return [spreadOverWindows(e, n.inputs[0]!, g, p)];
  },
});

function inferGlobal(_n: Node, ins: (ValueInfo | undefined)[]): TypeShape[] {
  const x = ins[0]?.shape;
  return [{ dtype: ins[0]?.dtype ?? 'float32', shape: x ? [x[0] ?? null, x[1] ?? null, ...x.slice(2).map(() => 1)] : undefined }];
}

/** Spatial sizes of a global pool's input (static, or an error naming the node). */
function globalSpatial(e: Emitter, n: Node): number[] {
  const x = n.inputs[0]!;
  const s = requireShape(e.info(x), n, `input "${x}"`);
  return staticDims(s, n, `input "${x}"`, range(2, s.length));
}

defineOp('GlobalAveragePool', {
  infer: inferGlobal,
  grad: (e, n, [dy], needs) => {
    if (!needs[0]) return [null];
    const x = n.inputs[0]!;
    // dy is [N, C, 1, …]: the 1/count shaped alike (onnxruntime's slow broadcast of a rank-0 scalar otherwise; src/ir/scalars.ts)
    const g = e.mul(dy!, scalarsOfRank(e).constant(1 / prod(globalSpatial(e, n)), e.rank(x)!));
    return [annotate(e, e.op('Expand', [g, e.op('Shape', [x])]), e.shape(x)!)];
  },
});

defineOp('GlobalMaxPool', {
  infer: inferGlobal,
  grad: (e, n, [dy], needs) => {
    if (!needs[0]) return [null];
    const x = n.inputs[0]!;
    const idx = e.opN('MaxPool', [x], { kernel_shape: globalSpatial(e, n) }, 2, 'argmax')[1]!;
    return [scatterToArgmax(e, n, x, dy!, idx, false, [])];
  },
});
