/**
 * Exact graph rewrites that make a training step cheaper without changing what it computes.
 *
 * Pool before activation: MaxPool(Relu(x)) = Relu(MaxPool(x)) exactly (ReLU is monotone, so it commutes with a max),
 * and the right-hand side runs the ReLU and its backward mask on the pooled tensor, a quarter of the size for a 2×2
 * pool. The gradient is the same as PyTorch's for the original order: where the window's max is positive both send dY
 * to the first argmax; where it is ≤ 0 both give zero (PyTorch's ReLU mask kills it after the pool routes it).
 */
import { Emitter } from '../ir/emit.js';
import { attrInts, attrString, type Graph } from '../ir/graph.js';
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
