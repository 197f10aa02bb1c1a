/**
 * Conv and ConvTranspose (1-D, 2-D, 3-D): shape inference and gradient rules in standard ONNX ops.
 *
 * For Y = Conv(X, W, B) with explicit pads:
 *  - dX = ConvTranspose(dY, W) with the same strides/dilations/group; the end pad / output_padding are chosen
 *    so the result has exactly X's spatial size.
 *  - dW = Σ_n dY[n] · cols[n]ᵀ where cols (im2col) is what each kernel tap sees at each output position: X itself for
 *    unpadded 1×1 kernels (strided-sliced), else a Conv of X (as N·C single-channel images) with one-hot kernels.
 *    The contraction is a batched MatMul reduced over N, or one GEMM after a transpose when channels outnumber pixels.
 *    It serves plain and grouped conv; bench/conv-grad.ts measures it ~1.7× (3×3) to 5×+ (1×1) faster on onnxruntime
 *    than the textbook Conv(Xᵀ, dYᵀ) with stride and dilation swapped (skinny per-channel GEMMs), at the cost of a
 *    transient cols tensor kh·kw times X's size. Depthwise conv needs no such tensor: with a static batch it folds N
 *    into the channels (zero-copy reshapes, one Conv with group N·C, ReduceSum over N); with a run-time batch (2-D) it
 *    stacks the images along the height into one depthwise Conv that sums over N itself (stackedDepthwiseWeightGrad).
 *    Either is a depthwise Conv, which CPU sessions run on onnxruntime's NCHWc kernel (runtime/nchwc-depthwise.ts).
 *  - dB = ReduceSum(dY, [0, 2, ...]).
 * ConvTranspose is the adjoint: its dX is a Conv and its dW is the Conv dW with the roles of input and output swapped.
 */

import type { Emitter } from '../ir/emit.js';
import { attrInt, attrInts, attrString, type Dim, type Node, type ValueInfo } from '../ir/graph.js';
import { OpFamily, type TypeShape } from '../ir/op-registry.js';
import { desc, requireShape, staticDims } from '../ir/shape-utils.js';
import { Tensor } from '../tensor.js';
import { channelScaledGrad } from './bn-train.js';

/** The conv ops, installed into the op table by registerStandardOps() (src/ops/index.ts). */
export const convOps = new OpFamily('conv');
const defineOp = convOps.define;

/** Explicit per-axis geometry of a sliding-window op (Conv, ConvTranspose, pooling). */
export interface WindowAxis {
  /** Padding before and after the axis. */
  pb: number;
  pe: number;
  /** Output length (null when the input length is not static). */
  out: Dim;
}

const isSame = (autoPad: string) => autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER';

/** Splits a total padding between begin and end: SAME_UPPER puts the odd pixel at the end, everything else at the start. */
function splitPad(total: number, upper: boolean): [number, number] {
  const head = upper ? Math.floor(total / 2) : total - Math.floor(total / 2);
  return [head, total - head];
}

/**
 * Resolves one spatial axis of a Conv or pooling node (auto_pad, explicit pads, ceil_mode) the way onnxruntime does:
 * with ceil_mode a last window that would start beyond the input and begin pad is dropped (PyTorch's rule).
 */
export function windowAxis(n: Node, i: number, rank: number, L: Dim, k: number, ceilMode = false): WindowAxis {
  const autoPad = attrString(n, 'auto_pad', 'NOTSET');
  const s = attrInts(n, 'strides', [])[i] ?? 1;
  const d = attrInts(n, 'dilations', [])[i] ?? 1;
  const pads = attrInts(n, 'pads', []);
  const ek = d * (k - 1) + 1;
  if (isSame(autoPad)) {
    if (typeof L !== 'number') return { pb: Number.NaN, pe: Number.NaN, out: null };
    const out = Math.ceil(L / s);
    const [pb, pe] = splitPad(Math.max(0, (out - 1) * s + ek - L), autoPad === 'SAME_UPPER');
    return { pb, pe, out };
  }
  const [pb, pe] = autoPad === 'VALID' ? [0, 0] : [pads[i] ?? 0, pads[i + rank] ?? 0];
  if (typeof L !== 'number') return { pb, pe, out: null };
  const span = L + pb + pe - ek;
  if (span < 0)
    throw new Error(
      `${desc(n)}: spatial axis ${i} has ${L} pixels (+${pb}/+${pe} padding) but the window spans ${ek} (kernel ${k}, dilation ${d}). Use a larger input or a smaller kernel.`,
    );
  let out = (ceilMode ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
  if (ceilMode && (out - 1) * s >= L + pb) out--;
  return { pb, pe, out };
}

/** Resolves one spatial axis of a ConvTranspose node (output_shape, auto_pad, pads, output_padding) as onnxruntime does. */
export function transposeAxis(n: Node, i: number, rank: number, L: Dim, k: number): WindowAxis {
  const autoPad = attrString(n, 'auto_pad', 'NOTSET');
  const s = attrInts(n, 'strides', [])[i] ?? 1;
  const d = attrInts(n, 'dilations', [])[i] ?? 1;
  const op = attrInts(n, 'output_padding', [])[i] ?? 0;
  const os = attrInts(n, 'output_shape', []);
  const target = os.length ? os[os.length - rank + i] : undefined;
  if (typeof L !== 'number') return { pb: Number.NaN, pe: Number.NaN, out: target ?? null };
  const full = s * (L - 1) + op + d * (k - 1) + 1;
  if (target !== undefined || isSame(autoPad)) {
    const want = target ?? L * s;
    const [pb, pe] = splitPad(Math.max(0, full - want), autoPad === 'SAME_UPPER');
    return { pb, pe, out: target ?? full - pb - pe };
  }
  const pads = attrInts(n, 'pads', []);
  const [pb, pe] = autoPad === 'VALID' ? [0, 0] : [pads[i] ?? 0, pads[i + rank] ?? 0];
  return { pb, pe, out: full - pb - pe };
}

/** Kernel spatial size from kernel_shape or the weight's shape (null where unknown). */
function kernelOf(n: Node, w: Dim[] | undefined, rank: number): Dim[] {
  const ks = attrInts(n, 'kernel_shape', []);
  return Array.from({ length: rank }, (_, i) => ks[i] ?? w?.[i + 2] ?? null);
}

function inferWindowed(n: Node, ins: (ValueInfo | undefined)[], transposed: boolean): TypeShape[] {
  const dtype = ins[0]?.dtype ?? 'float32';
  const x = ins[0]?.shape;
  const w = ins[1]?.shape;
  if (!x) return [{ dtype }];
  const rank = x.length - 2;
  const group = attrInt(n, 'group', 1);
  const [C, wIn, wOut] = [x[1], w?.[transposed ? 0 : 1], w?.[transposed ? 1 : 0]];
  const cin = transposed ? wIn : typeof wIn === 'number' ? wIn * group : null;
  if (typeof C === 'number' && typeof cin === 'number' && C !== cin)
    throw new Error(
      `${desc(n)}: input has ${C} channels but the weight [${w}] with group=${group} expects ${cin}. Check the layer's in_channels or the group attribute.`,
    );
  const groupOf = transposed ? C : wOut;
  if (typeof groupOf === 'number' && groupOf % group !== 0)
    throw new Error(
      `${desc(n)}: group=${group} does not divide the ${groupOf} ${transposed ? 'input' : 'output'} channels. Fix the group attribute or the weight.`,
    );
  const chOut = transposed ? (typeof wOut === 'number' ? wOut * group : null) : (wOut ?? null);
  const kernel = kernelOf(n, w, rank);
  const spatial = x.slice(2).map((L, i) => {
    const k = kernel[i];
    if (typeof k === 'number') return (transposed ? transposeAxis : windowAxis)(n, i, rank, L, k).out;
    const sameConv = !transposed && isSame(attrString(n, 'auto_pad', 'NOTSET')) && typeof L === 'number';
    return sameConv ? Math.ceil(L / (attrInts(n, 'strides', [])[i] ?? 1)) : null;
  });
  return [{ dtype, shape: [x[0] ?? null, chOut, ...spatial] }];
}

/** Everything a gradient rule needs, all static except the batch size. */
interface Plan {
  rank: number;
  group: number;
  k: number[];
  s: number[];
  d: number[];
  pb: number[];
  pe: number[];
  /** Spatial size of the conv input (the "X side") and of the conv output (the "Y side"). */
  L: number[];
  Lo: number[];
  /** Channels of the X side and of the Y side. */
  C: number;
  K: number;
}

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);
const prod = (xs: number[]) => xs.reduce((a, b) => a * b, 1);
const swap01 = (r: number) => [1, 0, ...range(2, r + 2)];

/** Marks the shape of a value the emitter could not infer (op defined in a file that may not be loaded yet). */
export function annotate(e: Emitter, name: string, shape: Dim[]): string {
  if (!e.info(name)?.shape) e.graph.valueInfo.set(name, { name, dtype: 'float32', shape });
  return name;
}

/** Slice of `x` along spatial axes: [0, ends) with `steps`. */
function sliceSpatial(e: Emitter, x: string, ends: number[], steps: number[], shape: Dim[]): string {
  const r = ends.length;
  const out = e.op('Slice', [x, e.ints(Array(r).fill(0)), e.ints(ends), e.ints(range(2, r + 2)), e.ints(steps)]);
  return annotate(e, out, [...shape.slice(0, 2), ...ends.map((end, i) => Math.ceil(end / steps[i]!))]);
}

/**
 * dX of Conv: ConvTranspose(dy, w) with end pads / output_padding that give exactly the spatial size `p.L`.
 * @param dy gradient of the conv output, [N, K, ...Lo]; `w` is [K, C/g, ...k].
 */
export function convInputGrad(e: Emitter, dy: string, w: string, p: Plan): string {
  const viaConv = stride1InputGrad(e, dy, w, p);
  if (viaConv) return viaConv;
  const pe: number[] = [];
  const op: number[] = [];
  for (let i = 0; i < p.rank; i++) {
    const base = p.s[i]! * (p.Lo[i]! - 1) + p.d[i]! * (p.k[i]! - 1) + 1 - p.pb[i]! - p.L[i]!;
    pe.push(Math.max(0, base));
    op.push(Math.max(0, -base));
  }
  const attrs = { kernel_shape: p.k, strides: p.s, dilations: p.d, group: p.group, pads: [...p.pb, ...pe] };
  return e.op('ConvTranspose', [dy, w], op.some((v) => v) ? { ...attrs, output_padding: op } : attrs, 'dconv_x');
}

/**
 * dX of a stride-1 Conv as a plain Conv of dy with the spatially flipped kernel, its in/out channels swapped per
 * group: onnxruntime's Conv is markedly faster than its ConvTranspose (which is a GEMM plus col2im). Pads become
 * d·(k−1) − pad on each side, so this applies when every pad is at most d·(k−1); otherwise it returns null.
 */
function stride1InputGrad(e: Emitter, dy: string, w: string, p: Plan): string | null {
  if (p.s.some((v) => v !== 1)) return null;
  const span = p.k.map((k, i) => p.d[i]! * (k - 1));
  const pads = [...p.pb.map((v, i) => span[i]! - v), ...p.pe.map((v, i) => span[i]! - v)];
  if (pads.some((v) => v < 0)) return null;
  const spatial = range(2, p.rank + 2);
  // a 1×1 kernel is its own flip: no Slice (a copy of the weight per step; MobileNetV2 has 34 such layers)
  const flipped = p.k.every((k) => k === 1)
    ? w
    : e.op('Slice', [w, e.ints(spatial.map(() => -1)), e.ints(p.k.map((k) => -k - 1)), e.ints(spatial), e.ints(spatial.map(() => -1))]);
  annotate(e, flipped, [p.K, p.C / p.group, ...p.k]);
  const g = p.group;
  let wt: string;
  if (g === 1) wt = e.transpose(flipped, [1, 0, ...spatial]);
  else if (p.K === g && p.C === g)
    wt = flipped; // depthwise: [C, 1, ...k] already
  else {
    const grouped = e.op('Reshape', [flipped, e.ints([g, p.K / g, p.C / g, ...p.k])]);
    wt = e.op('Reshape', [e.transpose(grouped, [0, 2, 1, ...range(3, p.rank + 3)]), e.ints([p.C, p.K / g, ...p.k])]);
  }
  annotate(e, wt, [p.C, p.K / g, ...p.k]);
  return e.op('Conv', [dy, wt], { kernel_shape: p.k, dilations: p.d, group: g, pads }, 'dconv_x');
}

/** One-hot kernels [kk, 1, ...k]: a Conv with them lays out, per input channel, what every kernel tap sees (im2col). */
function tapKernels(e: Emitter, k: number[]): string {
  const kk = prod(k);
  const t = Tensor.f32([kk, 1, ...k]);
  for (let i = 0; i < kk; i++) (t.data as Float32Array)[i * kk + i] = 1;
  return e.constTensor(t, 'taps');
}

/**
 * What each kernel tap sees at each output position, per input channel: a Conv of X (as N·C single-channel images)
 * with one-hot kernels, [N·C, kk, ...Lo]. A 2-D one runs as a 3-D Conv with a unit depth: onnxruntime would otherwise
 * turn it into an NCHWc Conv (its weights are constant) whose output must be reordered back — a second pass over
 * the kk-times-X-sized result, ~4 ms of the SmallCNN step.
 */
function im2col(e: Emitter, x: string, p: Plan): string {
  const lift = p.rank === 2;
  const one = (v: number[], u = 1) => (lift ? [u, ...v] : v);
  const attrs = { kernel_shape: one(p.k), strides: one(p.s), dilations: one(p.d), pads: [...one(p.pb, 0), ...one(p.pe, 0)] };
  const kernels = lift ? e.op('Reshape', [tapKernels(e, p.k), e.ints([prod(p.k), 1, 1, ...p.k])]) : tapKernels(e, p.k);
  return e.op('Conv', [e.op('Reshape', [x, e.ints([-1, 1, ...one(p.L)])]), kernels], attrs, 'im2col');
}

/**
 * im2col laid out for one GEMM over (n, p), 2-D only: X transposed to C images of depth N ([C, 1, N, ...L]) and unfolded
 * by a 3-D one-hot Conv whose depth axis is the batch, giving [C, kk, N, ...Lo] = [C·kk, N·P] directly. The transpose
 * is of X, not of the kk-times-larger cols (bench/conv-dw.ts: ResNet-18's layer3/layer4 dW −2 to −8 % CPU).
 */
function im2colBatchAsDepth(e: Emitter, x: string, p: Plan): string {
  const attrs = { kernel_shape: [1, ...p.k], strides: [1, ...p.s], dilations: [1, ...p.d], pads: [0, ...p.pb, 0, ...p.pe] };
  const kernels = e.op('Reshape', [tapKernels(e, p.k), e.ints([prod(p.k), 1, 1, ...p.k])]);
  const xt = e.op('Reshape', [e.transpose(x, swap01(p.rank)), e.ints([p.C, 1, -1, ...p.L])]);
  return e.op('Conv', [xt, kernels], attrs, 'im2col');
}

/**
 * dW of a depthwise Conv (C/g = 1): one grouped Conv that correlates each channel of X with its dY over the batch.
 * With a static batch N this folds N into the channels without copying (X as one image of N·C channels, dY as N·K
 * single-channel kernels, group N·C), then sums over N. With a batch known only at run time the group count cannot
 * depend on N, so X and dY are transposed to channel-major ([C, N, …]) instead: one image of C·N channels in C groups
 * of N, dY as K kernels of N channels each — the sum over N happens inside the convolution. Either way there is no
 * im2col tensor kh·kw times X's size, which for MobileNet's wide early layers would be hundreds of megabytes.
 */
function depthwiseWeightGrad(e: Emitter, x: string, dy: string, p: Plan, N: number | null): string {
  const pe: number[] = [];
  const got: number[] = [];
  for (let i = 0; i < p.rank; i++) {
    // input pixels beyond the last window: trim them from the end pad so the result is exactly the kernel size
    const extra = p.L[i]! + p.pb[i]! + p.pe[i]! - (p.d[i]! * (p.k[i]! - 1) + 1) - p.s[i]! * (p.Lo[i]! - 1);
    const cut = Math.min(extra, p.pe[i]!);
    pe.push(p.pe[i]! - cut);
    got.push(p.k[i]! + Math.floor((extra - cut) / p.d[i]!));
  }
  const attrs = { kernel_shape: p.Lo, strides: p.d, dilations: p.s, pads: [...p.pb, ...pe] };
  const trim = (v: string, channels: number) => (got.some((g, i) => g !== p.k[i]) ? sliceSpatial(e, v, p.k, Array(p.rank).fill(1), [1, channels, ...got]) : v);
  if (N === null && p.rank === 2 && p.K === p.C) return stackedDepthwiseWeightGrad(e, x, dy, p, pe, got);
  if (N === null) {
    const cm = swap01(p.rank);
    const xr = e.op('Reshape', [e.transpose(x, cm), e.ints([1, -1, ...p.L])]); // [1, C·N, ...L], channel-major
    const out = trim(e.op('Conv', [xr, e.transpose(dy, cm)], { ...attrs, group: p.C }), p.K); // [1, K, ...k]
    return e.op('Reshape', [out, e.ints([p.K, 1, ...p.k])], {}, 'dconv_w');
  }
  const xr = e.op('Reshape', [x, e.ints([1, N * p.C, ...p.L])]);
  const dyr = e.op('Reshape', [dy, e.ints([N * p.K, 1, ...p.Lo])]);
  const out = trim(e.op('Conv', [xr, dyr], { ...attrs, group: N * p.C }), N * p.K); // [1, N·K, ...k]
  return e.op('Reshape', [e.reduceSum(e.op('Reshape', [out, e.ints([N, -1])]), [0], false), e.ints([p.K, 1, ...p.k])], {}, 'dconv_w');
}

/**
 * dW of a 2-D depthwise Conv with a batch known only at run time, as one depthwise Conv (group C, one input channel
 * per group) that sums over the batch inside the convolution: the N images of each channel are stacked along the
 * height, each with its own zero rows, into one tall image, and so are the N dY kernels, spaced so that kernel rows of
 * image n land on image n's rows only. With P = the padded image height rounded up to a multiple of the stride s, X
 * becomes [1, C, N·P, W] and dY the kernel [C, 1, N·P/s, Wo] (each image's Ho rows then P/s − Ho zero rows): output
 * row i, kernel row n·P/s + y reads X row n·P + d·i + s·y, which lies inside image n's padded rows for a real row
 * (d·(k−1) + s·(Ho−1) < P); the Conv's end pad gives the last image's zero rows X rows to slide over. No copy is
 * sliced: both are a Transpose and a Pad of the original, which runtime/nchwc-depthwise.ts can do on the blocked tensors instead. The kernel's height depends on N, so the Conv gives no kernel_shape. Being depthwise,
 * it runs on onnxruntime's NCHWc depthwise kernel once runtime/nchwc-depthwise.ts reorders it (CPU sessions), ~3–10× faster than
 * the grouped Conv over channel-major copies it replaces (bench/nchwc-depthwise.ts).
 * Where the image height is the stride times the output height (MobileNet's layers), seamlessDepthwiseWeightGrad
 * stacks without the zero rows instead.
 * @param pe the end pads trimmed of pixels beyond the last window; `got` the output size with them (≥ the kernel).
 */
function stackedDepthwiseWeightGrad(e: Emitter, x: string, dy: string, p: Plan, pe: number[], got: number[]): string {
  const [s, d, k] = [p.s[0]!, p.d[0]!, p.k[0]!];
  const seams = seamLeaks(p);
  if (seams) return seamlessDepthwiseWeightGrad(e, x, dy, p, pe, got, seams);
  const P = Math.ceil((p.L[0]! + p.pb[0]! + pe[0]!) / s) * s;
  const Pk = P / s;
  const cm = swap01(p.rank);
  const xs = e.op('Pad', [e.transpose(x, cm), e.ints([0, 0, p.pb[0]!, 0, 0, 0, P - p.L[0]! - p.pb[0]!, 0])]); // [C, N, P, W]
  const xr = annotate(e, e.op('Reshape', [xs, e.ints([1, p.C, -1, p.L[1]!])]), [1, p.C, null, p.L[1]!]);
  const dyT = e.transpose(dy, cm); // [C, N, Ho, Wo]
  const spaced = Pk > p.Lo[0]! ? e.op('Pad', [dyT, e.ints([0, 0, 0, 0, 0, 0, Pk - p.Lo[0]!, 0])]) : dyT;
  const kern = annotate(e, e.op('Reshape', [spaced, e.ints([p.C, 1, -1, p.Lo[1]!])]), [p.C, 1, null, p.Lo[1]!]);
  // the last image's spacer rows (zeros) still slide over X: zero rows below X (the Conv's end pad) keep them in range
  const below = Math.max(0, d * (k - 1) - s + 1);
  const rows = Math.floor((below + s - 1) / d) + 1;
  const attrs = { strides: p.d, dilations: p.s, group: p.C, pads: [0, p.pb[1]!, below, pe[1]!] };
  let out = annotate(e, e.op('Conv', [xr, kern], attrs), [1, p.C, rows, got[1]!]); // [1, C, rows, got]
  if (rows !== k || got[1] !== p.k[1]) out = sliceSpatial(e, out, p.k, [1, 1], [1, p.C, rows, got[1]!]);
  return e.op('Reshape', [out, e.ints([p.K, 1, ...p.k])], {}, 'dconv_w');
}

/** The kernel rows y of one output row i whose taps, in a stacking without zero rows, read a neighbouring image. */
interface SeamLeak {
  /** The output row of dW. */
  i: number;
  /** 'above': rows of image n − 1 (the tap falls in image n's top pad); 'below': rows of image n + 1 (its end pad). */
  side: 'above' | 'below';
  /** The leaking dY rows [y0, y0 + count) of every image, and the first neighbour row they read (then every s-th). */
  y0: number;
  count: number;
  row: number;
}

/**
 * Where the seamless stacking (seamlessDepthwiseWeightGrad) reads across image seams, or undefined when it does not
 * apply: it needs the images and the dY kernels at the same pitch (L = s·Ho, as "same" padding of an image divisible
 * by the stride gives) and every leaking tap inside the neighbouring image.
 */
function seamLeaks(p: Plan): SeamLeak[] | undefined {
  const [s, d, k, L, Ho, pb] = [p.s[0]!, p.d[0]!, p.k[0]!, p.L[0]!, p.Lo[0]!, p.pb[0]!];
  if (L !== s * Ho || pb >= L) return undefined;
  const leaks: SeamLeak[] = [];
  for (let i = 0; i < k; i++) {
    // image row read by kernel row y: r = s·y + d·i − pb; r < 0 is image n − 1's row L + r, r ≥ L image n + 1's row r − L
    const top = Math.min(Ho, Math.max(0, Math.ceil((pb - d * i) / s)));
    if (top > 0) leaks.push({ i, side: 'above', y0: 0, count: top, row: L + d * i - pb });
    const y0 = Math.max(0, Math.ceil((L + pb - d * i) / s));
    if (y0 < Ho) {
      const row = s * y0 + d * i - pb - L;
      if (row + s * (Ho - 1 - y0) >= L) return undefined; // a tap beyond the neighbour too: not for sane geometries
      leaks.push({ i, side: 'below', y0, count: Ho - y0, row });
    }
  }
  return leaks;
}

/**
 * The stacked depthwise dW (stackedDepthwiseWeightGrad) without zero rows between the images: X [N, C, L, W] is stacked
 * as it is ([1, C, N·L, W], a Transpose only) and dY at pitch Ho = L/s, so kernel row n·Ho + y meets image n's row
 * s·y + d·i − pb, as in the padded form — except where that row is outside the image, i.e. in the image's own zero
 * pad: there it reads the neighbouring image's row instead (a handful of taps at each seam, `seamLeaks`). Those terms
 * are computed apart, each from thin slices of X and dY (the leaking dY rows of every image against the rows of the
 * neighbour they read, stacked the same way, one output row each) and subtracted. This drops the two row Pads (a full
 * pass over X and over dY each, which onnxruntime's Pad runs at ~2× a copy) for a few small Convs. The first image has
 * no image above and the last none below: their neighbour is a zero image, so a batch of one needs no special case.
 */
function seamlessDepthwiseWeightGrad(e: Emitter, x: string, dy: string, p: Plan, pe: number[], got: number[], leaks: SeamLeak[]): string {
  const [s, d, k, pb] = [p.s[0]!, p.d[0]!, p.k[0]!, p.pb[0]!];
  const [W, Wo, kw] = [p.L[1]!, p.Lo[1]!, p.k[1]!];
  const cm = swap01(p.rank);
  const xr = annotate(e, e.op('Reshape', [e.transpose(x, cm), e.ints([1, p.C, -1, W])]), [1, p.C, null, W]);
  const kern = annotate(e, e.op('Reshape', [e.transpose(dy, cm), e.ints([p.C, 1, -1, Wo])]), [p.C, 1, null, Wo]);
  const below = Math.max(0, d * (k - 1) - s + 1 - pb);
  const rows = Math.floor((pb + below + s - 1) / d) + 1;
  const cols = (v: string, height: number) => (got[1] !== kw ? sliceSpatial(e, v, [height, kw], [1, 1], [1, p.C, height, got[1]!]) : v);
  const attrs = { strides: p.d, dilations: p.s, group: p.C, pads: [pb, p.pb[1]!, below, pe[1]!] };
  const main = annotate(e, e.op('Conv', [xr, kern], attrs), [1, p.C, rows, got[1]!]);
  let dw = rows !== k || got[1] !== kw ? sliceSpatial(e, main, [k, kw], [1, 1], [1, p.C, rows, got[1]!]) : main;
  const slice = (v: string, starts: number[], ends: number[], axes: number[], steps: number[]) =>
    e.op('Slice', [v, e.ints(starts), e.ints(ends), e.ints(axes), e.ints(steps)]);
  for (const leak of leaks) {
    const { count } = leak;
    // the neighbour's rows, image by image: image n − 1's (above) or n + 1's (below), a zero image past either end
    const rowsOf = slice(x, [leak.row], [leak.row + s * (count - 1) + 1], [2], [s]);
    annotate(e, rowsOf, [null, p.C, count, W]);
    const zero = e.constTensor(Tensor.f32([1, p.C, count, W]), 'seam_zero');
    const shifted =
      leak.side === 'above'
        ? e.op('Concat', [zero, slice(rowsOf, [0], [-1], [0], [1])], { axis: 0 })
        : e.op('Concat', [slice(rowsOf, [1], [Number.MAX_SAFE_INTEGER], [0], [1]), zero], { axis: 0 });
    annotate(e, shifted, [null, p.C, count, W]);
    const xs = annotate(e, e.op('Reshape', [e.transpose(shifted, cm), e.ints([1, p.C, -1, W])]), [1, p.C, null, W]);
    const dys = annotate(e, slice(dy, [leak.y0], [leak.y0 + count], [2], [1]), [null, p.C, count, Wo]);
    const ks = annotate(e, e.op('Reshape', [e.transpose(dys, cm), e.ints([p.C, 1, -1, Wo])]), [p.C, 1, null, Wo]);
    // one output row: kernel and image rows correspond one to one; the columns as in the main Conv
    const seam = { strides: [1, p.d[1]!], dilations: [1, p.s[1]!], group: p.C, pads: [0, p.pb[1]!, 0, pe[1]!] };
    const one = annotate(e, e.op('Conv', [xs, ks], seam), [1, p.C, 1, got[1]!]);
    const term = e.op('Pad', [cols(one, 1), e.ints([0, 0, leak.i, 0, 0, 0, k - 1 - leak.i, 0])]);
    dw = e.sub(dw, annotate(e, term, [1, p.C, k, kw]));
  }
  return e.op('Reshape', [dw, e.ints([p.K, 1, ...p.k])], {}, 'dconv_w');
}

/**
 * dW of Conv: correlates the input `x` [N, C, ...L] with the output gradient `dy` [N, K, ...Lo]; returns [K, C/g, ...k].
 * cols[n, g, (c, tap), p] = the input value output position p sees through kernel tap `tap` (X itself for unpadded 1×1
 * kernels, else a Conv with one-hot kernels); dW is then a batched MatMul over images reduced over N, or one GEMM over
 * (n, p), whichever moves less memory. For that GEMM a 2-D group-1 Conv unfolds X with the batch as a depth axis
 * (im2colBatchAsDepth: cols come out as [C·kk, N·P]); other convs transpose cols. Depthwise convs go to
 * depthwiseWeightGrad.
 */
export function convWeightGrad(e: Emitter, x: string, dy: string, p: Plan, xShape: Dim[]): string {
  const { rank, group: g, C, K } = p;
  const [Cg, Kg, kk, P] = [C / g, K / g, prod(p.k), prod(p.Lo)];
  const CK = Cg * kk;
  if (Cg === 1 && kk > 1) return depthwiseWeightGrad(e, x, dy, p, typeof xShape[0] === 'number' ? xShape[0] : null);
  const unpadded1x1 = kk === 1 && p.pb.every((v) => v === 0) && p.pe.every((v) => v === 0);
  const perImage = Kg * CK <= P * (CK + Kg);
  const outShape = e.ints([K, Cg, ...p.k]);
  if (!perImage && g === 1 && rank === 2 && !unpadded1x1) {
    // one GEMM over (n, p) with cols unfolded straight into [C·kk, N·P] (PyTorch's contraction)
    const cols = e.op('Reshape', [im2colBatchAsDepth(e, x, p), e.ints([CK, -1])]);
    const dyt = e.op('Reshape', [e.transpose(dy, swap01(rank)), e.ints([K, -1])]); // [K, N·P]
    return e.op('Reshape', [e.op('Gemm', [dyt, cols], { transB: 1 }), outShape], {}, 'dconv_w');
  }
  let cols: string;
  if (unpadded1x1) {
    const ends = p.Lo.map((l, i) => p.s[i]! * (l - 1) + 1);
    cols = ends.some((v, i) => v !== p.L[i] || p.s[i]! > 1) ? sliceSpatial(e, x, ends, p.s, xShape) : x;
  } else {
    cols = im2col(e, x, p);
  }
  cols = e.op('Reshape', [cols, e.ints([-1, g, CK, P])]);
  if (perImage) {
    // per-image products [CK, P]·[P, Kg], summed over N: small intermediate when the image is large
    const dyT = Kg === 1 ? e.op('Reshape', [dy, e.ints([0, g, P, 1])]) : e.transpose(e.op('Reshape', [dy, e.ints([0, g, Kg, P])]), [0, 1, 3, 2]);
    const m = e.reduceSum(e.op('MatMul', [cols, dyT]), [0], false); // [g, CK, Kg]
    return e.op('Reshape', [Kg > 1 && CK > 1 ? e.transpose(m, [0, 2, 1]) : m, outShape], {}, 'dconv_w');
  }
  // one GEMM contracting over (n, p): no N-sized intermediate when channels outnumber pixels
  const dyt = e.transpose(dy, swap01(rank)); // [K, N, ...Lo]
  if (g === 1) {
    const colsT = e.op('Reshape', [e.transpose(e.op('Reshape', [cols, e.ints([-1, CK, P])]), [1, 0, 2]), e.ints([CK, -1])]);
    return e.op('Reshape', [e.op('Gemm', [e.op('Reshape', [dyt, e.ints([K, -1])]), colsT], { transB: 1 }), outShape], {}, 'dconv_w');
  }
  const b = e.op('Reshape', [e.transpose(cols, [1, 0, 3, 2]), e.ints([g, -1, CK])]);
  return e.op('Reshape', [e.op('MatMul', [e.op('Reshape', [dyt, e.ints([g, Kg, -1])]), b]), outShape], {}, 'dconv_w');
}

function biasGrad(e: Emitter, dy: string, rank: number): string {
  return e.reduceSum(dy, [0, ...range(2, rank + 2)], false);
}

function staticAttrs(n: Node, rank: number) {
  return {
    s: Array.from({ length: rank }, (_, i) => attrInts(n, 'strides', [])[i] ?? 1),
    d: Array.from({ length: rank }, (_, i) => attrInts(n, 'dilations', [])[i] ?? 1),
    group: attrInt(n, 'group', 1),
  };
}

defineOp('Conv', {
  infer: (n, ins) => inferWindowed(n, ins, false),
  grad: (e, n, [dy], needs) => {
    const [x, w, b] = n.inputs as [string, string, string | undefined];
    const xShape = requireShape(e.info(x), n, `input "${x}"`);
    const wShape = requireShape(e.info(w), n, `weight "${w}"`);
    const rank = xShape.length - 2;
    const L = staticDims(xShape, n, `input "${x}"`, range(2, rank + 2));
    const [C] = staticDims(xShape, n, `input "${x}"`, [1]);
    const [K, ...k] = staticDims(wShape, n, `weight "${w}"`, [0, ...range(2, rank + 2)]);
    const axes = L.map((l, i) => windowAxis(n, i, rank, l, k[i]!));
    const p: Plan = {
      rank,
      k,
      ...staticAttrs(n, rank),
      L,
      Lo: axes.map((a) => a.out as number),
      C: C!,
      K: K!,
      pb: axes.map((a) => a.pb),
      pe: axes.map((a) => a.pe),
    };
    const folded = channelScaledGrad(e, dy!);
    if (folded) {
      // dy = a ⊙ dy′ per output channel (a training-mode BN after this Conv): a goes onto the weight for dX and onto
      // dW and db (weight-sized Muls) instead of a full-size pass over dy
      const aK = e.op('Reshape', [folded.scale, e.ints([K!, ...new Array<number>(rank + 1).fill(1)])]);
      return [
        needs[0] ? convInputGrad(e, folded.unscaled, e.mul(w, aK), p) : null,
        needs[1] ? e.mul(convWeightGrad(e, x, folded.unscaled, p, xShape), aK) : null,
        b && needs[2] ? e.mul(biasGrad(e, folded.unscaled, rank), e.op('Reshape', [folded.scale, e.ints([K!])])) : null,
      ];
    }
    return [
      needs[0] ? convInputGrad(e, dy!, w, p) : null,
      needs[1] ? convWeightGrad(e, x, dy!, p, xShape) : null,
      b && needs[2] ? biasGrad(e, dy!, rank) : null,
    ];
  },
});

defineOp('ConvTranspose', {
  infer: (n, ins) => inferWindowed(n, ins, true),
  grad: (e, n, [dy], needs) => {
    const [x, w, b] = n.inputs as [string, string, string | undefined];
    const xShape = requireShape(e.info(x), n, `input "${x}"`);
    const wShape = requireShape(e.info(w), n, `weight "${w}"`);
    const rank = xShape.length - 2;
    const L = staticDims(xShape, n, `input "${x}"`, range(2, rank + 2));
    const [Cin, Cog, ...k] = staticDims(wShape, n, `weight "${w}"`, [0, 1, ...range(2, rank + 2)]);
    const axes = L.map((l, i) => transposeAxis(n, i, rank, l, k[i]!));
    const attrs = staticAttrs(n, rank);
    // Seen from the output side this is a Conv from Y (length `out`) to X (length L).
    const Ly = axes.map((a) => a.out as number);
    const p: Plan = { rank, k, ...attrs, L: Ly, Lo: L, C: Cog! * attrs.group, K: Cin!, pb: axes.map((a) => a.pb), pe: axes.map((a) => a.pe) };
    // onnxruntime rejects ConvTranspose geometries where the adjoint Conv would not land exactly on X.
    const reach = Ly.map((l, i) => Math.floor((l + p.pb[i]! + p.pe[i]! - p.d[i]! * (k[i]! - 1) - 1) / p.s[i]!) + 1);
    if (reach.some((r, i) => r !== L[i]))
      throw new Error(
        `${desc(n)}: output_shape/pads/output_padding do not match the input size (the adjoint Conv reaches [${reach}], input is [${L}]). Fix the attributes.`,
      );
    const convAttrs = { kernel_shape: k, strides: p.s, dilations: p.d, group: p.group, pads: [...p.pb, ...p.pe] };
    return [
      needs[0] ? e.op('Conv', [dy!, w], convAttrs, 'dconvt_x') : null,
      needs[1] ? convWeightGrad(e, dy!, x, p, [xShape[0]!, p.C, ...Ly]) : null,
      b && needs[2] ? biasGrad(e, dy!, rank) : null,
    ];
  },
});
