/**
 * ONNX ModelProto ⇄ graft Model, through the maintained protobuf binding (onnx-proto / protobufjs).
 * Reads initializers (raw, typed or external data), opsets, metadata_props; validates on load.
 */
import fs from 'node:fs';
import path from 'node:path';
import type onnxProto from 'onnx-proto';
import { type AttrValue, type Dim, FLOAT_ATTRS, Graph, type Node, type ValueInfo } from '../ir/graph.js';
import { MAX_OPSET, MIN_OPSET, Model } from '../ir/model.js';
import { Tensor } from '../tensor.js';
import { dtypeFromOnnx, dtypeToOnnx, type ExternalDataOptions, num, onnx, tensorFromProto, tensorToProto } from './tensor-proto.js';
import { validateModel } from './validate.js';

type GP = onnxProto.onnx.IGraphProto;
type AP = onnxProto.onnx.IAttributeProto;
type VIP = onnxProto.onnx.IValueInfoProto;
const AT = onnx.AttributeProto.AttributeType;

/** Decodes ONNX bytes into a Model. Throws one clear error for corrupt or truncated input. */
export function decodeModel(bytes: Uint8Array, opts: ExternalDataOptions = {}): Model {
  const where = opts.modelPath ?? 'ONNX model';
  let proto: InstanceType<typeof onnx.ModelProto>;
  try {
    proto = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new Error(`${where} is not a valid ONNX file (${(e as Error).message}); it is truncated or corrupt. Re-export or re-download it.`);
  }
  if (!proto.graph?.node) throw new Error(`${where} has no graph; it is not an ONNX model or it is truncated. Re-export it.`);
  const model = new Model(graphFromProto(proto.graph, opts));
  model.irVersion = num(proto.irVersion) || 8;
  model.producer = proto.producerName || '';
  let opset = 0;
  for (const o of proto.opsetImport ?? []) {
    if (!o.domain || o.domain === 'ai.onnx') opset = num(o.version);
    else model.otherOpsets.push({ domain: o.domain, version: num(o.version) });
  }
  if (!opset) throw new Error(`${where} declares no default-domain opset; it is malformed. Re-export it with opset ${MIN_OPSET}–${MAX_OPSET}.`);
  if (opset < MIN_OPSET || opset > MAX_OPSET)
    throw new Error(
      `${where} uses opset ${opset}; graft supports opsets ${MIN_OPSET}–${MAX_OPSET}. Re-export with e.g. torch.onnx.export(..., opset_version=17).`,
    );
  model.opset = opset;
  for (const kv of proto.metadataProps ?? []) model.metadata[kv.key ?? ''] = kv.value ?? '';
  validateModel(model, where);
  return model;
}

/** Reads and validates an .onnx file (external data is resolved beside it). */
export function loadModel(file: string): Model {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new Error(`Cannot read ONNX model ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}. Check the path and permissions.`);
  }
  return decodeModel(bytes, { baseDir: path.dirname(path.resolve(file)), modelPath: file });
}

function graphFromProto(g: GP, opts: ExternalDataOptions): Graph {
  const graph = new Graph();
  graph.name = g.name || 'graph';
  for (const t of g.initializer ?? []) graph.initializers.set(t.name ?? '', tensorFromProto(t, opts));
  for (const v of g.input ?? []) if (!graph.initializers.has(v.name ?? '')) graph.inputs.push(valueInfoFromProto(v, opts));
  for (const v of g.output ?? []) graph.outputs.push(valueInfoFromProto(v, opts));
  for (const v of g.valueInfo ?? []) {
    try {
      const vi = valueInfoFromProto(v, opts);
      graph.valueInfo.set(vi.name, vi);
    } catch {
      // value_info for unsupported types is advisory only
    }
  }
  let i = 0;
  for (const n of g.node ?? []) {
    const attrs: Record<string, AttrValue> = {};
    for (const a of n.attribute ?? []) attrs[a.name ?? ''] = attrFromProto(a as AP, opts);
    const node: Node = {
      op: n.opType ?? '',
      inputs: [...(n.input ?? [])],
      outputs: [...(n.output ?? [])],
      attrs,
      name: n.name || `${n.opType}_${i}`,
    };
    if (n.domain && n.domain !== 'ai.onnx') node.domain = n.domain;
    graph.nodes.push(node);
    i++;
  }
  return graph;
}

function valueInfoFromProto(v: VIP, opts: ExternalDataOptions): ValueInfo {
  const tt = v.type?.tensorType;
  const where = `${opts.modelPath ?? 'model'}: value "${v.name}"`;
  const dtype = dtypeFromOnnx(tt?.elemType ?? 1, where);
  const info: ValueInfo = { name: v.name ?? '', dtype };
  if (tt?.shape) {
    info.shape = (tt.shape.dim ?? []).map((d): Dim => (d.dimParam ? d.dimParam : d.dimValue != null && num(d.dimValue) > 0 ? num(d.dimValue) : null));
  }
  return info;
}

function attrFromProto(a: AP, opts: ExternalDataOptions): AttrValue {
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
      return tensorFromProto(a.t!, opts);
    case AT.GRAPH:
      return graphFromProto(a.g as GP, opts);
    default:
      throw new Error(
        `${opts.modelPath ?? 'model'}: attribute "${a.name}" has type ${a.type}, which graft does not read. Simplify the model (e.g. onnxsim) before importing.`,
      );
  }
}

/** Options for writing a model. */
export interface SaveOptions {
  /** Store initializers ≥ 1 KiB in a side file (required above 2 GB). Default: only when the model exceeds 1.8 GB. */
  externalData?: boolean | 'auto';
}

/** Encodes a Model to ONNX bytes (all weights inline). */
export function encodeModel(model: Model): Uint8Array {
  return onnx.ModelProto.encode(modelToProto(model)).finish();
}

/** Writes a Model to `file` atomically (temp file + rename), with external data when asked or needed. */
export function saveModel(model: Model, file: string, opts: SaveOptions = {}): void {
  const dir = path.dirname(path.resolve(file));
  fs.mkdirSync(dir, { recursive: true });
  let weightBytes = 0;
  for (const t of model.graph.initializers.values()) weightBytes += t.data.byteLength;
  const external = opts.externalData === true || ((opts.externalData ?? 'auto') === 'auto' && weightBytes > 1.8e9);
  const tmp = `${file}.tmp-${process.pid}`;
  let sink: { file: string; location: string; fd: number; offset: number } | undefined;
  const dataFile = `${file}.data`;
  if (external) sink = { file: `${dataFile}.tmp-${process.pid}`, location: path.basename(dataFile), fd: 0, offset: 0 };
  try {
    if (sink) sink.fd = fs.openSync(sink.file, 'w');
    const bytes = onnx.ModelProto.encode(modelToProto(model, sink)).finish();
    if (sink) {
      fs.fsyncSync(sink.fd);
      fs.closeSync(sink.fd);
      sink.fd = 0;
    }
    writeFileSync(tmp, bytes);
    if (sink) fs.renameSync(sink.file, dataFile);
    fs.renameSync(tmp, file);
  } catch (e) {
    if (sink?.fd) fs.closeSync(sink.fd);
    for (const f of [tmp, sink?.file]) if (f) fs.rmSync(f, { force: true });
    throw new Error(`Could not write ONNX model ${file}: ${(e as Error).message}. Free disk space or choose another path; any previous file is unchanged.`);
  }
}

function writeFileSync(file: string, bytes: Uint8Array): void {
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, bytes);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function modelToProto(model: Model, sink?: Parameters<typeof tensorToProto>[2]) {
  return onnx.ModelProto.create({
    irVersion: model.irVersion,
    producerName: model.producer,
    producerVersion: '0.1.0',
    opsetImport: [{ domain: '', version: model.opset }, ...model.otherOpsets.map((o) => ({ domain: o.domain, version: o.version }))],
    graph: graphToProto(model.graph, sink),
    metadataProps: Object.entries(model.metadata).map(([key, value]) => ({ key, value })),
  });
}

function graphToProto(g: Graph, sink?: Parameters<typeof tensorToProto>[2]): GP {
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
