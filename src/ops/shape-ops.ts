/** Shape-only ops: Reshape, Flatten, Shape, Constant, Identity, Cast, Unsqueeze, Squeeze, Transpose. */

import { attrInt, type Dim, type Node, type ValueInfo } from '../ir/graph.js';
import { OpFamily, type TypeShape } from '../ir/op-registry.js';
import { desc, normAxis, sameAsInput } from '../ir/shape-utils.js';
import { dtypeFromOnnx, dtypeToOnnx } from '../onnx/tensor-proto.js';
import { Tensor } from '../tensor.js';

/** The shape-ops ops, installed into the op table by registerStandardOps() (src/ops/index.ts). */
export const shapeOps = new OpFamily('shape-ops');
const defineOp = shapeOps.define;

defineOp('Identity', { infer: sameAsInput(), grad: (_e, _n, [dy]) => [dy] });

defineOp('Constant', {
  infer: (n) => {
    const v = n.attrs.value;
    if (v instanceof Tensor) return [{ dtype: v.dtype, shape: [...v.dims] }];
    if (typeof n.attrs.value_float === 'number') return [{ dtype: 'float32', shape: [] }];
    if (typeof n.attrs.value_int === 'number') return [{ dtype: 'int64', shape: [] }];
    if (Array.isArray(n.attrs.value_ints)) return [{ dtype: 'int64', shape: [n.attrs.value_ints.length] }];
    if (Array.isArray(n.attrs.value_floats)) return [{ dtype: 'float32', shape: [n.attrs.value_floats.length] }];
    return [{ dtype: 'float32' }];
  },
});

defineOp('Shape', {
  infer: (n, ins) => {
    const r = ins[0]?.shape?.length;
    if (r === undefined) return [{ dtype: 'int64', shape: [null] }];
    const start = normAxis(attrInt(n, 'start', 0), r);
    const end = n.attrs.end === undefined ? r : normAxis(attrInt(n, 'end', r), r);
    return [{ dtype: 'int64', shape: [Math.max(0, Math.min(r, end) - Math.max(0, start))] }];
  },
});

defineOp('Cast', {
  infer: (n, ins) => [{ dtype: dtypeFromOnnx(attrInt(n, 'to', 1), desc(n)), shape: ins[0]?.shape }],
  // The gradient is cast back to the input's float type (no gradient flows into integer inputs).
  grad: (e, n, [dy]) => {
    const src = e.info(n.inputs[0]!)?.dtype ?? 'float32';
    return [src.startsWith('float') ? e.op('Cast', [dy!], { to: dtypeToOnnx(src) }) : null];
  },
});

defineOp('Reshape', {
  infer: (n, ins, ctx) => {
    const inShape = ins[0]?.shape;
    const sv = ctx.shapeValue(n.inputs[1]!);
    if (!sv)
      return [
        { dtype: ins[0]?.dtype ?? 'float32', shape: ins[1]?.shape?.[0] && typeof ins[1].shape[0] === 'number' ? Array(ins[1].shape[0]).fill(null) : undefined },
      ];
    if (!ctx.constant(n.inputs[1]!)) return [{ dtype: ins[0]?.dtype ?? 'float32', shape: sv }];
    const t = sv as number[];
    const allowZero = attrInt(n, 'allowzero', 0);
    const out: Dim[] = t.map((d, i) => (d === 0 && !allowZero ? (inShape?.[i] ?? null) : d === -1 ? null : d));
    const minus = t.indexOf(-1);
    if (minus >= 0 && inShape && inShape.every((d) => typeof d === 'number')) {
      const total = (inShape as number[]).reduce((a, b) => a * b, 1);
      const known = out.reduce<number>((a, d, i) => (i === minus ? a : a * (d as number)), 1);
      out[minus] = total / known;
    } else if (minus >= 0 && inShape) {
      // e.g. [N, C, H, W] -> [N, -1]: the -1 is the product of the static tail when the head matches
      const head = out.slice(0, minus);
      if (minus === t.length - 1 && head.every((d, i) => d === inShape[i])) {
        const tail = inShape.slice(minus);
        if (tail.every((d) => typeof d === 'number')) out[minus] = (tail as number[]).reduce((a, b) => a * b, 1);
      }
    }
    return [{ dtype: ins[0]?.dtype ?? 'float32', shape: out }];
  },
  grad: (e, n, [dy], needs) => [needs[0] ? e.reshapeLike(dy!, n.inputs[0]!) : null, null],
});

defineOp('Flatten', {
  infer: (n, ins) => {
    const s = ins[0]?.shape;
    if (!s) return [{ dtype: ins[0]?.dtype ?? 'float32', shape: [null, null] }];
    const axis = normAxis(attrInt(n, 'axis', 1), s.length);
    const prod = (xs: Dim[]) => (xs.every((d) => typeof d === 'number') ? (xs as number[]).reduce((a, b) => a * b, 1) : xs.length === 1 ? xs[0]! : null);
    return [{ dtype: ins[0]!.dtype, shape: [prod(s.slice(0, axis)), prod(s.slice(axis))] }];
  },
  grad: (e, n, [dy]) => [e.reshapeLike(dy!, n.inputs[0]!)],
});

function axesInput(n: import('../ir/graph.js').Node, ctx: import('../ir/op-registry.js').InferContext): number[] | undefined {
  if (n.inputs[1]) return ctx.constant(n.inputs[1])?.toNumbers();
  return Array.isArray(n.attrs.axes) ? (n.attrs.axes as number[]) : undefined;
}

defineOp('Unsqueeze', {
  infer: (n, ins, ctx) => {
    const s = ins[0]?.shape;
    const axes = axesInput(n, ctx);
    if (!s || !axes) return [{ dtype: ins[0]?.dtype ?? 'float32' }];
    const r = s.length + axes.length;
    const set = new Set(axes.map((a) => normAxis(a, r)));
    const out: Dim[] = [];
    let k = 0;
    for (let i = 0; i < r; i++) out.push(set.has(i) ? 1 : s[k++]!);
    return [{ dtype: ins[0]!.dtype, shape: out }];
  },
  grad: (e, n, [dy], needs) => [needs[0] ? e.reshapeLike(dy!, n.inputs[0]!) : null, null],
});

defineOp('Squeeze', {
  infer: (n, ins, ctx) => {
    const s = ins[0]?.shape;
    if (!s) return [{ dtype: ins[0]?.dtype ?? 'float32' }];
    const axes = axesInput(n, ctx);
    if (!axes && n.inputs[1]) return [{ dtype: ins[0]!.dtype }]; // axes only known at run time
    const set = new Set(axes ? axes.map((a) => normAxis(a, s.length)) : s.flatMap((d, i) => (d === 1 ? [i] : [])));
    return [{ dtype: ins[0]!.dtype, shape: s.filter((_, i) => !set.has(i)) }];
  },
  grad: (e, n, [dy], needs) => [needs[0] ? e.reshapeLike(dy!, n.inputs[0]!) : null, null],
});

defineOp('Transpose', {
  infer: (n, ins) => {
    const s = ins[0]?.shape;
    if (!s) return [{ dtype: ins[0]?.dtype ?? 'float32' }];
    const perm = Array.isArray(n.attrs.perm) ? (n.attrs.perm as number[]) : [...s.keys()].reverse();
    return [{ dtype: ins[0]!.dtype, shape: perm.map((p) => s[p]!) }];
  },
  grad: (e, n, [dy]) => {
    const r = e.rank(n.inputs[0]!)!;
    const perm = Array.isArray(n.attrs.perm) ? (n.attrs.perm as number[]) : [...Array(r).keys()].reverse();
    const inv = new Array<number>(perm.length);
    for (let i = 0; i < perm.length; i++) inv[perm[i]!] = i;
    return [e.transpose(dy!, inv)];
  },
});

/** SpaceToDepth / DepthToSpace (blocksize b): [N, C, H, W] ↔ [N, C·b², H/b, W/b]. Gradients: each is the other's adjoint (DCR). */
function inferBlocks(toDepth: boolean) {
  return (n: Node, ins: (ValueInfo | undefined)[]): TypeShape[] => {
    const s = ins[0]?.shape;
    const dtype = ins[0]?.dtype ?? 'float32';
    if (s?.length !== 4) return [{ dtype }];
    const b = attrInt(n, 'blocksize', 1);
    const mul = (d: Dim, f: number): Dim => (typeof d === 'number' ? d * f : null);
    const div = (d: Dim, f: number): Dim => (typeof d === 'number' ? d / f : null);
    return [{ dtype, shape: toDepth ? [s[0]!, mul(s[1]!, b * b), div(s[2]!, b), div(s[3]!, b)] : [s[0]!, div(s[1]!, b * b), mul(s[2]!, b), mul(s[3]!, b)] }];
  };
}
defineOp('SpaceToDepth', {
  infer: inferBlocks(true),
  grad: (e, n, [dy], needs) => [needs[0] ? e.op('DepthToSpace', [dy!], { blocksize: attrInt(n, 'blocksize', 1), mode: 'DCR' }) : null],
});
defineOp('DepthToSpace', {
  infer: inferBlocks(false),
  grad: (e, n, [dy], needs) => {
    if (!needs[0]) return [null];
    if (n.attrs.mode === 'CRD') throw new Error(`${n.name}: no gradient rule for DepthToSpace in CRD mode; export with mode DCR.`);
    return [e.op('SpaceToDepth', [dy!], { blocksize: attrInt(n, 'blocksize', 1) })];
  },
});
