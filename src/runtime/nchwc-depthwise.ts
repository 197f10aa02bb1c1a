/**
 * Depthwise Convs onto onnxruntime's NCHWc depthwise kernel, for CPU sessions of training graphs.
 *
 * onnxruntime's graph optimizer turns a depthwise Conv into its fast blocked ("NCHWc") kernel only when the weight is
 * a constant initializer, because it reorders the weight once at load time. A training step's depthwise weights are
 * graph inputs, and so are the "weights" of the gradient Convs (dX: the flipped weight; dW: dY itself, see
 * ops/conv.ts), so all of them ran on the generic per-group kernel, 1.3–10× slower (bench/nchwc-depthwise.ts).
 * The kernel itself (`com.microsoft.nchwc` Conv, onnxruntime/contrib_ops/cpu/nchwc_ops.cc) reads its weight on every
 * run, so a weight reordered inside the graph works the same: for a depthwise weight [G, 1, kh, kw] the blocked
 * layout it wants (OIHWBo: [G/B, 1, kh, kw, B]) is exactly what `ReorderInput` makes of the same data seen as one
 * image [1, G, kh, kw]. So each depthwise Conv becomes
 *
 *   ReorderInput(x) → nchwc Conv(·, Reshape(ReorderInput(Reshape(w, [1, G, kh, kw])), [G, 1, kh, kw]), b) → ReorderOutput
 *
 * which computes the same sums in another order (float32 rounding differs, ~1e-7 relative; test/runtime/nchwc.test.ts
 * compares it with the standard Conv). A tensor's blocked form does not depend on how its N·C channel images are
 * split between the batch and channel axes while both channel counts are multiples of B, so a blocked copy is shared
 * through Reshapes: dW's X ([1, N·C, H, W]) is the forward Conv's blocked input, and dW's dY kernels are dX's blocked
 * dY. Only a copy of the graph handed to onnxruntime is rewritten (runtime/session.ts): models graft stores or
 * exports keep standard ONNX.
 *
 * The block size B is the CPU's (16 with AVX-512, 8 with AVX2); runtime/session.ts asks onnxruntime for it.
 */
import type { Dim, Graph, Node } from '../ir/graph.js';
import { attrInt, attrInts, attrString } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import { Tensor } from '../tensor.js';

/** The domain of onnxruntime's NCHWc kernels (CPU provider, x64 and arm64 builds). */
export const NCHWC_DOMAIN = 'com.microsoft.nchwc';

const dimsOf = (g: Graph, v: string): Dim[] | undefined => g.info(v)?.shape;
const known = (d: Dim | undefined): d is number => typeof d === 'number';

/** A shape as a Reshape target: its one unknown dimension (if any) as -1; undefined when more than one is unknown. */
function target(shape: Dim[]): number[] | undefined {
  if (shape.filter((d) => !known(d)).length > 1) return undefined;
  return shape.map((d) => (known(d) ? d : -1));
}

/**
 * Is `n` a standard 2-D depthwise Conv (W [G, 1, kh, kw], group G, G a multiple of `block`) whose weight is not a
 * constant? The batch may be unknown, and so may one kernel dimension (the stacked dW of ops/conv.ts).
 */
function isDepthwise(g: Graph, n: Node, block: number): boolean {
  if (n.op !== 'Conv' || (n.domain ?? '') !== '' || n.outputs.length !== 1) return false;
  if (!['NOTSET', ''].includes(attrString(n, 'auto_pad', 'NOTSET'))) return false;
  const [x, w] = n.inputs;
  if (!x || !w || g.initializers.has(w)) return false; // a constant weight gets onnxruntime's own NCHWc rewrite
  const xs = dimsOf(g, x);
  const ws = dimsOf(g, w);
  const G = attrInt(n, 'group', 1);
  if (!xs || !ws || xs.length !== 4 || ws.length !== 4 || !target(ws)) return false;
  return ws[0] === G && ws[1] === 1 && xs[1] === G && G % block === 0;
}

/**
 * Rewrites, in place, every depthwise Conv of `model` whose weight is not a constant into onnxruntime's NCHWc kernel
 * (see the module comment), with blocked copies shared through Reshapes. Returns the number of Convs rewritten.
 * @param block the NCHWc block size of the CPU onnxruntime runs on (> 1, a multiple of 4).
 */
export function nchwcDepthwise(model: Model, block: number): number {
  const g = model.graph;
  if (!g.nodes.some((n) => isDepthwise(g, n, block))) return 0;
  const producers = g.producers();
  const out: Node[] = [];
  const blocked = new Map<string, string>(); // NCHW value → its ReorderInput output
  const { ints, emit, reorderOutput } = nchwcWriter(g, out);
  const blockOf = (src: string): string => {
    let b = blocked.get(src);
    if (!b) {
      b = emit('ReorderInput', [src], {}, NCHWC_DOMAIN);
      blocked.set(src, b);
    }
    return b;
  };
  /**
   * ops/conv.ts's stacked dW operands, Reshape(Pad?(Transpose(u, [1, 0, 2, 3]), rows only)), with u [N, C, H, W] and C a
   * multiple of the block, made from u's blocked form: [N, C/B, H, W·B] → Transpose → the same Pad, which is the
   * blocked form of the stacked image. Two passes over u's shared blocked copy instead of three over u.
   */
  const stacked = (v: string, shape: Dim[]): string | undefined => {
    const r = producers.get(v);
    if (r?.op !== 'Reshape' || (r.domain ?? '') !== '') return undefined;
    let t = producers.get(r.inputs[0]!);
    let pad: Node | undefined;
    if (t?.op === 'Pad' && (t.domain ?? '') === '' && attrString(t, 'mode', 'constant') === 'constant' && !t.inputs[2] && !t.inputs[3]) {
      const amounts = g.initializers.get(t.inputs[1]!)?.toNumbers();
      if (amounts?.length !== 8 || amounts.some((a, i) => a !== 0 && i % 4 !== 2)) return undefined;
      pad = t;
      t = producers.get(t.inputs[0]!);
    }
    if (t?.op !== 'Transpose' || (t.domain ?? '') !== '' || attrInts(t, 'perm', []).join() !== '1,0,2,3') return undefined;
    const u = t.inputs[0]!;
    const us = dimsOf(g, u);
    if (us?.length !== 4 || !known(us[1]) || us[1] % block !== 0 || !known(us[2]) || !known(us[3])) return undefined;
    const view = emit('Reshape', [blockOf(u), ints([-1, us[1] / block, us[2], us[3] * block])]);
    const swapped = emit('Transpose', [view], { perm: [1, 0, 2, 3] });
    return emit('Reshape', [pad ? emit('Pad', [swapped, pad.inputs[1]!]) : swapped, ints(target(shape)!)]);
  };
  /** The blocked form of the 4-D value `v` seen as `shape` (its element order unchanged), shared through Reshapes. */
  const reorder = (v: string, shape: Dim[]): string => {
    const fromStack = stacked(v, shape);
    if (fromStack) return fromStack;
    // a value's blocked form, seen as another split of the same channel images, is the same data
    const fits = (s: Dim[] | undefined) => !!s && s.length === 4 && known(s[1]) && s[1] % block === 0 && known(s[2]) && s[2] === shape[2] && s[3] === shape[3];
    let src = v;
    for (;;) {
      const p = producers.get(src);
      // only Reshapes to a constant shape: one to a computed shape may be there for its order (the ReLU6 masks'
      // alias, step/mode.ts, makes the mask run in the forward so the Clip's input is freed early)
      if (p?.op !== 'Reshape' || (p.domain ?? '') !== '' || !g.initializers.has(p.inputs[1]!) || !fits(dimsOf(g, p.inputs[0]!))) break;
      src = p.inputs[0]!;
    }
    // a value that is not itself an image of whole blocks (a weight [G, 1, kh, kw]) is reordered as `shape`
    const whole = fits(dimsOf(g, src));
    if (!whole) src = v;
    let b = blocked.get(src);
    if (!b) {
      b = emit('ReorderInput', [whole ? src : emit('Reshape', [v, ints(target(shape)!)])], {}, NCHWC_DOMAIN);
      blocked.set(src, b);
    }
    const have = dimsOf(g, src)!;
    return whole && have.every((d, i) => d === shape[i]) ? b : emit('Reshape', [b, ints(target(shape)!)]);
  };
  let count = 0;
  for (const n of g.nodes) {
    if (!isDepthwise(g, n, block)) {
      out.push(n);
      continue;
    }
    const [x, w, bias] = n.inputs as [string, string, string | undefined];
    const [G, , kh, kw] = dimsOf(g, w)! as [number, number, Dim, Dim];
    const wb = reorder(w, [1, G, kh, kw]);
    const wr = emit('Reshape', [wb, ints(target([G, 1, kh, kw])!)]);
    const conv = emit('Conv', [reorder(x, dimsOf(g, x)!), wr, ...(bias ? [bias] : [])], nchwcAttrs(n), NCHWC_DOMAIN);
    reorderOutput(conv, n.outputs[0]!, G);
    count++;
  }
  // the standard operands the rewritten Convs no longer read (dW's channel-major copies) would still run: drop dead nodes
  finishNchwc(model, out);
  return count;
}

/** `nodes` (in order) without those whose outputs nothing reads: no graph output, no later node's input. */
export function dropDeadNodes(g: Graph, nodes: Node[]): Node[] {
  const live = new Set(g.outputs.map((v) => v.name));
  const kept: Node[] = [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i]!;
    if (!n.outputs.some((o) => live.has(o))) continue;
    kept.push(n);
    for (const v of n.inputs) if (v) live.add(v);
  }
  return kept.reverse();
}

/** The standard Conv's attributes as the NCHWc Conv takes them (explicit kernel_shape, no auto_pad). */
export function nchwcAttrs(n: Node): Node['attrs'] {
  const a: Node['attrs'] = { group: attrInt(n, 'group', 1) };
  for (const k of ['kernel_shape', 'strides', 'dilations', 'pads']) {
    const v = attrInts(n, k, []);
    if (v.length) a[k] = v;
  }
  return a;
}

/**
 * The two node writers the NCHWc rewrites share: `ints` adds an int64 shape initializer, `emit` appends one node (in
 * `domain`, standard by default) to `out` and returns its one output.
 */
export function nchwcWriter(g: Graph, out: Node[]) {
  const ints = (v: number[]): string => {
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
  /** Appends the ReorderOutput that gives the blocked `conv` back as the NCHW value `y` of `channels` channels. */
  const reorderOutput = (conv: string, y: string, channels: number): void => {
    out.push({ op: 'ReorderOutput', inputs: [conv], outputs: [y], attrs: { channels }, domain: NCHWC_DOMAIN, name: g.fresh('nchwc/ReorderOutput_node') });
  };
  return { ints, emit, reorderOutput };
}

/** Ends an NCHWc rewrite of `model` whose new node list is `out`: drops the nodes nothing reads any more, declares the domain. */
export function finishNchwc(model: Model, out: Node[]): void {
  model.graph.nodes = dropDeadNodes(model.graph, out);
  if (!model.otherOpsets.some((o) => o.domain === NCHWC_DOMAIN)) model.otherOpsets = [...model.otherOpsets, { domain: NCHWC_DOMAIN, version: 1 }];
}
