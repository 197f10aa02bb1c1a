/**
 * Exact graph rewrites that make a training step cheaper without changing what it computes.
 *
 * Pool before activation: MaxPool(Relu(x)) = Relu(MaxPool(x)) exactly (ReLU is monotone, so it commutes with a max),
 * and the right-hand side runs the ReLU and its backward mask on the pooled tensor, a quarter of the size for a 2×2
 * pool. The gradient is the same as PyTorch's for the original order: where the window's max is positive both send dY
 * to the first argmax; where it is ≤ 0 both give zero (PyTorch's ReLU mask kills it after the pool routes it).
 */
import { attrInts, attrString, type Graph } from '../ir/graph.js';

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

/** Integer values of an int64 initializer, or undefined when `name` is not one. */
function constInts(graph: Graph, name: string | undefined): number[] | undefined {
  const t = name ? graph.initializers.get(name) : undefined;
  if (!t || (t.dtype !== 'int64' && t.dtype !== 'int32')) return undefined;
  return Array.from(t.data as ArrayLike<number | bigint>, Number);
}

/** True when the Pad's fill value is zero (no value input, an empty one, or a zero initializer). */
function zeroFill(graph: Graph, name: string | undefined): boolean {
  if (!name) return true;
  const t = graph.initializers.get(name);
  return !!t && t.size === 1 && Number((t.data as ArrayLike<number | bigint>)[0]) === 0;
}

/**
 * Folds a constant zero Pad over the spatial axes into the pads of the Conv nodes that read it (Keras's ZeroPadding2D
 * before a strided conv, as in MobileNet): Conv pads with zeros itself, so the result is identical, and the step
 * loses a full-size copy forward and a full-size Slice of its gradient backward. In a training graph onnxruntime
 * cannot fuse it itself, since the dW of the Conv also reads the padded tensor. Returns the number of Pads folded.
 */
export function foldPadIntoConv(graph: Graph): number {
  const consumers = graph.consumers();
  const outputs = new Set(graph.outputs.map((v) => v.name));
  const drop = new Set<object>();
  for (const pad of graph.nodes) {
    if (pad.op !== 'Pad' || (pad.domain ?? '') !== '' || attrString(pad, 'mode', 'constant') !== 'constant') continue;
    const legacy = pad.inputs.length === 1 && pad.attrs.pads !== undefined;
    const pads = legacy ? attrInts(pad, 'pads', []) : constInts(graph, pad.inputs[1]);
    const zero = legacy ? Number(pad.attrs.value ?? 0) === 0 : zeroFill(graph, pad.inputs[2]) && !pad.inputs[3];
    if (!pads || !zero || pads.length < 6 || pads.some((v) => v < 0)) continue;
    const rank = pads.length / 2;
    if (pads[0] || pads[1] || pads[rank] || pads[rank + 1]) continue; // batch or channel padding
    const y = pad.outputs[0]!;
    const users = consumers.get(y) ?? [];
    const convs = users.every((c) => c.op === 'Conv' && (c.domain ?? '') === '' && c.inputs[0] === y && !c.inputs.slice(1).includes(y));
    if (!users.length || !convs || outputs.has(y)) continue;
    if (users.some((c) => !['NOTSET', ''].includes(attrString(c, 'auto_pad', 'NOTSET')))) continue;
    const s = rank - 2;
    for (const conv of users) {
      const cp = attrInts(conv, 'pads', Array(2 * s).fill(0));
      // a new attrs object: builders may share one between nodes
      conv.attrs = { ...conv.attrs, pads: Array.from({ length: 2 * s }, (_, i) => cp[i]! + (i < s ? pads[2 + i]! : pads[rank + 2 + (i - s)]!)) };
      conv.inputs[0] = pad.inputs[0]!;
    }
    drop.add(pad);
  }
  // the Pad's own pads/value initializers are left for the step's final prune
  if (drop.size) graph.nodes = graph.nodes.filter((n) => !drop.has(n));
  return drop.size;
}
