/**
 * TensorFlow.js graph models (`"format": "graph-model"`: a converted SavedModel / frozen GraphDef plus weight
 * shards) → graft Model (ONNX opset 17). Like the layers importer, the ONNX input is NCHW, rank-4 values stay
 * NCHW between convolutions, and TF node names become ONNX value names. Const nodes are read from the weights
 * manifest (or their inline tensor) and folded into initializers, re-laid out for the ops that use them.
 */
import { Emitter } from '../ir/emit.js';
import { Graph } from '../ir/graph.js';
import { DEFAULT_OPSET, Model } from '../ir/model.js';
import { registerStandardOps } from '../ops/index.js';
import { Tensor } from '../tensor.js';
import { GRAPH_OPS, type GraphCtx, type GValue, type TfNode } from './graph-ops.js';
import { renameRecent } from './keras-context.js';
import { finishOutputs, guessPreprocess, type ImportOptions, setPreprocessMetadata } from './outputs.js';
import { readWeights, type ShardReader, type TfjsWeightGroup } from './weights.js';

/** TensorFlow ops the graph importer converts. */
export const SUPPORTED_GRAPH_OPS: readonly string[] = ['Const', 'Placeholder', ...Object.keys(GRAPH_OPS)].sort();

/** A graph model in memory: model.json fields plus a shard reader. */
export interface TfjsGraphSource {
  modelTopology: unknown;
  weightsManifest: TfjsWeightGroup[];
  readShard: ShardReader;
  source?: string;
  /** model.json's `signature` (names the outputs); when absent, nodes nothing reads are the outputs. */
  signature?: unknown;
}

/**
 * Converts a TensorFlow.js graph model to a graft Model.
 * @throws one error listing every unsupported op (with a node using it), or naming the node whose attributes
 *   graft cannot express.
 */
export function importTfjsGraph(src: TfjsGraphSource, opts: ImportOptions = {}): Model {
  registerStandardOps();
  const where = src.source ?? 'TensorFlow.js graph model';
  const nodes = ((src.modelTopology as { node?: TfNode[] } | null)?.node ?? []) as TfNode[];
  if (nodes.length === 0)
    throw new Error(`${where}: modelTopology has no "node" list; it is not a TensorFlow.js graph model. Re-convert it with tensorflowjs_converter.`);
  if ((src.modelTopology as { library?: { function?: unknown[] } }).library?.function?.length)
    throw new Error(
      `${where}: the graph uses control-flow functions (library.function), which graft does not import. Re-convert a model without control flow.`,
    );
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const outputs = outputNames(src.signature, nodes);
  const needed = reachable(outputs, byName, where);
  const unknown = new Map<string, string>();
  for (const n of needed) if (n.op !== 'Const' && n.op !== 'Placeholder' && !GRAPH_OPS[n.op] && !unknown.has(n.op)) unknown.set(n.op, n.name);
  if (unknown.size)
    throw new Error(
      `${where}: TensorFlow ${unknown.size === 1 ? 'op' : 'ops'} ${[...unknown].map(([op, node]) => `${op} (node "${node}")`).join(', ')} ${unknown.size === 1 ? 'is' : 'are'} not supported by graft's graph importer. ` +
        `Supported: ${SUPPORTED_GRAPH_OPS.join(', ')}. Export the model as a layers model (tfjs.converters.save_keras_model) or without these ops.`,
    );
  const weights = readWeights(src.weightsManifest ?? [], src.readShard, where);
  const model = new Model(new Graph(), DEFAULT_OPSET);
  model.producer = 'graft-import';
  model.graph.name = 'tfjs_graph_model';
  const values = new Map<string, GValue>();
  const candidates: string[] = [];
  const inits = new Map<string, string>();
  for (const n of needed) convertNode(n, { model, values, weights, inits, candidates, where, opts });
  const outs = outputs.map((o) => {
    const v = values.get(o);
    if (!v || 'const' in v) throw new Error(`${where}: output "${o}" is a constant; nothing to compute. Check the model's signature.`);
    return v;
  });
  finishOutputs(model, outs, { featureCandidates: candidates }, opts);
  setPreprocessMetadata(model, guessPreprocess(model));
  model.metadata['graft.source'] = 'tfjs-graph-model';
  return model;
}

interface State {
  model: Model;
  values: Map<string, GValue>;
  weights: Map<string, Tensor>;
  inits: Map<string, string>;
  candidates: string[];
  where: string;
  opts: ImportOptions;
}

/** "name:1" → ["name", 1]; "^ctrl" → null (control dependency). */
function parseInput(s: string): [string, number] | null {
  if (s.startsWith('^')) return null;
  const m = /^(.*):(\d+)$/.exec(s);
  return m ? [m[1]!, Number(m[2])] : [s, 0];
}

const key = (name: string, k: number) => (k ? `${name}:${k}` : name);

function outputNames(signature: unknown, nodes: TfNode[]): string[] {
  const sig = (signature as { outputs?: Record<string, { name?: string }> } | undefined)?.outputs;
  if (sig && Object.keys(sig).length) return Object.values(sig).map((o, i) => key(...(parseInput(o.name ?? Object.keys(sig)[i]!) ?? ['', 0])));
  const read = new Set(nodes.flatMap((n) => (n.input ?? []).map((i) => parseInput(i)?.[0])));
  return nodes.filter((n) => !read.has(n.name) && n.op !== 'Const' && n.op !== 'NoOp').map((n) => n.name);
}

/** The nodes the outputs depend on, in dependency order. */
function reachable(outputs: string[], byName: Map<string, TfNode>, where: string): TfNode[] {
  const order: TfNode[] = [];
  const state = new Map<string, 1 | 2>();
  const visit = (name: string) => {
    const s = state.get(name);
    if (s === 2) return;
    if (s === 1) throw new Error(`${where}: the graph has a cycle through node "${name}" (control flow); graft imports feed-forward graphs only.`);
    const n = byName.get(name);
    if (!n) throw new Error(`${where}: node "${name}" is referenced but not defined. The model.json is incomplete; re-convert the model.`);
    state.set(name, 1);
    for (const i of n.input ?? []) {
      const p = parseInput(i);
      if (p) visit(p[0]);
    }
    state.set(name, 2);
    order.push(n);
  };
  for (const o of outputs) visit(parseInput(o)![0]);
  return order;
}

function convertNode(n: TfNode, st: State): void {
  const { model, values, where } = st;
  const g = model.graph;
  const label = `${where}: node "${n.name}" (${n.op})`;
  if (n.op === 'Const') {
    const t = st.weights.get(n.name) ?? inlineTensor(n, label);
    values.set(n.name, { const: t, name: n.name });
    return;
  }
  if (n.op === 'Placeholder') {
    const dims = ((n.attr?.shape?.shape?.dim ?? []) as { size?: string }[]).map((d, i) => {
      const v = Number(d.size ?? -1);
      return i === 0 && v < 0 ? (st.opts.batch ?? 'N') : v < 0 ? null : v;
    });
    if (dims.length === 4) {
      g.inputs.push({ name: n.name, dtype: 'float32', shape: [dims[0]!, dims[3]!, dims[1]!, dims[2]!] });
      values.set(n.name, { name: n.name, layout: 'nchw' });
    } else {
      g.inputs.push({ name: n.name, dtype: 'float32', shape: dims });
      values.set(n.name, { name: n.name, layout: 'keras' });
    }
    return;
  }
  const inputs = (n.input ?? []).map(parseInput).filter((p): p is [string, number] => p !== null);
  const ins = inputs.map(([name, k]) => {
    const v = values.get(key(name, k));
    if (!v) throw new Error(`${label}: input "${key(name, k)}" has no value (a multi-output op graft does not model). Re-convert the model without it.`);
    return v;
  });
  const start = g.nodes.length;
  const e = new Emitter(g, model.opset, `${n.name}/`);
  const ctx: GraphCtx = {
    e,
    node: n,
    where: label,
    ins,
    init: (name, make) => {
      let v = st.inits.get(name);
      if (!v) {
        v = g.has(name) ? g.fresh(name) : name;
        g.addInitializer(v, make());
        st.inits.set(name, v);
      }
      return v;
    },
    feature: (v) => void st.candidates.push(v),
  };
  let out: GValue;
  try {
    out = GRAPH_OPS[n.op]!(ctx);
  } catch (err) {
    const msg = (err as Error).message;
    throw msg.includes(label) ? err : new Error(`${label}: ${msg}`, { cause: err });
  }
  if (!('const' in out) && g.nodes.slice(start).some((x) => x.outputs.includes(out.name)) && !g.has(n.name)) {
    const wasCandidate = st.candidates.at(-1) === out.name;
    renameRecent(g, start, out.name, n.name);
    if (wasCandidate) st.candidates[st.candidates.length - 1] = n.name;
    out = { name: n.name, layout: out.layout };
  }
  values.set(n.name, out);
}

const TF_DTYPES: Record<string, 'float32' | 'int32' | 'int64'> = { DT_FLOAT: 'float32', DT_INT32: 'int32', DT_INT64: 'int64' };

/** Decodes a Const node's inline `value` tensor (tensorContent bytes, or floatVal/intVal lists, possibly one value broadcast). */
function inlineTensor(n: TfNode, where: string): Tensor {
  const t = n.attr?.value?.tensor;
  const dtype = TF_DTYPES[t?.dtype ?? ''];
  if (!t || !dtype)
    throw new Error(
      `${where}: constant of type ${t?.dtype ?? 'unknown'} is neither in the weights manifest nor a float/int tensor graft can read. Re-convert the model.`,
    );
  const dims = ((t.tensorShape?.dim ?? []) as { size?: string }[]).map((d) => Number(d.size));
  const size = dims.reduce((a, b) => a * b, 1);
  const vals = new Float64Array(size);
  if (t.tensorContent) {
    const b = Buffer.from(t.tensorContent, 'base64');
    const buf = new Uint8Array(b).buffer;
    const src = dtype === 'float32' ? new Float32Array(buf) : dtype === 'int32' ? new Int32Array(buf) : Array.from(new BigInt64Array(buf), Number);
    for (let i = 0; i < size; i++) vals[i] = Number(src[i]);
  } else {
    const list = (t.floatVal ?? t.intVal ?? t.int64Val ?? []).map(Number);
    for (let i = 0; i < size; i++) vals[i] = list[Math.min(i, list.length - 1)] ?? 0;
  }
  if (dtype === 'float32') return Tensor.f32(dims, vals);
  return dtype === 'int64' ? Tensor.i64(dims, vals) : new Tensor('int32', dims, Int32Array.from(vals));
}
