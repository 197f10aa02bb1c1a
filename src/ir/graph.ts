/**
 * The graph IR: ONNX's own shape (named values, nodes, initializers), held as plain mutable
 * objects so passes (autodiff, surgery, folding) can edit it, then serialized back to ONNX.
 */
import type { DType, Tensor } from '../tensor.js';

/** A dimension: a number when static, a name (e.g. "N") when symbolic, null when unknown. */
export type Dim = number | string | null;

/** Type and shape of a value. `shape` undefined means the rank is unknown. */
export interface ValueInfo {
  name: string;
  dtype: DType;
  shape?: Dim[];
}

/** An attribute value. Numbers are written as INT unless the name is a known float attribute (see FLOAT_ATTRS). */
export type AttrValue = number | string | number[] | string[] | Tensor | Graph;

/** One ONNX node. */
export interface Node {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, AttrValue>;
  name: string;
  domain?: string;
}

/** Attribute names that ONNX defines as FLOAT/FLOATS on the standard ops graft emits or reads. */
export const FLOAT_ATTRS = new Set([
  'alpha',
  'beta',
  'gamma',
  'epsilon',
  'momentum',
  'ratio',
  'bias',
  'lambd',
  'value_float',
  'value_floats',
  'scale',
  'scales',
  'spatial_scale',
  'min',
  'max',
  'seed',
  'low',
  'high',
  'mean',
  'extrapolation_value',
  'cubic_coeff_a',
]);

export class Graph {
  name = 'graph';
  nodes: Node[] = [];
  inputs: ValueInfo[] = [];
  outputs: ValueInfo[] = [];
  initializers = new Map<string, Tensor>();
  /** Inferred or declared types of intermediate values. */
  valueInfo = new Map<string, ValueInfo>();
  private counter = 0;

  private used?: Set<string>;

  /** A value or node name that is not used anywhere in the graph yet. */
  fresh(base: string): string {
    if (!this.used) {
      this.used = new Set([...this.initializers.keys(), ...this.valueInfo.keys(), ...this.inputs.map((v) => v.name)]);
      for (const n of this.nodes) {
        this.used.add(n.name);
        for (const o of n.outputs) this.used.add(o);
      }
    }
    const clean = base.replace(/[^A-Za-z0-9_.:/-]/g, '_');
    for (;;) {
      const name = `${clean}__${this.counter++}`;
      if (!this.used.has(name)) {
        this.used.add(name);
        return name;
      }
    }
  }

  /** True if any input, output, initializer or node output has this name. */
  has(name: string): boolean {
    if (this.initializers.has(name) || this.valueInfo.has(name)) return true;
    if (this.inputs.some((v) => v.name === name)) return true;
    return this.nodes.some((n) => n.outputs.includes(name));
  }

  addNode(op: string, inputs: string[], outputs: string[], attrs: Record<string, AttrValue> = {}, name?: string): Node {
    const node: Node = { op, inputs, outputs, attrs, name: name ?? this.fresh(op) };
    this.nodes.push(node);
    return node;
  }

  /** Adds (or replaces) an initializer. */
  addInitializer(name: string, t: Tensor): string {
    this.initializers.set(name, t);
    return name;
  }

  /** Type/shape of a value if known. */
  info(name: string): ValueInfo | undefined {
    return (
      this.valueInfo.get(name) ??
      this.inputs.find((v) => v.name === name) ??
      this.outputs.find((v) => v.name === name) ??
      initInfo(name, this.initializers.get(name))
    );
  }

  /** Map value name → the node that produces it. */
  producers(): Map<string, Node> {
    const m = new Map<string, Node>();
    for (const n of this.nodes) for (const o of n.outputs) if (o) m.set(o, n);
    return m;
  }

  /** Map value name → nodes that consume it. */
  consumers(): Map<string, Node[]> {
    const m = new Map<string, Node[]>();
    for (const n of this.nodes)
      for (const i of n.inputs) {
        if (!i) continue;
        const list = m.get(i);
        if (list) list.push(n);
        else m.set(i, [n]);
      }
    return m;
  }

  /** Sorts nodes topologically in place; throws naming a value that nothing produces, or a cycle. */
  topoSort(): void {
    const available = new Set<string>(['', ...this.initializers.keys(), ...this.inputs.map((v) => v.name)]);
    const pending = new Set(this.nodes);
    const ordered: Node[] = [];
    const producers = this.producers();
    const consumers = this.consumers();
    const missing = new Map<Node, number>();
    const ready: Node[] = [];
    for (const n of this.nodes) {
      const need = new Set(n.inputs.filter((i) => !available.has(i)));
      for (const i of need)
        if (!producers.has(i))
          throw new Error(`Node "${n.name}" (${n.op}) reads "${i}", which no node, input or initializer provides. Fix the graph or add the input.`);
      missing.set(n, need.size);
      if (need.size === 0) ready.push(n);
    }
    const seen = new Set<string>();
    while (ready.length) {
      const n = ready.shift()!;
      pending.delete(n);
      ordered.push(n);
      for (const o of n.outputs) {
        if (!o || seen.has(o)) continue;
        seen.add(o);
        for (const c of consumers.get(o) ?? []) {
          if (available.has(o)) continue;
          const distinct = countOccurrences(c.inputs, o);
          const left = missing.get(c)! - (distinct > 0 ? 1 : 0);
          missing.set(c, left);
          if (left === 0) ready.push(c);
        }
      }
    }
    if (pending.size) {
      const n = [...pending][0]!;
      throw new Error(`Graph has a cycle through node "${n.name}" (${n.op}); ONNX graphs must be acyclic.`);
    }
    this.nodes = ordered;
  }

  /** Removes nodes and initializers that do not contribute to the graph outputs. */
  prune(): void {
    const needed = new Set(this.outputs.map((o) => o.name));
    const keep: Node[] = [];
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      const n = this.nodes[i]!;
      if (n.outputs.some((o) => needed.has(o))) {
        keep.push(n);
        for (const inp of n.inputs) if (inp) needed.add(inp);
      }
    }
    this.nodes = keep.reverse();
    for (const k of [...this.initializers.keys()]) if (!needed.has(k)) this.initializers.delete(k);
    for (const k of [...this.valueInfo.keys()]) if (!needed.has(k)) this.valueInfo.delete(k);
    this.inputs = this.inputs.filter((v) => needed.has(v.name) || this.initializers.has(v.name));
  }

  /** Renames a value everywhere (inputs, outputs, nodes, initializers). */
  rename(from: string, to: string): void {
    const r = (s: string) => (s === from ? to : s);
    for (const n of this.nodes) {
      n.inputs = n.inputs.map(r);
      n.outputs = n.outputs.map(r);
    }
    for (const v of [...this.inputs, ...this.outputs]) v.name = r(v.name);
    const t = this.initializers.get(from);
    if (t) {
      this.initializers.delete(from);
      this.initializers.set(to, t);
    }
    const vi = this.valueInfo.get(from);
    if (vi) {
      this.valueInfo.delete(from);
      this.valueInfo.set(to, { ...vi, name: to });
    }
  }

  /** A deep-enough copy: nodes, lists and maps are new; tensors are shared (treat them as immutable). */
  clone(): Graph {
    const g = new Graph();
    g.name = this.name;
    g.nodes = this.nodes.map((n) => ({ ...n, inputs: [...n.inputs], outputs: [...n.outputs], attrs: { ...n.attrs } }));
    g.inputs = this.inputs.map((v) => ({ ...v, shape: v.shape ? [...v.shape] : undefined }));
    g.outputs = this.outputs.map((v) => ({ ...v, shape: v.shape ? [...v.shape] : undefined }));
    g.initializers = new Map(this.initializers);
    g.valueInfo = new Map([...this.valueInfo].map(([k, v]) => [k, { ...v, shape: v.shape ? [...v.shape] : undefined }]));
    g.counter = this.counter;
    return g;
  }

  /** Number of scalar parameters held in float initializers. */
  parameterCount(names?: Iterable<string>): number {
    let n = 0;
    const list = names ? [...names].map((k) => this.initializers.get(k)) : [...this.initializers.values()];
    for (const t of list) if (t && t.dtype === 'float32' && t.dims.length > 0) n += t.size;
    return n;
  }
}

function countOccurrences(list: string[], v: string): number {
  let c = 0;
  for (const x of list) if (x === v) c++;
  return c;
}

function initInfo(name: string, t: Tensor | undefined): ValueInfo | undefined {
  return t ? { name, dtype: t.dtype, shape: [...t.dims] } : undefined;
}

/** Attribute helpers with defaults. */
export function attrInt(n: Node, key: string, def: number): number {
  const v = n.attrs[key];
  return typeof v === 'number' ? v : def;
}
export function attrFloat(n: Node, key: string, def: number): number {
  return attrInt(n, key, def);
}
export function attrInts(n: Node, key: string, def: number[]): number[] {
  const v = n.attrs[key];
  return Array.isArray(v) ? (v as number[]) : def;
}
export function attrString(n: Node, key: string, def: string): string {
  const v = n.attrs[key];
  return typeof v === 'string' ? v : def;
}
