/**
 * Dense Convs onto onnxruntime's NCHWc kernel, for CPU sessions of training graphs (the dense sibling of
 * ./nchwc-depthwise.ts, whose module comment explains why a trainable weight keeps onnxruntime's own NCHWc rewrite off).
 *
 * `com.microsoft.nchwc` Conv (onnxruntime/contrib_ops/cpu/nchwc_ops.cc → MlasNchwcConv) reads its weight on every run
 * and takes it as [K, C, kh, kw] in one of two blocked layouts (MLAS's MlasReorderFilterOIHWBiBo / …OIHWBo):
 *  - a blocked input (C a multiple of the block B): OIHWBiBo, [K/B, C/B, kh, kw, Bi, Bo], element
 *    W[ko·B + bo, ci·B + bi, y, x] — from W by Reshape [K/B, B, C/B, B, kh, kw] and Transpose [0, 2, 4, 5, 3, 1];
 *  - an NCHW input with fewer channels than the block (a stem's 3): OIHWBo, [K/B, C, kh, kw, Bo] — Reshape
 *    [K/B, B, C, kh, kw], Transpose [0, 2, 3, 4, 1]; the input is read as it is.
 * Both are reshaped back to [K, C, kh, kw] (the kernel takes its kernel and output sizes from that shape). K must be a
 * multiple of B (onnxruntime pads it with zero filters; this rewrite does not, so such a Conv stays standard), group 1.
 * So each such Conv becomes ReorderInput(x) → nchwc Conv(·, W′, b) → ReorderOutput. The stride-1 dX Conv of
 * ops/conv.ts reads Transpose(flip(W), [1, 0, 2, 3]); its blocked weight is made from W itself (see `weight`).
 * 1×1 Convs stay standard unless asked for (`pointwise`): onnxruntime runs them as one GEMM without im2col, and the
 * reorders ate the kernel's gain (docs/benchmarks.md, "Session 8"). A value read by several rewritten Convs (with
 * `pointwise`, a ResNet block's input: conv1 and the 1×1 downsample) is reordered once, and so is one the depthwise
 * pass already reordered. The sums are the same in another order (float32 rounding differs; test/runtime/
 * nchwc-dense.test.ts holds every output within 1e-5 of its largest magnitude of the standard Conv's).
 */
import type { Dim, Graph, Node } from '../ir/graph.js';
import { attrInt, attrInts, attrString } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import { Tensor } from '../tensor.js';
import { finishNchwc, NCHWC_DOMAIN, nchwcAttrs, nchwcWriter } from './nchwc-depthwise.js';

const known = (d: Dim | undefined): d is number => typeof d === 'number';

/**
 * Is `n` a standard 2-D dense Conv (group 1) whose weight is not a constant, with K a multiple of `block` and C either
 * a multiple of it (blocked input) or below it (NCHW input), and a kernel larger than 1×1 unless `pointwise`? The
 * batch and spatial sizes may be unknown.
 */
export function isNchwcDense(g: Graph, n: Node, block: number, pointwise = false): boolean {
  if (n.op !== 'Conv' || (n.domain ?? '') !== '' || n.outputs.length !== 1) return false;
  if (!['NOTSET', ''].includes(attrString(n, 'auto_pad', 'NOTSET')) || attrInt(n, 'group', 1) !== 1) return false;
  const [x, w] = n.inputs;
  if (!x || !w || g.initializers.has(w)) return false; // a constant weight gets onnxruntime's own NCHWc rewrite
  const xs = g.info(x)?.shape;
  const ws = g.info(w)?.shape;
  if (xs?.length !== 4 || ws?.length !== 4 || !ws.every(known)) return false;
  const [K, C, kh, kw] = ws as number[] as [number, number, number, number];
  if (kh * kw === 1 && !pointwise) return false;
  return xs[1] === C && K % block === 0 && (C % block === 0 || C < block);
}

/**
 * Rewrites, in place, every dense Conv of `model` that {@link isNchwcDense} accepts into onnxruntime's NCHWc kernel
 * (see the module comment), sharing blocked copies of inputs. Returns the number of Convs rewritten.
 * @param block the NCHWc block size of the CPU onnxruntime runs on (runtime/nchwc.ts).
 * @param opts.pointwise also 1×1 Convs. Off by default: onnxruntime's generic Conv runs a 1×1 as one GEMM on the NCHW
 *   tensors (no im2col), and MobileNetV2's 1×1 layers measured 0.7–1.25× on the NCHWc kernel with the reorders
 *   (bench/nchwc-dense.ts --net mobilenet_v2): no consistent gain.
 */
export function nchwcDense(model: Model, block: number, opts: { pointwise?: boolean } = {}): number {
  const g = model.graph;
  const pointwise = opts.pointwise ?? false;
  if (!g.nodes.some((n) => isNchwcDense(g, n, block, pointwise))) return 0;
  const producers = g.producers();
  const out: Node[] = [];
  const blocked = new Map<string, string>(); // NCHW value → its ReorderInput output (this pass's or an earlier one's)
  const { ints, emit, reorderOutput } = nchwcWriter(g, out);
  const reorderInput = (v: string): string => emit('ReorderInput', [v], {}, NCHWC_DOMAIN);
  /**
   * W [K, C, kh, kw] in the kernel's layout. MLAS's ReorderInput (threaded, vectorised) does the heavy part: W seen as
   * K/B images of B channels and C·kh·kw rows is OIHWBo; OIHWBiBo then only swaps the taps with Bi, moving B-float
   * runs (a generic Transpose moving single floats took ~2× as long). For ops/conv.ts's dX weight
   * Transpose(flip(U), [1, 0, 2, 3]), U itself seen as images of K channels is [C/B, Bi, K/B, taps, Bo] and the flip
   * is a reversal of the taps axis of B·B-float runs, after the Transpose: the standard Slice and Transpose of the
   * weight do not run.
   */
  const weight = (w: string, [K, C, kh, kw]: number[]): string => {
    const taps = kh! * kw!;
    const t = producers.get(w);
    let u: string | undefined;
    let flip = false;
    if (t?.op === 'Transpose' && (t.domain ?? '') === '' && attrInts(t, 'perm', []).join() === '1,0,2,3') {
      u = t.inputs[0]!;
      const f = producers.get(u);
      if (f && isFlip(g, f, kh!, kw!)) [u, flip] = [f.inputs[0]!, true];
    }
    let r: string;
    if (u) {
      // ReorderInput(U): [C, K/B, taps, Bo] with U[c, k] = W[k, c]
      const ru = emit('Reshape', [reorderInput(u), ints(C! % block === 0 ? [C! / block, block, K! / block, taps, block] : [C!, K! / block, taps, block])]);
      r = emit('Transpose', [ru], { perm: C! % block === 0 ? [2, 0, 3, 1, 4] : [1, 0, 2, 3] });
      if (flip) r = emit('Slice', [r, ints([-1]), ints([-taps - 1]), ints([2]), ints([-1])]);
    } else {
      r = reorderInput(emit('Reshape', [w, ints([K! / block, block, C! * taps, 1])])); // OIHWBo
      if (C! % block === 0 && taps > 1)
        r = emit('Transpose', [emit('Reshape', [r, ints([K! / block, C! / block, block, taps, block])])], { perm: [0, 1, 3, 2, 4] });
    }
    return emit('Reshape', [r, ints([K!, C!, kh!, kw!])]);
  };
  let count = 0;
  for (const n of g.nodes) {
    if (n.op === 'ReorderInput' && n.domain === NCHWC_DOMAIN && !blocked.has(n.inputs[0]!)) blocked.set(n.inputs[0]!, n.outputs[0]!);
    if (!isNchwcDense(g, n, block, pointwise)) {
      out.push(n);
      continue;
    }
    const [x, w, bias] = n.inputs as [string, string, string | undefined];
    const ws = g.info(w)!.shape as number[];
    let xb = x;
    if (ws[1]! % block === 0) {
      xb = blocked.get(x) ?? emit('ReorderInput', [x], {}, NCHWC_DOMAIN);
      blocked.set(x, xb);
    }
    const conv = emit('Conv', [xb, weight(w, ws), ...(bias ? [bias] : [])], nchwcAttrs(n), NCHWC_DOMAIN);
    reorderOutput(conv, n.outputs[0]!, ws[0]!);
    count++;
  }
  // the dX weights' standard Transposes are no longer read
  finishNchwc(model, out);
  return count;
}

/** Is `n` ops/conv.ts's kernel flip, Slice(w, starts −1, ends −k−1, axes [2, 3], steps −1), of a [·, ·, kh, kw] weight? */
function isFlip(g: Graph, n: Node, kh: number, kw: number): boolean {
  if (n.op !== 'Slice' || (n.domain ?? '') !== '' || n.inputs.length !== 5) return false;
  const v = n.inputs.slice(1).map((i) => g.initializers.get(i!)?.toNumbers().join());
  return v[0] === '-1,-1' && v[1] === `${-kh - 1},${-kw - 1}` && v[2] === '2,3' && v[3] === '-1,-1';
}
