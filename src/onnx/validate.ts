/** Checker-style validation of a decoded model: the structural rules onnx.checker enforces that matter to graft. */
import type { Model } from '../ir/model.js';

/** Throws one error naming the first problem found (file, node, value) and how to fix it. */
export function validateModel(model: Model, where = 'model'): void {
  const g = model.graph;
  const defined = new Set<string>(['']);
  for (const k of g.initializers.keys()) defined.add(k);
  for (const v of g.inputs) {
    if (!v.name) throw new Error(`${where}: a graph input has no name. Re-export the model.`);
    defined.add(v.name);
  }
  const produced = new Set<string>();
  for (const n of g.nodes) {
    if (!n.op) throw new Error(`${where}: node "${n.name}" has no op type; the file is corrupt. Re-export it.`);
    for (const o of n.outputs) {
      if (!o) continue;
      if (produced.has(o) || g.initializers.has(o) || g.inputs.some((v) => v.name === o))
        throw new Error(`${where}: value "${o}" is produced twice (again by node "${n.name}", ${n.op}); ONNX requires single assignment. Re-export the model.`);
      produced.add(o);
    }
  }
  // Topological order is not required on load (we sort), but every input must exist somewhere.
  for (const n of g.nodes)
    for (const i of n.inputs)
      if (!defined.has(i) && !produced.has(i))
        throw new Error(
          `${where}: node "${n.name}" (${n.op}) reads "${i}", which is neither a graph input, an initializer nor a node output. The file is corrupt or was cut; re-export it.`,
        );
  for (const o of g.outputs)
    if (!defined.has(o.name) && !produced.has(o.name)) throw new Error(`${where}: graph output "${o.name}" is not produced by any node. Re-export the model.`);
  g.topoSort();
}
