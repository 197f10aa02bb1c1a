/**
 * Pool before activation: MaxPool(Relu(x)) = Relu(MaxPool(x)) exactly (ReLU is monotone, so it commutes with a max),
 * and the right-hand side runs the ReLU and its backward mask on the pooled tensor, a quarter of the size for a 2×2
 * pool. The gradient is the same as PyTorch's for the original order: where the window's max is positive both send dY
 * to the first argmax; where it is ≤ 0 both give zero (PyTorch's ReLU mask kills it after the pool routes it).
 */
import type { Graph } from '../ir/graph.js';

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
