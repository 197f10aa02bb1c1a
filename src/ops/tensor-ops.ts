/**
 * Tensor re-arrangement ops: Concat, Split, Slice, Pad, Gather, GatherElements, Tile, and the
 * infer-only helpers ConstantOfShape, Range, OneHot, ArgMax/ArgMin, ScatterElements, ScatterND.
 * Opset differences (Split sizes / num_outputs, Pad axes, Scatter reduction) are handled here.
 */
import type { Emitter } from '../ir/emit.js';
import { attrInt, attrString, type Dim, type Node, type ValueInfo } from '../ir/graph.js';
import { type InferContext, OpFamily } from '../ir/op-registry.js';
import { desc, normAxis, requireShape, sameAsInput, staticDims } from '../ir/shape-utils.js';
import { Tensor } from '../tensor.js';

/** The tensor-ops ops, installed into the op table by registerStandardOps() (src/ops/index.ts). */
export const tensorOps = new OpFamily('tensor-ops');
const defineOp = tensorOps.define;

/** "Until the end" for Slice ends: large, yet exactly representable as int64 from a JS number. */
const TO_END = Number.MAX_SAFE_INTEGER;

const dtypeOf = (v: ValueInfo | undefined) => v?.dtype ?? 'float32';

/** The values of a constant int input, or undefined when it is absent or not a constant. */
function constInts(ctx: InferContext, name: string | undefined): number[] | undefined {
  return name ? ctx.constant(name)?.toNumbers() : undefined;
}

/** Zeros with the runtime shape of `like`. */
function zerosLike(e: Emitter, like: string): string {
  return e.op('Expand', [e.scalar(0), e.op('Shape', [like])]);
}

/** The runtime shape of `x`, dims [from, to). */
function shapeSlice(e: Emitter, x: string, from: number, to: number): string {
  return e.op('Slice', [e.op('Shape', [x]), e.ints([from]), e.ints([to])]);
}

// ---- Concat / Split -----------------------------------------------------------------------

defineOp('Concat', {
  infer: (n, ins) => {
    const shapes = ins.map((v) => v?.shape);
    const first = shapes.find((s) => s);
    if (!first || shapes.some((s) => !s)) return [{ dtype: dtypeOf(ins.find((v) => v)), shape: first?.map(() => null) }];
    const r = first.length;
    const axis = normAxis(attrInt(n, 'axis', 0), r);
    if (axis < 0 || axis >= r) throw new Error(`${desc(n)}: axis ${attrInt(n, 'axis', 0)} is out of range for rank ${r}; use an axis in [-${r}, ${r - 1}].`);
    const out: Dim[] = first.map((_, i) => {
      const ds = shapes.map((s) => s![i]!);
      if (i === axis) return ds.every((d) => typeof d === 'number') ? (ds as number[]).reduce((a, b) => a + b, 0) : ds.length === 1 ? ds[0]! : null;
      const known = ds.filter((d): d is number => typeof d === 'number');
      if (known.some((d) => d !== known[0]))
        throw new Error(`${desc(n)}: inputs differ in dimension ${i} ([${shapes.map((s) => `[${s}]`).join(', ')}]); all dims except axis ${axis} must match.`);
      return known.length ? known[0]! : ds[0]!;
    });
    return [{ dtype: dtypeOf(ins[0]), shape: out }];
  },
  // Each input gets its own span of dy along the axis: one Split when the sizes are static, else runtime Slices.
  grad: (e, n, [dy], needs) => {
    const r = e.rank(dy!);
    if (r === undefined) throw new Error(`${desc(n)}: the rank of the gradient is unknown; give the model static input ranks.`);
    const axis = normAxis(attrInt(n, 'axis', 0), r);
    const sizes = n.inputs.map((x) => e.shape(x)?.[axis]);
    if (sizes.every((d) => typeof d === 'number')) {
      if (n.inputs.length === 1) return [dy];
      const parts = e.opN('Split', [dy!, e.ints(sizes as number[])], { axis }, n.inputs.length);
      return parts.map((p, i) => (needs[i] ? p : null));
    }
    let offset = e.ints([0]);
    return n.inputs.map((x, i) => {
      const len = e.op('Gather', [e.op('Shape', [x]), e.ints([axis])]);
      const end = e.add(offset, len);
      const g = needs[i] ? e.op('Slice', [dy!, offset, end, e.ints([axis])]) : null;
      offset = end;
      return g;
    });
  },
});

/** Output sizes of a Split node along its axis (dim `d`), following the node's opset form. */
function splitSizes(n: Node, d: Dim, ctx: InferContext): Dim[] {
  if (n.inputs[1]) return constInts(ctx, n.inputs[1]) ?? n.outputs.map(() => null);
  if (Array.isArray(n.attrs.split)) return n.attrs.split as number[];
  const k = attrInt(n, 'num_outputs', n.outputs.length);
  if (k !== n.outputs.length) throw new Error(`${desc(n)}: num_outputs=${k} but the node has ${n.outputs.length} outputs; make them agree.`);
  if (typeof d !== 'number') return n.outputs.map(() => null);
  const chunk = Math.ceil(d / k);
  return n.outputs.map((_, i) => Math.max(0, Math.min(chunk, d - i * chunk)));
}

defineOp('Split', {
  infer: (n, ins, ctx) => {
    const s = ins[0]?.shape;
    if (!s) return n.outputs.map(() => ({ dtype: dtypeOf(ins[0]) }));
    const axis = normAxis(attrInt(n, 'axis', 0), s.length);
    const sizes = splitSizes(n, s[axis]!, ctx);
    const total = sizes.reduce<number | null>((a, b) => (a !== null && typeof b === 'number' ? a + b : null), 0);
    if (typeof s[axis] === 'number' && total !== null && total !== s[axis])
      throw new Error(`${desc(n)}: split sizes [${sizes}] add up to ${total}, but axis ${axis} has size ${s[axis]}; fix the split input.`);
    return n.outputs.map((_, i) => ({ dtype: dtypeOf(ins[0]), shape: s.map((d, j) => (j === axis ? (sizes[i] ?? null) : d)) }));
  },
  // dx = Concat of the output gradients along the axis (zeros for outputs no gradient reached).
  grad: (e, n, dys, needs) => {
    if (!needs[0]) return n.inputs.map(() => null);
    const axis = normAxis(attrInt(n, 'axis', 0), e.rank(n.inputs[0]!) ?? 1);
    const parts = n.outputs.map((y, i) => dys[i] ?? zerosLike(e, y));
    return [parts.length === 1 ? parts[0]! : e.op('Concat', parts, { axis }), ...n.inputs.slice(1).map(() => null)];
  },
});

// ---- Slice ----------------------------------------------------------------------------------

type SliceAxis = { axis: number; start: number; end: number; step: number };

/** The constant starts/ends/axes/steps of a Slice node (axes normalized), or undefined when any is not constant. */
function sliceParams(n: Node, rank: number, ctx: InferContext): SliceAxis[] | undefined {
  const [, s, en, ax, st] = n.inputs;
  const starts = constInts(ctx, s);
  const ends = constInts(ctx, en);
  const axes = ax ? constInts(ctx, ax) : starts?.map((_, i) => i);
  const steps = st ? constInts(ctx, st) : starts?.map(() => 1);
  if (!starts || !ends || !axes || !steps) return undefined;
  if (ends.length !== starts.length || axes.length !== starts.length || steps.length !== starts.length)
    throw new Error(
      `${desc(n)}: starts, ends, axes and steps must have the same length (got ${starts.length}, ${ends.length}, ${axes.length}, ${steps.length}).`,
    );
  const seen = new Set<number>();
  return starts.map((start, i) => {
    const axis = normAxis(axes[i]!, rank);
    if (axis < 0 || axis >= rank || seen.has(axis)) throw new Error(`${desc(n)}: axes [${axes}] must be distinct and within rank ${rank}.`);
    seen.add(axis);
    if (steps[i] === 0) throw new Error(`${desc(n)}: a step of 0 is not allowed (axis ${axis}); use a non-zero step.`);
    return { axis, start, end: ends[i]!, step: steps[i]! };
  });
}

/** ONNX Slice semantics on one axis of size d: clamped first index and element count. */
export function resolveSlice(d: number, start: number, end: number, step: number): { first: number; len: number } {
  if (start < 0) start += d;
  if (end < 0) end += d;
  if (step > 0) {
    start = Math.min(Math.max(start, 0), d);
    end = Math.min(Math.max(end, 0), d);
  } else {
    start = Math.min(Math.max(start, 0), d - 1);
    end = Math.min(Math.max(end, -1), d - 1);
  }
  return { first: start, len: Math.max(0, Math.ceil((end - start) / step)) };
}

defineOp('Slice', {
  infer: (n, ins, ctx) => {
    const s = ins[0]?.shape;
    if (!s) return [{ dtype: dtypeOf(ins[0]) }];
    const p = sliceParams(n, s.length, ctx);
    if (!p) return [{ dtype: dtypeOf(ins[0]), shape: s.map(() => null) }];
    const out = [...s];
    for (const { axis, start, end, step } of p) {
      const d = s[axis];
      if (typeof d === 'number') out[axis] = resolveSlice(d, start, end, step).len;
      else out[axis] = step === 1 && start === 0 && end >= 2 ** 31 - 1 ? d : null;
    }
    return [{ dtype: dtypeOf(ins[0]), shape: out }];
  },
  // Unit steps: Pad dy back with zeros. Other steps: append one zero slot, then Gather every input position from
  // its slot in dy (unselected positions read the zero slot). Needs constant parameters and static sliced dims.
  grad: (e, n, [dy], needs) => {
    const nulls = n.inputs.map(() => null);
    if (!needs[0]) return nulls;
    const shape = requireShape(e.info(n.inputs[0]!), n, 'the sliced input');
    const r = shape.length;
    const p = sliceParams(n, r, e);
    if (!p)
      throw new Error(
        `${desc(n)}: starts/ends/axes/steps are not constants, so graft cannot build the Slice gradient. Fold them to constants (e.g. onnxsim) or freeze this part.`,
      );
    const pads = new Array<number>(2 * r).fill(0);
    const strided: { axis: number; idx: number[] }[] = [];
    for (const { axis, start, end, step } of p) {
      const sym = shape[axis];
      if (typeof sym !== 'number' && step === 1 && start >= 0 && end >= 2 ** 31 - 1) {
        pads[axis] = start; // x[start:] on a symbolic axis: nothing to pad at the end
        continue;
      }
      const [d] = staticDims(shape, n, 'the sliced input', [axis]) as [number];
      const { first, len } = resolveSlice(d, start, end, step);
      if (step === 1) {
        pads[axis] = first;
        pads[axis + r] = d - first - len;
        continue;
      }
      const idx = new Array<number>(d).fill(len);
      for (let j = 0; j < len; j++) idx[first + j * step] = j;
      strided.push({ axis, idx });
    }
    let g = dy!;
    for (const { axis, idx } of strided) {
      const one = new Array<number>(2 * r).fill(0);
      one[axis + r] = 1;
      g = e.op('Gather', [e.op('Pad', [g, e.ints(one)]), e.ints(idx)], { axis });
    }
    if (pads.some((v) => v !== 0)) g = e.op('Pad', [g, e.ints(pads)]);
    return [g, ...nulls.slice(1)];
  },
});

// ---- Pad ------------------------------------------------------------------------------------

/** The axes a Pad node pads (opset ≥ 18 `axes` input, else every axis), or undefined if not constant. */
/** The axes a Pad pads (its `axes` input, opset ≥ 18; all axes otherwise), or undefined when not constant. */
export function padAxes(n: Node, rank: number, ctx: InferContext): number[] | undefined {
  if (!n.inputs[3]) return [...Array(rank).keys()];
  return constInts(ctx, n.inputs[3])?.map((a) => normAxis(a, rank));
}
/** A Pad's amounts (all begins, then all ends, one per padded axis) from its input or legacy attribute, or undefined when not constant. */
export function padAmounts(n: Node, ctx: InferContext): number[] | undefined {
  return n.inputs[1] ? constInts(ctx, n.inputs[1]) : Array.isArray(n.attrs.pads) ? (n.attrs.pads as number[]) : undefined;
}

defineOp('Pad', {
  infer: (n, ins, ctx) => {
    const s = ins[0]?.shape;
    if (!s) return [{ dtype: dtypeOf(ins[0]) }];
    const pads = padAmounts(n, ctx);
    const axes = padAxes(n, s.length, ctx);
    if (!pads || !axes) return [{ dtype: dtypeOf(ins[0]), shape: s.map(() => null) }];
    if (pads.length !== 2 * axes.length)
      throw new Error(`${desc(n)}: pads has ${pads.length} values but ${axes.length} axes are padded; it needs 2·${axes.length} (all begins, then all ends).`);
    const out = [...s];
    axes.forEach((a, i) => {
      const d = s[a]!;
      const extra = pads[i]! + pads[i + axes.length]!;
      out[a] = typeof d === 'number' ? d + extra : extra === 0 ? d : null;
    });
    return [{ dtype: dtypeOf(ins[0]), shape: out }];
  },
  // constant mode: dx = dy with the padding cut off — Slice(dy) for constant pads (zero-Pad back where pads were
  // negative), Pad(dy, −pads) for runtime pads. d constant_value = Σ dy − Σ dx.
  grad: (e, n, [dy], needs) => {
    const mode = attrString(n, 'mode', 'constant');
    if (mode !== 'constant')
      throw new Error(
        `${desc(n)}: Pad mode "${mode}" has no gradient rule in graft (only "constant" does). Freeze this layer, or re-export the model with zero padding.`,
      );
    const r = e.rank(dy!);
    if (r === undefined) throw new Error(`${desc(n)}: the rank of the padded value is unknown; give the model static input ranks.`);
    const axes = padAxes(n, r, e);
    const pads = padAmounts(n, e);
    let dx: string;
    if (pads && axes) {
      const k = axes.length;
      const [starts, ends, sAxes] = [[] as number[], [] as number[], [] as number[]];
      const back = new Array<number>(2 * r).fill(0);
      axes.forEach((a, i) => {
        const [b, en] = [pads[i]!, pads[i + k]!];
        if (b > 0 || en > 0) {
          starts.push(Math.max(b, 0));
          ends.push(en > 0 ? -en : TO_END);
          sAxes.push(a);
        }
        back[a] = Math.max(-b, 0);
        back[a + r] = Math.max(-en, 0);
      });
      dx = sAxes.length ? e.op('Slice', [dy!, e.ints(starts), e.ints(ends), e.ints(sAxes)]) : dy!;
      if (back.some((v) => v > 0)) dx = e.op('Pad', [dx, e.ints(back)]);
    } else {
      const neg = e.neg(n.inputs[1]!);
      dx = e.op('Pad', n.inputs[3] ? [dy!, neg, '', n.inputs[3]] : [dy!, neg]);
    }
    const out: (string | null)[] = n.inputs.map(() => null);
    if (needs[0]) out[0] = dx;
    if (needs[2]) out[2] = e.sub(e.reduceSum(dy!, 'all', false), e.reduceSum(dx, 'all', false));
    return out;
  },
});

// ---- Gather / GatherElements ----------------------------------------------------------------

defineOp('Gather', {
  infer: (n, ins) => {
    const s = ins[0]?.shape;
    const q = ins[1]?.shape;
    if (!s || !q) return [{ dtype: dtypeOf(ins[0]) }];
    const axis = normAxis(attrInt(n, 'axis', 0), s.length);
    if (axis < 0 || axis >= s.length) throw new Error(`${desc(n)}: axis ${attrInt(n, 'axis', 0)} is out of range for data of rank ${s.length}.`);
    return [{ dtype: dtypeOf(ins[0]), shape: [...s.slice(0, axis), ...q, ...s.slice(axis + 1)] }];
  },
  // dx = scatter-add of dy into zeros at the gathered positions (indices are flattened to one axis first).
  // Opset ≥ 16: ScatterElements(reduction=add). Older: OneHot(indices)ᵀ · dy as a MatMul along the axis.
  grad: (e, n, [dy], needs) => {
    if (!needs[0]) return [null, null];
    const [x, indices] = n.inputs as [string, string];
    const s = requireShape(e.info(x), n, 'the gathered data');
    const q = e.rank(indices);
    if (q === undefined) throw new Error(`${desc(n)}: the rank of the indices is unknown; give the model static input ranks.`);
    const r = s.length;
    const axis = normAxis(attrInt(n, 'axis', 0), r);
    let g = dy!;
    let idx = indices;
    if (q === 0) {
      g = e.unsqueeze(g, [axis]);
      idx = e.unsqueeze(idx, [0]);
    } else if (q > 1) {
      idx = e.op('Reshape', [idx, e.ints([-1])]);
      const pre = s.slice(0, axis);
      const post = s.slice(axis + 1);
      const target = [...pre, -1, ...post].every((d) => typeof d === 'number')
        ? e.ints([...(pre as number[]), -1, ...(post as number[])])
        : e.op('Concat', [shapeSlice(e, x, 0, axis), e.ints([-1]), shapeSlice(e, x, axis + 1, TO_END)], { axis: 0 });
      g = e.op('Reshape', [g, target]);
    }
    if (e.opset >= 16) {
      const others = [...Array(r).keys()].filter((a) => a !== axis);
      const idxFull = e.op('Expand', [others.length ? e.unsqueeze(idx, others) : idx, e.op('Shape', [g])]);
      return [e.op('ScatterElements', [zerosLike(e, x), idxFull, g], { axis, reduction: 'add' }), null];
    }
    const depth = typeof s[axis] === 'number' ? e.ints([s[axis] as number]) : e.op('Gather', [e.op('Shape', [x]), e.ints([axis])]);
    const oneHot = e.op('OneHot', [idx, depth, e.constTensor(Tensor.f32([2], [0, 1]), 'onoff')], { axis: -1 });
    const perm = [...[...Array(r).keys()].filter((a) => a !== axis), axis];
    const inv = perm.map((_, i) => perm.indexOf(i));
    return [e.transpose(e.op('MatMul', [e.transpose(g, perm), oneHot]), inv), null];
  },
});

defineOp('GatherElements', {
  infer: (_n, ins) => [{ dtype: dtypeOf(ins[0]), shape: ins[1]?.shape }],
  grad: (e, n, [dy], needs) => {
    if (!needs[0]) return [null, null];
    if (e.opset < 16)
      throw new Error(
        `${desc(n)}: the GatherElements gradient needs ScatterElements with reduction=add (opset ≥ 16); the model is opset ${e.opset}. Convert it to opset 16+.`,
      );
    const axis = attrInt(n, 'axis', 0);
    return [e.op('ScatterElements', [zerosLike(e, n.inputs[0]!), n.inputs[1]!, dy!], { axis, reduction: 'add' }), null];
  },
});

defineOp('ScatterElements', { infer: sameAsInput() });
defineOp('ScatterND', { infer: sameAsInput() });

// ---- Tile -----------------------------------------------------------------------------------

defineOp('Tile', {
  infer: (n, ins, ctx) => {
    const s = ins[0]?.shape;
    if (!s) return [{ dtype: dtypeOf(ins[0]) }];
    const reps = constInts(ctx, n.inputs[1]);
    if (!reps) return [{ dtype: dtypeOf(ins[0]), shape: s.map(() => null) }];
    if (reps.length !== s.length)
      throw new Error(`${desc(n)}: repeats has ${reps.length} values but the input has rank ${s.length}; give one repeat per axis.`);
    return [{ dtype: dtypeOf(ins[0]), shape: s.map((d, i) => (reps[i] === 1 ? d : typeof d === 'number' ? d * reps[i]! : null)) }];
  },
  // dy viewed as [r0, d0, r1, d1, ...] and summed over the repeat axes.
  grad: (e, n, [dy], needs) => {
    if (!needs[0]) return [null, null];
    const x = n.inputs[0]!;
    const reps = constInts(e, n.inputs[1]);
    if (!reps) throw new Error(`${desc(n)}: repeats is not a constant, so graft cannot build the Tile gradient. Fold it to a constant (e.g. onnxsim).`);
    const dims = staticDims(requireShape(e.info(x), n, 'the tiled input'), n, 'the tiled input');
    const split = e.op('Reshape', [dy!, e.ints(dims.flatMap((d, i) => [reps[i]!, d]))]);
    const repeatAxes = dims.map((_, i) => 2 * i);
    return [e.reduceSum(split, repeatAxes, false), null];
  },
});

// ---- infer-only helpers ---------------------------------------------------------------------

defineOp('ConstantOfShape', {
  infer: (n, ins, ctx) => {
    const v = n.attrs.value;
    const dtype = v instanceof Tensor ? v.dtype : 'float32';
    const sv = ctx.shapeValue(n.inputs[0]!);
    if (sv) return [{ dtype, shape: sv }];
    const len = ins[0]?.shape?.[0];
    return [{ dtype, shape: typeof len === 'number' ? new Array<Dim>(len).fill(null) : undefined }];
  },
});

defineOp('Range', {
  infer: (n, ins, ctx) => {
    const [a, b, c] = n.inputs.map((i) => constInts(ctx, i)?.[0]);
    if (c === 0) throw new Error(`${desc(n)}: delta is 0; Range needs a non-zero step.`);
    const len = a !== undefined && b !== undefined && c !== undefined ? Math.max(0, Math.ceil((b - a) / c)) : null;
    return [{ dtype: dtypeOf(ins[0]), shape: [len] }];
  },
});

defineOp('OneHot', {
  infer: (n, ins, ctx) => {
    const q = ins[0]?.shape;
    const dtype = dtypeOf(ins[2]);
    if (!q) return [{ dtype }];
    const depth = constInts(ctx, n.inputs[1])?.[0] ?? null;
    const axis = normAxis(attrInt(n, 'axis', -1), q.length + 1);
    return [{ dtype, shape: [...q.slice(0, axis), depth, ...q.slice(axis)] }];
  },
});

// the k largest (or smallest) values along an axis and their indices; no gradient rule (used under StopGradient)
defineOp('TopK', {
  infer: (n, ins, ctx) => {
    const s = ins[0]?.shape;
    const dtype = ins[0]?.dtype ?? 'float32';
    if (!s) return [{ dtype }, { dtype: 'int64' }];
    const axis = normAxis(attrInt(n, 'axis', -1), s.length);
    const k = constInts(ctx, n.inputs[1])?.[0] ?? null;
    const shape = s.map((d, i) => (i === axis ? k : d));
    return [
      { dtype, shape },
      { dtype: 'int64', shape: [...shape] },
    ];
  },
  nonDifferentiableOutputs: [1],
});

for (const op of ['ArgMax', 'ArgMin'])
  defineOp(op, {
    infer: (n, ins) => {
      const s = ins[0]?.shape;
      if (!s) return [{ dtype: 'int64' }];
      const axis = normAxis(attrInt(n, 'axis', 0), s.length);
      const keep = attrInt(n, 'keepdims', 1);
      return [{ dtype: 'int64', shape: keep ? s.map((d, i) => (i === axis ? 1 : d)) : s.filter((_, i) => i !== axis) }];
    },
    nonDifferentiableOutputs: [0],
  });
