/** Graph, node, attribute and value-info conversion between graft's IR and ONNX protobuf messages. */
import type onnxProto from 'onnx-proto';
import { type AttrValue, type Dim, FLOAT_ATTRS, Graph, type Node, type ValueInfo } from '../ir/graph.js';
import { Tensor } from '../tensor.js';
import { dtypeFromOnnx, dtypeToOnnx, type ExternalDataOptions, type ExternalSink, num, onnx, tensorFromProto, tensorToProto } from './tensor-proto.js';

type GP = onnxProto.onnx.IGraphProto;
type AP = onnxProto.onnx.IAttributeProto;
type VIP = onnxProto.onnx.IValueInfoProto;
const AT = onnx.AttributeProto.AttributeType;

/** Converts a GraphProto into a Graph (initializers listed as graph inputs are treated as initializers only). */
export function graphFromProto(g: GP, opts: ExternalDataOptions): Graph {
  const where = opts.modelPath ?? 'model';
  if (g.sparseInitializer?.length)
    throw new Error(`${where}: graph "${g.name}" uses sparse initializers, which graft does not read. Convert them to dense tensors before importing.`);
  const graph = new Graph();
  graph.name = g.name || 'graph';
  for (const t of g.initializer ?? []) {
    if (!t.name) throw new Error(`${where}: an initializer has no name; the file is corrupt. Re-export it.`);
    graph.initializers.set(t.name, tensorFromProto(t, opts));
  }
  for (const v of g.input ?? []) if (!graph.initializers.has(v.name ?? '')) graph.inputs.push(valueInfoFromProto(v, opts, 'graph input'));
  for (const v of g.output ?? []) graph.outputs.push(valueInfoFromProto(v, opts, 'graph output'));
  for (const v of g.valueInfo ?? []) {
    try {
      const vi = valueInfoFromProto(v, opts, 'value_info');
      graph.valueInfo.set(vi.name, vi);
    } catch {
      // value_info for types graft does not model (strings, sequences) is advisory only
    }
  }
  let i = 0;
  for (const n of g.node ?? []) {
    const name = n.name || `${n.opType}_${i}`;
    const attrs: Record<string, AttrValue> = {};
    for (const a of n.attribute ?? []) attrs[a.name ?? ''] = attrFromProto(a as AP, opts, name);
    const node: Node = { op: n.opType ?? '', inputs: [...(n.input ?? [])], outputs: [...(n.output ?? [])], attrs, name };
    if (n.domain && n.domain !== 'ai.onnx') node.domain = n.domain;
    graph.nodes.push(node);
    i++;
  }
  return graph;
}

function valueInfoFromProto(v: VIP, opts: ExternalDataOptions, what: string): ValueInfo {
  const where = `${opts.modelPath ?? 'model'}: ${what} "${v.name}"`;
  const tt = v.type?.tensorType;
  if (v.type && !tt)
    throw new Error(`${where} is not a tensor (sequence, map or optional values are not supported). Re-export the model with tensor inputs and outputs.`);
  const dtype = dtypeFromOnnx(tt?.elemType ?? 1, where);
  const info: ValueInfo = { name: v.name ?? '', dtype };
  if (tt?.shape) {
    info.shape = (tt.shape.dim ?? []).map((d): Dim => (d.dimParam ? d.dimParam : d.dimValue != null && num(d.dimValue) > 0 ? num(d.dimValue) : null));
  }
  return info;
}

function attrFromProto(a: AP, opts: ExternalDataOptions, node: string): AttrValue {
  switch (a.type) {
    case AT.FLOAT:
      return a.f ?? 0;
    case AT.INT:
      return num(a.i);
    case AT.STRING:
      return Buffer.from(a.s ?? []).toString('utf8');
    case AT.FLOATS:
      return [...(a.floats ?? [])];
    case AT.INTS:
      return (a.ints ?? []).map(num);
    case AT.STRINGS:
      return (a.strings ?? []).map((s) => Buffer.from(s).toString('utf8'));
    case AT.TENSOR:
      return tensorFromProto(a.t, opts, `attribute "${a.name}" of node "${node}", tensor`);
    case AT.GRAPH:
      if (!a.g) throw new Error(`${opts.modelPath ?? 'model'}: attribute "${a.name}" of node "${node}" has no graph; the file is corrupt. Re-export it.`);
      return graphFromProto(a.g, opts);
    default:
      throw new Error(
        `${opts.modelPath ?? 'model'}: attribute "${a.name}" of node "${node}" has type ${AT[a.type ?? 0] ?? a.type}, which graft does not read. Simplify the model (e.g. onnxsim) before importing.`,
      );
  }
}

/** Converts a Graph into a GraphProto; initializers of ≥ 1 KiB go to `sink` when given. */
export function graphToProto(g: Graph, sink?: ExternalSink): GP {
  return onnx.GraphProto.create({
    name: g.name,
    node: g.nodes.map((n) =>
      onnx.NodeProto.create({
        opType: n.op,
        name: n.name,
        input: n.inputs,
        output: n.outputs,
        domain: n.domain ?? '',
        attribute: Object.entries(n.attrs).map(([k, v]) => attrToProto(k, v)),
      }),
    ),
    initializer: [...g.initializers].map(([name, t]) => tensorToProto(name, t, sink)),
    input: g.inputs.map(valueInfoToProto),
    output: g.outputs.map(valueInfoToProto),
    valueInfo: [...g.valueInfo.values()].filter((v) => v.shape).map(valueInfoToProto),
  });
}

function valueInfoToProto(v: ValueInfo) {
  return onnx.ValueInfoProto.create({
    name: v.name,
    type: {
      tensorType: {
        elemType: dtypeToOnnx(v.dtype),
        shape: v.shape ? { dim: v.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : typeof d === 'string' ? { dimParam: d } : {})) } : undefined,
      },
    },
  });
}

/** Numbers are written as INT unless the attribute name is a known float attribute or the value is fractional. */
function attrToProto(name: string, v: AttrValue): AP {
  if (v instanceof Tensor) return onnx.AttributeProto.create({ name, type: AT.TENSOR, t: tensorToProto('', v) });
  if (v instanceof Graph) return onnx.AttributeProto.create({ name, type: AT.GRAPH, g: graphToProto(v) });
  if (typeof v === 'string') return onnx.AttributeProto.create({ name, type: AT.STRING, s: Buffer.from(v, 'utf8') });
  if (typeof v === 'number')
    return FLOAT_ATTRS.has(name) || !Number.isInteger(v)
      ? onnx.AttributeProto.create({ name, type: AT.FLOAT, f: v })
      : onnx.AttributeProto.create({ name, type: AT.INT, i: v });
  if (v.length > 0 && typeof v[0] === 'string')
    return onnx.AttributeProto.create({ name, type: AT.STRINGS, strings: (v as string[]).map((s) => Buffer.from(s, 'utf8')) });
  const nums = v as number[];
  return FLOAT_ATTRS.has(name) || nums.some((x) => !Number.isInteger(x))
    ? onnx.AttributeProto.create({ name, type: AT.FLOATS, floats: nums })
    : onnx.AttributeProto.create({ name, type: AT.INTS, ints: nums });
}
