/** Which initializers of a model are trainable parameters, which are buffers, and their module paths. */
import type { Graph, Node } from './graph.js';
import type { Model } from './model.js';

/** Input slots that hold constants or statistics, never trainable weights. */
const NON_PARAM_SLOTS: Record<string, number[]> = {
  BatchNormalization: [3, 4],
  Clip: [1, 2],
  Dropout: [1, 2],
  Resize: [1, 2, 3],
  Upsample: [1],
  Pad: [1, 2, 3],
  Range: [0, 1, 2],
  Pow: [1],
};

function graphOf(m: Model | Graph): Graph {
  return 'graph' in m ? m.graph : m;
}

/** Each float initializer with its consumers (node, input slot), in node order. */
function uses(g: Graph): Map<string, { node: Node; slot: number }[]> {
  const m = new Map<string, { node: Node; slot: number }[]>();
  for (const node of g.nodes)
    node.inputs.forEach((name, slot) => {
      const t = g.initializers.get(name);
      if (t?.dtype !== 'float32') return;
      const list = m.get(name);
      if (list) list.push({ node, slot });
      else m.set(name, [{ node, slot }]);
    });
  return m;
}

/**
 * Names of the trainable parameters, in the order the graph first uses them (for graft-built models:
 * PyTorch's `named_parameters()` order): float32 initializers of rank ≥ 1 consumed by some node,
 * except BatchNorm running statistics and constant slots (Clip bounds, Resize scales, …).
 */
export function paramNames(model: Model | Graph): string[] {
  const g = graphOf(model);
  const out: string[] = [];
  for (const [name, list] of uses(g)) {
    if (g.initializers.get(name)!.dims.length === 0) continue;
    if (list.some(({ node, slot }) => !NON_PARAM_SLOTS[node.op]?.includes(slot))) out.push(name);
  }
  return out;
}

/** Names of BatchNorm running statistics (`running_mean`, `running_var`): state but not trained by gradient. */
export function bufferNames(model: Model | Graph): string[] {
  const g = graphOf(model);
  const out = new Set<string>();
  for (const n of g.nodes) if (n.op === 'BatchNormalization') for (const s of [3, 4]) if (g.initializers.has(n.inputs[s] ?? '')) out.add(n.inputs[s]!);
  return [...out];
}

/** Number of trainable scalars (PyTorch's `sum(p.numel() for p in model.parameters())`). */
export function paramCount(model: Model | Graph, names?: Iterable<string>): number {
  const g = graphOf(model);
  let n = 0;
  for (const k of names ?? paramNames(g)) n += g.initializers.get(k)?.size ?? 0;
  return n;
}

const ROLE: Record<string, string[]> = {
  Conv: ['', 'weight', 'bias'],
  ConvTranspose: ['', 'weight', 'bias'],
  Gemm: ['', 'weight', 'bias'],
  MatMul: ['', 'weight'],
  BatchNormalization: ['', 'weight', 'bias', 'running_mean', 'running_var'],
  LayerNormalization: ['', 'weight', 'bias'],
  InstanceNormalization: ['', 'weight', 'bias'],
};

/**
 * A dotted module path for each initializer, like a state_dict key. Hierarchical names
 * ("layer1.0.conv1.weight") are kept; anonymous ones from exporters ("onnx::Conv_193") are named
 * from the consuming node's scope ("/layer1/layer1.0/conv1/Conv" → "layer1.0.conv1.weight").
 */
export function paramPaths(model: Model | Graph, names: Iterable<string> = paramNames(model)): Map<string, string> {
  const g = graphOf(model);
  const u = uses(g);
  const out = new Map<string, string>();
  for (const name of names) {
    if (name.includes('.') && !name.includes('::')) {
      out.set(name, name);
      continue;
    }
    const use = u.get(name)?.[0];
    const scope = use ? scopePath(use.node.name) : '';
    if (!scope || !use) {
      out.set(name, name.replace(/\./g, '_'));
      continue;
    }
    const role = ROLE[use.node.op]?.[use.slot] || `${use.node.op.toLowerCase()}_${use.slot}`;
    out.set(name, `${scope}.${role}`);
  }
  return out;
}

/** "/layer1/layer1.0/conv1/Conv" → "layer1.0.conv1"; '' when the node name carries no scope. */
function scopePath(nodeName: string): string {
  if (!nodeName.startsWith('/')) return '';
  const segs = nodeName.split('/').filter(Boolean).slice(0, -1);
  let path = '';
  for (const s of segs) path = path && !s.startsWith(`${path}.`) ? `${path}.${s}` : s;
  return path;
}
