/**
 * TensorFlow.js layers models (Keras topology + weight shards) → graft Model (ONNX opset 17).
 *
 * The ONNX model takes NCHW images (the one NHWC→NCHW change is at the input); other outputs keep Keras's
 * layout. Layer outputs keep their Keras layer names as ONNX value names and weights become initializers
 * named `<layer>.<weight>` (`<nested model>.<layer>.<weight>` inside nested models), so `graft inspect`,
 * stages, freezing by prefix and cuts read like the Keras model.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Emitter } from '../ir/emit.js';
import { Graph } from '../ir/graph.js';
import { DEFAULT_OPSET, Model } from '../ir/model.js';
import { registerStandardOps } from '../ops/index.js';
import type { Tensor } from '../tensor.js';
import { describeFsError } from '../util/fs-errors.js';
import { resolveInsideFolder } from '../util/safe-path.js';
import * as B from './keras-basic.js';
import { type KValue, type LayerConverter, type LayerCtx, renameRecent } from './keras-context.js';
import { avgPool2d, conv2d, cropping2d, depthwiseConv2d, globalAvgPool2d, globalMaxPool2d, maxPool2d, separableConv2d, zeroPadding2d } from './keras-conv.js';
import { inputShapeOf, type KerasLayer, type KerasModel, MODEL_CLASSES, parseModel, topModelConfig } from './keras-topology.js';
import { finishOutputs, guessPreprocess, type ImportOptions, setPreprocessMetadata } from './outputs.js';
import { readWeights, type ShardReader, type TfjsWeightGroup, type TfjsWeightSpec } from './weights.js';

export type { ImportOptions } from './outputs.js';

/** Converters by Keras class name. */
const CONVERTERS: Record<string, LayerConverter> = {
  Conv2D: conv2d,
  DepthwiseConv2D: depthwiseConv2d,
  SeparableConv2D: separableConv2d,
  MaxPooling2D: maxPool2d,
  AveragePooling2D: avgPool2d,
  GlobalAveragePooling2D: globalAvgPool2d,
  GlobalMaxPooling2D: globalMaxPool2d,
  ZeroPadding2D: zeroPadding2d,
  Cropping2D: cropping2d,
  Dense: B.dense,
  BatchNormalization: B.batchNorm,
  LayerNormalization: B.layerNorm,
  Activation: B.activation,
  ReLU: B.relu,
  LeakyReLU: B.leakyRelu,
  ELU: B.elu,
  PReLU: B.prelu,
  Softmax: B.softmax,
  ...B.mergeLayers,
  Concatenate: B.concatenate,
  Flatten: B.flatten,
  Reshape: B.reshape,
  Permute: B.permuteLayer,
  Dropout: B.dropout,
  SpatialDropout1D: B.identity,
  SpatialDropout2D: B.identity,
  GaussianDropout: B.identity,
  GaussianNoise: B.identity,
  AlphaDropout: B.identity,
  ActivityRegularization: B.identity,
  Rescaling: B.rescaling,
};

/** Keras layer classes graft imports (plus InputLayer and nested Sequential/Functional models). */
export const SUPPORTED_LAYERS: readonly string[] = Object.keys(CONVERTERS).sort();

/** A layers model in memory: the model.json fields plus a shard reader, or tfjs ModelArtifacts. */
export type TfjsLayersSource =
  | { modelTopology: unknown; weightsManifest: TfjsWeightGroup[]; readShard: ShardReader; source?: string }
  | { modelTopology: unknown; weightSpecs: TfjsWeightSpec[]; weightData: ArrayBuffer | Uint8Array; source?: string };

/**
 * Converts a TensorFlow.js layers model to a graft Model.
 * @param src a model.json path (shards are read beside it), or the model in memory.
 * @throws naming the layer (class and name) for unsupported layers or configs, and the file for missing or
 *   mis-sized shards.
 */
export function importTfjsLayers(src: string | TfjsLayersSource, opts: ImportOptions = {}): Model {
  registerStandardOps();
  const s = typeof src === 'string' ? readModelJson(src) : src;
  const where = s.source ?? 'TensorFlow.js model';
  const top = topModelConfig(s.modelTopology, where);
  const kmodel = parseModel(top.class_name, top.config, where);
  const unknown = findUnknown(kmodel, where);
  if (unknown.length)
    throw new Error(
      `${where}: ${unknown.length === 1 ? 'layer' : 'layers'} ${unknown.join(', ')} ${unknown.length === 1 ? 'is' : 'are'} not supported by graft's importer. ` +
        `Supported: InputLayer, ${SUPPORTED_LAYERS.join(', ')} and nested Sequential/Functional models. Replace the layer before exporting, or open an issue naming it.`,
    );
  const weights =
    'weightSpecs' in s
      ? readWeights([{ paths: ['weightData'], weights: s.weightSpecs }], () => new Uint8Array(s.weightData), where)
      : readWeights(s.weightsManifest ?? [], s.readShard, where);
  const model = new Model(new Graph(), DEFAULT_OPSET);
  model.producer = 'graft-import';
  model.graph.name = kmodel.name;
  const conv = new Converter(model, weights, where, opts);
  const outs = conv.convertModel(kmodel, '', undefined);
  finishOutputs(model, outs, conv, opts);
  // a model that starts with Rescaling takes raw 0–255 pixels
  setPreprocessMetadata(model, guessPreprocess(model, conv.inputRescaled ? { scale: 1 } : {}));
  model.metadata['graft.source'] = 'tfjs-layers-model';
  const kv = (s.modelTopology as { keras_version?: unknown } | null)?.keras_version;
  if (typeof kv === 'string') model.metadata['graft.keras_version'] = kv;
  return model;
}

/** Reads a layers model.json and returns it with a reader for its shards (relative to the file). */
export function readModelJson(file: string): { modelTopology: unknown; weightsManifest: TfjsWeightGroup[]; readShard: ShardReader; source: string } {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    if (e instanceof SyntaxError) throw new Error(`${file} is not valid JSON (${e.message}). Pass the model.json written by TensorFlow.js.`);
    throw new Error(describeFsError('read TensorFlow.js model', file, e));
  }
  return { ...fromModelJson(json, path.dirname(path.resolve(file)), file) };
}

/** model.json content + the folder its shards are in → a {@link TfjsLayersSource}. */
export function fromModelJson(json: Record<string, unknown>, dir: string, source: string) {
  const readShard: ShardReader = (p) => {
    const f = resolveInsideFolder(dir, p, {
      what: `${source}: weight shard`,
      fix: 'Copy the shard there (a real file beside model.json, not a symbolic link) and list it in weightsManifest by its file name.',
    });
    try {
      return new Uint8Array(fs.readFileSync(f));
    } catch (e) {
      throw new Error(
        `${source}: weight shard ${f} (listed in weightsManifest) cannot be read: ${describeFsError('read', f, e).replace(/^Could not read [^:]*: /, '')} Keep every shard file beside model.json.`,
      );
    }
  };
  return { modelTopology: json.modelTopology, weightsManifest: (json.weightsManifest ?? []) as TfjsWeightGroup[], readShard, source };
}

/** Every unsupported layer (class and name), including inside nested models. */
function findUnknown(m: KerasModel, where: string): string[] {
  const out: string[] = [];
  for (const l of m.layers) {
    if (l.className === 'InputLayer' || CONVERTERS[l.className]) continue;
    if (MODEL_CLASSES.has(l.className)) out.push(...findUnknown(parseModel(l.className, l.config, where), where));
    else out.push(`${l.className} "${l.name}"`);
  }
  return out;
}

/** Walks (possibly nested) Keras models and emits their layers into one graph. */
export class Converter {
  /** Rank-2 pooled/flattened values in conversion order (candidates for the feature cut). */
  readonly featureCandidates: string[] = [];
  /** True when a Rescaling layer reads a graph input directly. */
  inputRescaled = false;
  private readonly toNchw = new Map<string, string>();
  private readonly toKeras = new Map<string, string>();
  private readonly used = new Set<string>();

  constructor(
    readonly model: Model,
    private readonly weights: Map<string, Tensor>,
    private readonly where: string,
    private readonly opts: ImportOptions,
  ) {}

  /** Converts `m`; `bound` gives the values of its inputs when it is nested, else graph inputs are created. */
  convertModel(m: KerasModel, scope: string, bound: KValue[] | undefined): KValue[] {
    const values = new Map<string, KValue>();
    const key = (layer: string, node: number, tensor: number) => `${layer}\u0000${node}\u0000${tensor}`;
    m.inputs.forEach((r, i) => {
      const layer = m.layers.find((l) => l.name === r.layer);
      if (!layer) throw new Error(`${this.where}: model "${m.name}" names input layer "${r.layer}", which it does not contain. Re-export the model.`);
      values.set(key(r.layer, 0, 0), bound ? bound[i]! : this.graphInput(layer, scope));
    });
    const done = new Set<string>();
    let progress = true;
    while (progress) {
      progress = false;
      for (const layer of m.layers) {
        layer.calls.forEach((refs, node) => {
          const id = key(layer.name, node, 0);
          if (done.has(id) || !refs.every((r) => values.has(key(r.layer, r.node, r.tensor)))) return;
          const ins = refs.map((r) => values.get(key(r.layer, r.node, r.tensor))!);
          const outs = this.convertLayer(layer, ins, scope, node);
          outs.forEach((v, t) => void values.set(key(layer.name, node, t), v));
          done.add(id);
          progress = true;
        });
      }
    }
    return m.outputs.map((r) => {
      const v = values.get(key(r.layer, r.node, r.tensor));
      if (v) return v;
      const stuck = m.layers.find((l) => l.calls.some((_, n) => !done.has(key(l.name, n, 0))));
      throw new Error(
        `${this.where}: model "${m.name}" output "${r.layer}" cannot be computed${stuck ? `: layer "${stuck.name}" waits for an input no layer produces` : ''}. The topology is incomplete; re-export the model.`,
      );
    });
  }

  private graphInput(layer: KerasLayer, scope: string): KValue {
    const shape = inputShapeOf(layer, this.where);
    const batch = this.opts.batch ?? 'N';
    const dims = shape.map((d, i) => (i === 0 ? batch : d));
    const name = this.claim(`${scope}${layer.name}`);
    const g = this.model.graph;
    if (dims.length === 4) {
      g.inputs.push({ name, dtype: 'float32', shape: [dims[0]!, dims[3]!, dims[1]!, dims[2]!] });
      return { name, layout: 'nchw' };
    }
    g.inputs.push({ name, dtype: 'float32', shape: dims });
    return { name, layout: 'keras' };
  }

  private claim(name: string): string {
    let n = name;
    for (let i = 1; this.used.has(n) || this.model.graph.has(n) || /__\d+$/.test(n); i++) n = `${name}_${i}`;
    this.used.add(n);
    return n;
  }

  private convertLayer(layer: KerasLayer, ins: KValue[], scope: string, node: number): KValue[] {
    const label = `${this.where}: layer "${scope}${layer.name}" (${layer.className})`;
    if (MODEL_CLASSES.has(layer.className)) return this.convertModel(parseModel(layer.className, layer.config, this.where), `${scope}${layer.name}/`, ins);
    if (layer.className === 'InputLayer') return ins;
    if (layer.className === 'Rescaling' && ins.some((v) => this.model.graph.inputs.some((i) => i.name === v.name))) this.inputRescaled = true;
    const g = this.model.graph;
    const start = g.nodes.length;
    const e = new Emitter(g, this.model.opset, `${scope}${layer.name}/`);
    const ctx = this.context(e, layer, scope, label);
    let outs: KValue[];
    try {
      const r = CONVERTERS[layer.className]!(ctx, ins);
      outs = Array.isArray(r) ? r : [r];
    } catch (err) {
      const msg = (err as Error).message;
      throw msg.includes(label) ? err : new Error(`${label}: ${msg}`, { cause: err });
    }
    // name each new output after its layer, so values read like the Keras model
    return outs.map((v, t) => {
      const own = g.nodes.slice(start).some((n) => n.outputs.includes(v.name));
      if (!own) return v;
      const name = this.claim(`${scope}${layer.name}${node ? `:${node}` : ''}${t ? `:${t}` : ''}`);
      renameRecent(g, start, v.name, name);
      if (v.layout === 'keras' && e.rank(name) === 2 && /^(Flatten|Global(Average|Max)Pooling2D)$/.test(layer.className)) this.featureCandidates.push(name);
      return { name, layout: v.layout };
    });
  }

  private context(e: Emitter, layer: KerasLayer, scope: string, where: string): LayerCtx {
    const g = this.model.graph;
    const find = (k: string) => this.findWeight(scope, layer.name, k);
    return {
      e,
      layer,
      where,
      maybeWeight: find,
      weight: (k) => {
        const t = find(k);
        if (t) return t;
        const near = [...this.weights.keys()].filter((n) => n.includes(layer.name)).slice(0, 6);
        throw new Error(
          `weight "${layer.name}/${k}" is not in the weights manifest${near.length ? ` (weights naming this layer: ${near.join(', ')})` : ''}. The shards do not match model.json; re-export the model.`,
        );
      },
      init: (k, make) => {
        // dotted like a state_dict key, so graft's stages() and freeze-by-prefix see one module per layer
        const name = `${scope.replace(/\//g, '.')}${layer.name}.${k}`;
        if (!g.initializers.has(name)) g.addInitializer(name, make());
        return name;
      },
      nchw: (v) => {
        if (v.layout === 'nchw') return v.name;
        if (e.rank(v.name) !== 4)
          throw new Error(`needs a rank-4 image input but "${v.name}" has rank ${e.rank(v.name) ?? 'unknown'}. Check the model's shapes.`);
        return this.cached(this.toNchw, v.name, () => e.transpose(v.name, [0, 3, 1, 2]));
      },
      keras: (v) => (v.layout === 'keras' ? v.name : this.cached(this.toKeras, v.name, () => e.transpose(v.name, [0, 2, 3, 1]))),
    };
  }

  private cached(m: Map<string, string>, k: string, make: () => string): string {
    let v = m.get(k);
    if (!v) m.set(k, (v = make()));
    return v;
  }

  /** A layer's weight: `<layer>/<k>`, `<scope>/<layer>/<k>`, TF 2.2's `<layer>/<cell>/<k>`, or a unique `…/<layer>/<k>`. */
  private findWeight(scope: string, layer: string, k: string): Tensor | undefined {
    const w = this.weights;
    const direct = w.get(`${scope}${layer}/${k}`) ?? w.get(`${layer}/${k}`);
    if (direct) return direct;
    const hits = [...w.keys()].filter((n) => n.endsWith(`/${layer}/${k}`) || (n.startsWith(`${layer}/`) && n.endsWith(`/${k}`) && n.split('/').length === 3));
    return hits.length === 1 ? w.get(hits[0]!) : undefined;
  }
}
