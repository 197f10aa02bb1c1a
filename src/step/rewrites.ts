/**
 * Exact graph rewrites that make a training step cheaper without changing what it computes.
 *
 * Pool before activation: MaxPool(Relu(x)) = Relu(MaxPool(x)) exactly (ReLU is monotone, so it commutes with a max),
 * and the right-hand side runs the ReLU and its backward mask on the pooled tensor, a quarter of the size for a 2×2
 * pool. The gradient is the same as PyTorch's for the original order: where the window's max is positive both send dY
 * to the first argmax; where it is ≤ 0 both give zero (PyTorch's ReLU mask kills it after the pool routes it).
 *
 * Accumulating Gemm: Add(Gemm(A, B), c·X) = Gemm(A, B, X, beta = c), standard ONNX, one pass fewer (see {@link gemmAccumulate}).
 */
import { Emitter } from '../ir/emit.js';
import { attrInts, attrString, type Graph, type Node } from '../ir/graph.js';
import { DEFAULT_OPSET } from '../ir/model.js';
import { registerStandardOps } from '../ops/index.js';
import { padAmounts, padAxes } from '../ops/tensor-ops.js';

/**
 * Swaps every Relu → MaxPool pair whose ReLU output feeds only that MaxPool (and is not a graph output), in place.
 * The MaxPool's output name stays the value the rest of the graph reads. Returns the number of pairs swapped.
 */
export function poolBeforeRelu(graph: Graph): number {
  const consumers = graph.consumers();
  const producers = graph.producers();
  const outputs = new Set(graph.outputs.map((v) => v.name));
  let swapped = 0;
  for (const pool of graph.nodes) {
    if (pool.op !== 'MaxPool' || pool.outputs.length !== 1 || (pool.domain ?? '') !== '') continue;
    const act = producers.get(pool.inputs[0]!);
    const mid = pool.inputs[0]!;
    if (act?.op !== 'Relu' || (act.domain ?? '') !== '' || outputs.has(mid) || consumers.get(mid)?.length !== 1) continue;
    const y = pool.outputs[0]!;
    const pooled = graph.fresh(`${pool.name}/pooled`);
    pool.inputs[0] = act.inputs[0]!;
    pool.outputs[0] = pooled;
    act.inputs[0] = pooled;
    act.outputs[0] = y;
    graph.valueInfo.delete(mid);
    const info = graph.valueInfo.get(y);
    if (info) graph.valueInfo.set(pooled, { ...info, name: pooled });
    swapped++;
  }
  if (swapped) graph.topoSort();
  return swapped;
}

/**
 * Folds a constant zero Pad over the spatial axes into the pads of the Conv nodes that read it (Keras's ZeroPadding2D
 * before a strided conv, as in MobileNet): Conv pads with zeros itself, so the result is identical, and the step
 * loses a full-size copy forward and a full-size Slice of its gradient backward. In a training graph onnxruntime
 * cannot fuse it itself, since the dW of the Conv also reads the padded tensor. Returns the number of Pads folded.
 */
export function foldPadIntoConv(graph: Graph, opset = DEFAULT_OPSET): number {
  registerStandardOps();
  const ctx = new Emitter(graph, opset);
  const consumers = graph.consumers();
  const outputs = new Set(graph.outputs.map((v) => v.name));
  const drop = new Set<object>();
  for (const pad of graph.nodes) {
    if (pad.op !== 'Pad' || (pad.domain ?? '') !== '' || attrString(pad, 'mode', 'constant') !== 'constant') continue;
    const amounts = padAmounts(pad, ctx);
    // without an axes input the amounts cover every axis, so they give the rank when shapes are unknown
    const rank = ctx.rank(pad.inputs[0]!) ?? (amounts && !pad.inputs[3] ? amounts.length / 2 : undefined);
    const axes = rank === undefined ? undefined : padAxes(pad, rank, ctx);
    const fill = pad.inputs[2] ? ctx.constant(pad.inputs[2])?.toNumbers()[0] : Number(pad.attrs.value ?? 0);
    if (rank === undefined || rank < 3 || !amounts || !axes || fill !== 0 || amounts.some((v) => v < 0)) continue;
    // per-axis [begin, end] over all axes
    const begin = Array<number>(rank).fill(0);
    const end = Array<number>(rank).fill(0);
    axes.forEach((a, i) => {
      begin[a] = amounts[i]!;
      end[a] = amounts[i + axes.length]!;
    });
    if (begin[0] || begin[1] || end[0] || end[1]) continue; // batch or channel padding
    const y = pad.outputs[0]!;
    const users = consumers.get(y) ?? [];
    const convs = users.every((c) => c.op === 'Conv' && (c.domain ?? '') === '' && c.inputs[0] === y && !c.inputs.slice(1).includes(y));
    if (!users.length || !convs || outputs.has(y)) continue;
    if (users.some((c) => !['NOTSET', ''].includes(attrString(c, 'auto_pad', 'NOTSET')))) continue;
    const s = rank - 2;
    for (const conv of users) {
      const cp = attrInts(conv, 'pads', Array(2 * s).fill(0));
      // a new attrs object: builders may share one between nodes
      conv.attrs = { ...conv.attrs, pads: Array.from({ length: 2 * s }, (_, i) => cp[i]! + (i < s ? begin[2 + i]! : end[2 + i - s]!)) };
      conv.inputs[0] = pad.inputs[0]!;
    }
    drop.add(pad);
  }
  // the Pad's own pads/value initializers are left for the step's final prune
  if (drop.size) graph.nodes = graph.nodes.filter((n) => !drop.has(n));
  return drop.size;
}

/** The value of a float32 scalar (one-element) initializer, or undefined. */
function scalarConstant(graph: Graph, name: string): number | undefined {
  const t = graph.initializers.get(name);
  return t && t.dtype === 'float32' && t.size === 1 ? (t.data as Float32Array)[0] : undefined;
}

/**
 * Folds `Add(Gemm(A, B), c·X)` (either order; `c·X` a Mul by a float32 scalar constant, or a plain X with c = 1) into
 * the Gemm's own accumulator: `Gemm(A, B, C = X, beta = c)`. This is how a weight gradient meets its optimizer state:
 * SGD's momentum `μ·buf + dW` and its weight decay `dW + λ·p` each become the dW Gemm writing onto the buffer, so the
 * update loses one full pass over the parameter (and a temporary) per fold. Standard ONNX; onnxruntime's Gemm
 * computes `A·B + beta·C` in one kernel, with the same products and one rounding of the sum (a test compares it
 * with the two-op form). Only Gemms without a C input whose output feeds that Add alone, with X shaped exactly as
 * the Gemm's [M, N] output (no broadcast), are folded. Returns the number of folds.
 */
export function gemmAccumulate(graph: Graph): number {
  const producers = graph.producers();
  const consumers = graph.consumers();
  const outputs = new Set(graph.outputs.map((v) => v.name));
  const std = (n: Node | undefined, op: string) => n?.op === op && (n.domain ?? '') === '';
  const sameShape = (a: string, b: string) => {
    const x = graph.info(a)?.shape;
    const y = graph.info(b)?.shape;
    return !!x && !!y && x.length === 2 && y.length === 2 && x.every((d, i) => typeof d === 'number' && d === y[i]);
  };
  const drop = new Set<Node>();
  for (const add of graph.nodes) {
    if (!std(add, 'Add') || add.inputs.length !== 2 || add.inputs[0] === add.inputs[1]) continue;
    for (const side of [0, 1]) {
      const g = add.inputs[side]!;
      const other = add.inputs[1 - side]!;
      const gemm = producers.get(g);
      if (!std(gemm, 'Gemm') || gemm!.inputs.length !== 2 || drop.has(gemm!) || outputs.has(g) || consumers.get(g)?.length !== 1) continue;
      if (graph.info(g)?.dtype !== 'float32' || !sameShape(g, other) || !sameShape(g, add.outputs[0]!)) continue;
      let c = other;
      let beta = 1;
      const mul = producers.get(other);
      if (std(mul, 'Mul') && !drop.has(mul!) && !outputs.has(other) && consumers.get(other)?.length === 1) {
        const [m0, m1] = mul!.inputs as [string, string];
        const k0 = scalarConstant(graph, m0);
        const k1 = scalarConstant(graph, m1);
        if (k0 !== undefined && sameShape(g, m1)) [c, beta] = [m1, k0];
        else if (k1 !== undefined && sameShape(g, m0)) [c, beta] = [m0, k1];
        if (c !== other) drop.add(mul!);
      }
      gemm!.inputs = [...gemm!.inputs, c];
      gemm!.attrs = { ...gemm!.attrs, beta };
      gemm!.outputs = [add.outputs[0]!];
      graph.valueInfo.delete(g);
      drop.add(add);
      break;
    }
  }
  if (!drop.size) return 0;
  graph.nodes = graph.nodes.filter((n) => !drop.has(n));
  graph.topoSort();
  return [...drop].filter((n) => n.op === 'Add').length;
}
