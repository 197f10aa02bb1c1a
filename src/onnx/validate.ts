/** Checker-style validation of a decoded model: the structural rules onnx.checker enforces that matter to graft. */
import type { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';

const OP_TYPE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A value or node name quoted for an error message (control characters escaped, long names shortened). */
function q(s: string): string {
  return JSON.stringify(s.length > 60 ? `${s.slice(0, 57)}...` : s);
}

/**
 * Throws one error naming the first problem found (file, node, value) and how to fix it.
 * Catches what a truncated or corrupt file leaves behind even when protobuf decoding succeeds:
 * an empty graph, nameless values, garbage op types, reads of undefined values, outputs nothing produces.
 * Nodes are put in topological order if they are not already (an already-sorted file keeps its order).
 */
export function validateModel(model: Model, where = 'model'): void {
  const g = model.graph;
  const cut = 'The file is corrupt or was cut short; re-export or re-download it.';
  if (g.nodes.length === 0) throw new Error(`${where}: the graph has no nodes, so it computes nothing. ${cut}`);
  if (g.outputs.length === 0) throw new Error(`${where}: the graph declares no outputs. ${cut}`);
  const defined = new Set<string>(['']);
  for (const k of g.initializers.keys()) defined.add(k);
  for (const v of g.inputs) {
    if (!v.name) throw new Error(`${where}: a graph input has no name. ${cut}`);
    if (defined.has(v.name)) throw new Error(`${where}: graph input ${q(v.name)} is declared twice. Re-export the model.`);
    defined.add(v.name);
  }
  const produced = new Set<string>();
  for (const n of g.nodes) {
    if (!n.op) throw new Error(`${where}: node ${q(n.name)} has no op type. ${cut}`);
    if (!OP_TYPE.test(n.op)) throw new Error(`${where}: node ${q(n.name)} has an invalid op type ${q(n.op)}. ${cut}`);
    for (const o of n.outputs) {
      if (!o) continue;
      if (produced.has(o) || defined.has(o))
        throw new Error(
          `${where}: value ${q(o)} is produced twice (again by node ${q(n.name)}, ${n.op}); ONNX requires single assignment. Re-export the model.`,
        );
      produced.add(o);
    }
  }
  for (const n of g.nodes)
    for (const i of n.inputs)
      if (!defined.has(i) && !produced.has(i))
        throw new Error(`${where}: node ${q(n.name)} (${n.op}) reads ${q(i)}, which is neither a graph input, an initializer nor a node output. ${cut}`);
  for (const o of g.outputs) {
    if (!o.name) throw new Error(`${where}: a graph output has no name. ${cut}`);
    if (!defined.has(o.name) && !produced.has(o.name)) throw new Error(`${where}: graph output ${q(o.name)} is not produced by any node. ${cut}`);
  }
  if (!isTopological(g)) {
    try {
      g.topoSort();
    } catch (e) {
      throw new Error(`${where}: ${(e as Error).message}`);
    }
  }
}

/** True if every node only reads graph inputs, initializers and outputs of earlier nodes. */
export function isTopological(g: Graph): boolean {
  const ready = new Set<string>(['', ...g.initializers.keys(), ...g.inputs.map((v) => v.name)]);
  for (const n of g.nodes) {
    for (const i of n.inputs) if (!ready.has(i)) return false;
    for (const o of n.outputs) ready.add(o);
  }
  return true;
}
