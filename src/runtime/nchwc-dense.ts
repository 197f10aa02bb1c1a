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
 * ops/conv.ts reads Transpose(flip(W), [1, 0, 2, 3]); that Transpose is folded into the reorder's (one weight-sized
 * pass instead of two). A value read by several rewritten Convs (a ResNet block's input: conv1 and the 1×1 downsample)
 * is reordered once, and so is one the depthwise pass already reordered. The sums are the same in another order
 * (float32 rounding differs, ~1e-6 relative; test/runtime/nchwc-dense.test.ts compares it with the standard Conv).
 */
import type { Dim, Graph, Node } from '../ir/graph.js';
import { attrInt, attrInts, attrString } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import { Tensor } from '../tensor.js';
import { dropDeadNodes, NCHWC_DOMAIN, nchwcAttrs } from './nchwc-depthwise.js';

const known = (d: Dim | undefined): d is number => typeof d === 'number';

/**
 * Is `n` a standard 2-D dense Conv (group 1) whose weight is not a constant, with K a multiple of `block` and C either
 * a multiple of it (blocked input) or below it (NCHW input)? The batch and spatial sizes may be unknown.
 */
export function isNchwcDense(g: Graph, n: Node, block: number): boolean {
  if (n.op !== 'Conv' || (n.domain ?? '') !== '' || n.outputs.length !== 1) return false;
  if (!['NOTSET', ''].includes(attrString(n, 'auto_pad', 'NOTSET')) || attrInt(n, 'group', 1) !== 1) return false;
  const [x, w] = n.inputs;
  if (!x || !w || g.initializers.has(w)) return false; // a constant weight gets onnxruntime's own NCHWc rewrite
  const xs = g.info(x)?.shape;
  const ws = g.info(w)?.shape;
  if (xs?.length !== 4 || ws?.length !== 4 || !ws.every(known)) return false;
  const [K, C] = ws as number[] as [number, number];
  return xs[1] === C && K % block === 0 && (C % block === 0 || C < block);
}

/**
 * Rewrites, in place, every dense Conv of `model` that {@link isNchwcDense} accepts into onnxruntime's NCHWc kernel
 * (see the module comment), sharing blocked copies of inputs. Returns the number of Convs rewritten.
 * @param block the NCHWc block size of the CPU onnxruntime runs on (runtime/nchwc.ts).
 */
export function nchwcDense(model: Model, block: number): number {
  const g = model.graph;
  if (!g.nodes.some((n) => isNchwcDense(g, n, block))) return 0;
  const producers = g.producers();
  const out: Node[] = [];
  const blocked = new Map<string, string>(); // NCHW value → its ReorderInput output (this pass's or an earlier one's)
  const ints = (v: number[]) => {
    const name = g.fresh('nchwc/shape');
    g.addInitializer(name, Tensor.i64([v.length], v));
    return name;
  };
  const emit = (op: string, inputs: string[], attrs: Node['attrs'] = {}, domain = ''): string => {
    const y = g.fresh(`nchwc/${op}`);
    const node: Node = { op, inputs, outputs: [y], attrs, name: g.fresh(`nchwc/${op}_node`) };
    if (domain) node.domain = domain;
    out.push(node);
    return y;
  };
  /** W [K, C, kh, kw] in the kernel's layout, from W itself or, for ops/conv.ts's dX weight, from the untransposed U. */
  const weight = (w: string, [K, C, kh, kw]: number[]): string => {
    const p = producers.get(w);
    const swapped = p?.op === 'Transpose' && (p.domain ?? '') === '' && attrInts(p, 'perm', []).join() === '1,0,2,3';
    let r: string;
    if (C % block === 0) {
      // W[o, i] = U[i, o] when swapped: U's axes come as [C/B, Bi, K/B, Bo, kh, kw]
      r = swapped
        ? emit('Transpose', [emit('Reshape', [p.inputs[0]!, ints([C / block, block, K / block, block, kh!, kw!])])], { perm: [2, 0, 4, 5, 1, 3] })
        : emit('Transpose', [emit('Reshape', [w, ints([K / block, block, C / block, block, kh!, kw!])])], { perm: [0, 2, 4, 5, 3, 1] });
    } else {
      r = swapped
        ? emit('Transpose', [emit('Reshape', [p.inputs[0]!, ints([C, K / block, block, kh!, kw!])])], { perm: [1, 0, 3, 4, 2] })
        : emit('Transpose', [emit('Reshape', [w, ints([K / block, block, C, kh!, kw!])])], { perm: [0, 2, 3, 4, 1] });
    }
    return emit('Reshape', [r, ints([K!, C!, kh!, kw!])]);
  };
  let count = 0;
  for (const n of g.nodes) {
    if (n.op === 'ReorderInput' && n.domain === NCHWC_DOMAIN && !blocked.has(n.inputs[0]!)) blocked.set(n.inputs[0]!, n.outputs[0]!);
    if (!isNchwcDense(g, n, block)) {
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
    out.push({
      op: 'ReorderOutput',
      inputs: [conv],
      outputs: [n.outputs[0]!],
      attrs: { channels: ws[0]! },
      domain: NCHWC_DOMAIN,
      name: g.fresh('nchwc/ReorderOutput_node'),
    });
    count++;
  }
  // the dX weights' standard Transposes are no longer read
  g.nodes = dropDeadNodes(g, out);
  if (!model.otherOpsets.some((o) => o.domain === NCHWC_DOMAIN)) model.otherOpsets = [...model.otherOpsets, { domain: NCHWC_DOMAIN, version: 1 }];
  return count;
}
