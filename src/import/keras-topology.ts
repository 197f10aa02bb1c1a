/**
 * Keras model topologies as TensorFlow.js writes them (model.json `modelTopology`): Sequential and Functional
 * models, nested models, and both inbound-node formats (Keras 2 nested lists, Keras 3 `keras_history` args),
 * normalised into one small structure the converter walks.
 */

/** A reference to one output tensor of one call ("node") of a layer. */
export interface KerasRef {
  layer: string;
  node: number;
  tensor: number;
}

/** One layer of a model config. `calls` lists, per call of the layer, the tensors it reads. */
export interface KerasLayer {
  className: string;
  name: string;
  // biome-ignore lint/suspicious/noExplicitAny: Keras layer configs are free-form JSON
  config: Record<string, any>;
  calls: KerasRef[][];
}

/** A normalised model: its layers in file order plus its input and output tensors. */
export interface KerasModel {
  className: string;
  name: string;
  layers: KerasLayer[];
  inputs: KerasRef[];
  outputs: KerasRef[];
}

/** Class names of layers that are themselves models. */
export const MODEL_CLASSES = new Set(['Sequential', 'Model', 'Functional']);

type Json = Record<string, unknown>;

/**
 * The `{class_name, config}` of the top-level model in a tfjs `modelTopology` (which is either a Keras
 * model config or `{keras_version, backend, model_config, training_config}`).
 */
export function topModelConfig(topology: unknown, where: string): { class_name: string; config: unknown } {
  const t = topology as Json | null;
  const mc = (t && typeof t === 'object' && 'model_config' in t ? t.model_config : t) as Json | null;
  if (!mc || typeof mc !== 'object' || typeof mc.class_name !== 'string')
    throw new Error(
      `${where}: modelTopology has no Keras model config (expected {"model_config": {"class_name": "Sequential" | "Model", ...}}). Is this a TensorFlow.js layers model? Graph models ("format": "graph-model") are read by importTfjsGraph.`,
    );
  return { class_name: mc.class_name, config: mc.config };
}

/** Normalises a Sequential or Functional model config (recursively usable for nested models). */
export function parseModel(className: string, config: unknown, where: string): KerasModel {
  if (className === 'Sequential') return parseSequential(config, where);
  if (className === 'Model' || className === 'Functional') return parseFunctional(className, config as Json, where);
  throw new Error(`${where}: top-level class "${className}" is not a Keras model (Sequential, Model or Functional). Export the model with model.save().`);
}

function parseSequential(config: unknown, where: string): KerasModel {
  // Keras ≤ 2.2 writes the layer list itself; later versions {name, layers}
  const c = (Array.isArray(config) ? { layers: config } : (config ?? {})) as Json;
  const raw = (c.layers ?? []) as Json[];
  const name = typeof c.name === 'string' ? c.name : 'sequential';
  if (!Array.isArray(raw) || raw.length === 0) throw new Error(`${where}: Sequential model "${name}" has no layers. Re-export the model.`);
  const layers: KerasLayer[] = [];
  const first = raw[0]!;
  const firstCfg = (first.config ?? {}) as Json;
  if (first.class_name !== 'InputLayer') {
    const shape =
      firstCfg.batch_input_shape ??
      firstCfg.batch_shape ??
      (firstCfg.input_shape ? [null, ...(firstCfg.input_shape as unknown[])] : nestedInputShape(first, where));
    if (!shape)
      throw new Error(
        `${where}: Sequential model "${name}" declares no input shape (its first layer "${String(firstCfg.name)}" has no batch_input_shape). Build the model with an explicit input shape before saving.`,
      );
    layers.push({ className: 'InputLayer', name: `${name}_input`, config: { batch_input_shape: shape, dtype: firstCfg.dtype ?? 'float32' }, calls: [] });
  }
  for (const l of raw) {
    const cfg = (l.config ?? {}) as Json;
    const layerName = String(cfg.name ?? l.name ?? `${name}_layer${layers.length}`);
    const prev = layers[layers.length - 1];
    const calls = l.class_name === 'InputLayer' ? [] : [[{ layer: prev!.name, node: 0, tensor: 0 }]];
    layers.push({ className: String(l.class_name), name: layerName, config: cfg, calls });
  }
  return {
    className: 'Sequential',
    name,
    layers,
    inputs: [{ layer: layers[0]!.name, node: 0, tensor: 0 }],
    outputs: [{ layer: layers[layers.length - 1]!.name, node: 0, tensor: 0 }],
  };
}

/** The input shape of a nested model used as the first layer of a Sequential (Teachable Machine's layout). */
function nestedInputShape(layer: Json, where: string): unknown {
  if (!MODEL_CLASSES.has(String(layer.class_name))) return undefined;
  const inner = parseModel(String(layer.class_name), layer.config, where);
  const input = inner.layers.find((l) => l.name === inner.inputs[0]?.layer);
  return input ? inputShapeOf(input, where) : undefined;
}

function parseFunctional(className: string, c: Json, where: string): KerasModel {
  const name = typeof c.name === 'string' ? c.name : 'model';
  const raw = (c.layers ?? []) as Json[];
  if (!Array.isArray(raw) || raw.length === 0) throw new Error(`${where}: model "${name}" has no layers. Re-export the model.`);
  const layers = raw.map((l): KerasLayer => {
    const cfg = (l.config ?? {}) as Json;
    const layerName = String(l.name ?? cfg.name);
    const nodes = (l.inbound_nodes ?? []) as unknown[];
    return { className: String(l.class_name), name: layerName, config: cfg, calls: nodes.map((n) => parseInbound(n, `${where}: layer "${layerName}"`)) };
  });
  return { className, name, layers, inputs: parseRefs(c.input_layers, where), outputs: parseRefs(c.output_layers, where) };
}

/** One inbound node: Keras 2 `[[name, node, tensor, kwargs], ...]` or Keras 3 `{args, kwargs}` with keras_history. */
function parseInbound(n: unknown, where: string): KerasRef[] {
  if (Array.isArray(n)) return n.map((r) => ref(r, where));
  if (n && typeof n === 'object' && 'args' in n) {
    const out: KerasRef[] = [];
    collectHistory((n as Json).args, out);
    return out;
  }
  throw new Error(`${where}: unreadable inbound_nodes entry ${JSON.stringify(n).slice(0, 120)}. Re-export the model with Keras 2 or 3.`);
}

function collectHistory(v: unknown, out: KerasRef[]): void {
  if (Array.isArray(v)) for (const x of v) collectHistory(x, out);
  else if (v && typeof v === 'object') {
    const cfg = (v as Json).config as Json | undefined;
    const h = cfg?.keras_history;
    if ((v as Json).class_name === '__keras_tensor__' && Array.isArray(h)) out.push({ layer: String(h[0]), node: Number(h[1]), tensor: Number(h[2]) });
  }
}

function parseRefs(v: unknown, where: string): KerasRef[] {
  if (!Array.isArray(v) || v.length === 0) throw new Error(`${where}: the model config lists no input_layers/output_layers. Re-export the model.`);
  return typeof v[0] === 'string' ? [ref(v, where)] : v.map((r) => ref(r, where));
}

function ref(r: unknown, where: string): KerasRef {
  if (!Array.isArray(r) || typeof r[0] !== 'string')
    throw new Error(`${where}: bad tensor reference ${JSON.stringify(r)}; expected [layer_name, node_index, tensor_index].`);
  return { layer: r[0], node: Number(r[1] ?? 0), tensor: Number(r[2] ?? 0) };
}

/** The batch input shape of an InputLayer config (Keras 2 `batch_input_shape`, Keras 3 `batch_shape`). */
export function inputShapeOf(layer: KerasLayer, where: string): (number | null)[] {
  const c = layer.config;
  const s = c.batch_input_shape ?? c.batch_shape ?? (c.input_shape ? [null, ...c.input_shape] : undefined);
  if (!Array.isArray(s)) throw new Error(`${where}: InputLayer "${layer.name}" has no batch_input_shape. Re-export the model with an explicit input shape.`);
  return s.map((d: unknown) => (typeof d === 'number' && d >= 0 ? d : null));
}
