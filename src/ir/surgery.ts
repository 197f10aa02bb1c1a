/**
 * Graph surgery on models: cut out a feature extractor, find where the classifier starts, set or append
 * outputs, and group parameters into stages (for `graft inspect` and "unfreeze the last N stages").
 * Grafting a new head (which needs nn/'s modules) is `replaceHead` in src/nn/replace-head.ts.
 * Every function returns a new Model and leaves its argument untouched (weights are shared, not copied).
 */
import { Emitter, inferShapes } from './emit.js';
import type { Dim, Graph, Node, ValueInfo } from './graph.js';
import type { Model } from './model.js';
import { opTableLoaded } from './op-registry.js';
import { bufferNames, paramNames, paramPaths } from './params.js';

/** Resolves a value name, or a node name (meaning that node's first output), to a value produced in the graph. */
export function resolveValue(g: Graph, nameOrNode: string, who: string): string {
  const produced = g.nodes.some((n) => n.outputs.includes(nameOrNode)) || g.inputs.some((v) => v.name === nameOrNode);
  if (produced) return nameOrNode;
  const node = g.nodes.find((n) => n.name === nameOrNode);
  if (node?.outputs[0]) return node.outputs[0];
  if (g.initializers.has(nameOrNode)) throw new Error(`${who}: "${nameOrNode}" is an initializer (a weight), not a computed value; name a node output.`);
  throw new Error(`${who}: the graph has no value or node named "${nameOrNode}". Run \`graft inspect\` to list node and value names.`);
}

/**
 * Makes `y` the graph's single output named `outputName` (renaming it, or adding an Identity when
 * `y` is a graph input or must keep its name). Used by Module.build and by graph surgery.
 */
export function setOutput(e: Emitter, y: string, outputName: string, who: string): void {
  const g = e.graph;
  let out = y;
  if (y !== outputName) {
    if (g.has(outputName)) throw new Error(`${who}: output name "${outputName}" is already used by a value in the graph; choose another outputName.`);
    const isProduced = g.nodes.some((n) => n.outputs.includes(y));
    if (!isProduced || g.outputs.some((o) => o.name === y)) {
      g.addNode('Identity', [y], [outputName], {}, g.fresh(`${outputName}_identity`));
      const info = g.info(y);
      if (info) g.valueInfo.set(outputName, { ...info, name: outputName, shape: info.shape ? [...info.shape] : undefined });
    } else g.rename(y, outputName);
    out = outputName;
  }
  const info = g.info(out);
  g.outputs = [{ name: out, dtype: info?.dtype ?? 'float32', shape: info?.shape ? [...info.shape] : undefined }];
}

/** Type and shape of a value, running shape inference on a copy when the model does not record it. */
export function valueInfoOf(model: Model, value: string): ValueInfo {
  let info = model.graph.info(value);
  if (!info?.shape) {
    const g = model.graph.clone();
    try {
      inferShapes(g, model.opset);
      info = g.info(value) ?? info;
    } catch (err) {
      // inference is best effort here (callers cope with an unknown shape), but an unloaded op table is a bug to report
      if (!opTableLoaded()) throw err;
    }
  }
  return { name: value, dtype: info?.dtype ?? 'float32', shape: info?.shape ? [...info.shape] : undefined };
}

/** Options of {@link extractSubgraph}. */
export interface ExtractOptions {
  /** Name of the new model's output (default: keep the value's name). */
  outputName?: string;
}

/**
 * A new model computing only `outputValue` (a value or node name) from the original inputs: its single
 * output is that value, and every node, initializer and input it does not need is pruned.
 */
export function extractSubgraph(model: Model, outputValue: string, opts: ExtractOptions = {}): Model {
  const v = resolveValue(model.graph, outputValue, 'extractSubgraph');
  const m = model.clone();
  const g = m.graph;
  g.outputs = [valueInfoOf(model, v)];
  g.prune();
  if (opts.outputName && opts.outputName !== v) setOutput(new Emitter(g, m.opset), v, opts.outputName, 'extractSubgraph');
  else if (g.inputs.some((i) => i.name === v))
    throw new Error(`extractSubgraph: "${v}" is a graph input, so the subgraph would be empty; pass a different outputName to get an Identity model.`);
  return m;
}

/** The feature cut of a classifier: the value entering its final Gemm/MatMul. */
export interface Cut {
  /** The feature value (e.g. the flattened pooled features). */
  value: string;
  /** The classifier node that consumes it. */
  node: Node;
  /** Its shape when known, e.g. ['N', 512]. */
  dims: Dim[] | undefined;
}

/** True when a value is a constant: an initializer or Constant output, possibly through Transpose/Identity/Cast. */
function isConst(g: Graph, name: string | undefined, producers: Map<string, Node>): boolean {
  if (!name) return false;
  if (g.initializers.has(name)) return true;
  const p = producers.get(name);
  if (p?.op === 'Constant') return true;
  return !!p && ['Transpose', 'Identity', 'Cast'].includes(p.op) && isConst(g, p.inputs[0], producers);
}

/**
 * Finds the feature cut: the data input of the last Gemm/MatMul (with a constant weight) that feeds the
 * model's first output — in a CNN the pooled, flattened features before the classifier.
 * Throws when there is none, telling the user to name the cut.
 */
export function findCut(model: Model): Cut {
  const g = model.graph;
  const out = g.outputs[0]?.name;
  if (!out) throw new Error('findCut: the model has no graph output. Load a complete model.');
  const producers = g.producers();
  // ancestors of the output
  const ancestors = new Set<Node>();
  const stack = [out];
  while (stack.length) {
    const n = producers.get(stack.pop()!);
    if (!n || ancestors.has(n)) continue;
    ancestors.add(n);
    for (const i of n.inputs) if (i) stack.push(i);
  }
  // the candidate latest in topological order (a sorted copy, so the model is not reordered)
  const sorted = g.clone();
  sorted.topoSort();
  const position = new Map(sorted.nodes.map((n, i) => [n.name, i]));
  let last: Node | undefined;
  for (const n of ancestors) {
    const isClassifier =
      (n.op === 'Gemm' && !n.attrs.transA) || (n.op === 'MatMul' && isConst(g, n.inputs[1], producers) && !isConst(g, n.inputs[0], producers));
    if (isClassifier && (!last || (position.get(n.name) ?? -1) > (position.get(last.name) ?? -1))) last = n;
  }
  if (!last)
    throw new Error(
      `findCut: no Gemm or MatMul classifier feeds the output "${out}", so graft cannot tell where the features end. Name the cut yourself: pass { cut: '<value or node name>' } (e.g. the GlobalAveragePool or Flatten output); \`graft inspect\` lists the nodes.`,
    );
  const value = last.inputs[0]!;
  return { value, node: last, dims: valueInfoOf(model, value).shape };
}

/** Which rule of {@link featureCut} chose the cut. */
export type CutRule = 'given' | 'recorded' | 'classifier';

/** A model's feature cut and the rule that chose it. */
export interface FeatureCut {
  value: string;
  rule: CutRule;
  /** Its shape when known, e.g. ['N', 1280]. */
  dims: Dim[] | undefined;
  /** The first node that reads it (the classifier for rule 'classifier'). */
  consumer?: Node;
}

/**
 * The recorded cut of a model, without searching: `given` (a config's `model.cut` or the sidecar's "cut"), else
 * the `graft.cut` metadata when it names a value of the graph. See {@link featureCut}.
 */
export function recordedCut(model: Model, given?: string): string | undefined {
  if (given) return given;
  const meta = model.metadata['graft.cut'];
  return meta && model.graph.has(meta) ? meta : undefined;
}

/**
 * THE feature-cut rule, one function for inspect, import, Network, train and lr-find:
 * 1. `given`: the cut a user or a sidecar names (`model.cut`, the sidecar's "cut");
 * 2. else the cut recorded in the model's `graft.cut` metadata: the tfjs importer records the backbone's last
 *    Flatten/GlobalPooling output before the classifier's Dense layers (nsfwjs MobileNetV2: `flatten_1`,
 *    1280-d, not the NSFW head's 128-d `dropout_3`), and graft records the cut of every head it grafts;
 * 3. else the input of the final Gemm/MatMul classifier ({@link findCut}).
 * @throws as {@link findCut} when no rule applies.
 */
export function featureCut(model: Model, given?: string): FeatureCut {
  const value = recordedCut(model, given);
  if (value === undefined) {
    const c = findCut(model);
    return { value: c.value, rule: 'classifier', dims: c.dims, consumer: c.node };
  }
  const consumer = model.graph.nodes.find((n) => n.inputs.includes(value));
  return { value, rule: given ? 'given' : 'recorded', dims: model.graph.has(value) ? valueInfoOf(model, value).shape : undefined, consumer };
}

/** The feature value of a model by the one cut rule ({@link featureCut}). */
export function featureValue(model: Model): string {
  return featureCut(model).value;
}

/** Options of {@link appendOps}. */
export interface AppendOptions {
  /** Value to continue from (default: the first graph output). */
  from?: string;
  /** Name of the new output (default: the old output's name). */
  outputName?: string;
}

/**
 * Appends ops after a value (default: the current output) and makes their result the single output,
 * e.g. `appendOps(m, (e, x) => e.op('Softmax', [x], { axis: 1 }), { outputName: 'probs' })`.
 */
export function appendOps(model: Model, build: (e: Emitter, x: string) => string, opts: AppendOptions = {}): Model {
  const m = model.clone();
  const g = m.graph;
  const from = opts.from ? resolveValue(g, opts.from, 'appendOps') : g.outputs[0]?.name;
  if (!from) throw new Error('appendOps: the model has no output to continue from; pass { from: "<value>" }.');
  const outName = opts.outputName ?? g.outputs[0]?.name ?? 'output';
  g.outputs = [];
  const tmp = g.fresh(from);
  if (outName === from) g.rename(from, tmp);
  const e = new Emitter(g, m.opset);
  const x = outName === from ? tmp : from;
  setOutput(e, build(e, x), outName, 'appendOps');
  g.prune();
  return m;
}

/** Renames a value everywhere (a new model); throws if `from` is missing or `to` is taken. */
export function renameValue(model: Model, from: string, to: string): Model {
  if (!model.graph.has(from)) throw new Error(`renameValue: no value named "${from}" in the graph.`);
  if (model.graph.has(to)) throw new Error(`renameValue: "${to}" is already used in the graph; choose another name.`);
  const m = model.clone();
  m.graph.rename(from, to);
  return m;
}

/** Drops nodes, initializers and inputs that do not contribute to the outputs (a new model). */
export function pruneUnused(model: Model): Model {
  const m = model.clone();
  m.graph.prune();
  return m;
}

/** A block of parameters sharing a module-path prefix (e.g. 'layer3', or 'conv1/bn1' for a stem). */
export interface Stage {
  /** Display name: the prefix, or prefixes joined by '/' when a norm layer was merged into its conv. */
  name: string;
  /** Module-path prefixes covered (e.g. ['conv1', 'bn1']). */
  prefixes: string[];
  /** Trainable parameter names, in graph order. */
  params: string[];
  /** BatchNorm running statistics in the stage. */
  buffers: string[];
  /** Number of trainable scalars. */
  count: number;
}

/**
 * Groups parameters into stages by module-path prefix, in graph order. Top-level children are the
 * stages (ResNet: conv1/bn1, layer1 … layer4, fc); when there are fewer than three, containers are
 * split one level further (smallCNN: backbone.0/backbone.1, backbone.4/backbone.5, …, head). A group
 * holding only 1-D tensors (a norm layer) is merged into the group before it.
 */
export function stages(model: Model): Stage[] {
  const g = model.graph;
  const params = paramNames(g);
  const buffers = bufferNames(g);
  const names = [...params, ...buffers];
  const paths = paramPaths(g, names);
  const modulePath = (n: string) => paths.get(n)!.split('.').slice(0, -1);
  let depth = 1;
  const keyAt = (n: string, d: number) => modulePath(n).slice(0, d).join('.') || '(root)';
  const groupsAt = (d: number) => new Set(params.map((p) => keyAt(p, d)));
  while (groupsAt(depth).size < 3 && groupsAt(depth + 1).size > groupsAt(depth).size) depth++;
  // ordered groups, by first use of a parameter
  const groups = new Map<string, { params: string[]; buffers: string[] }>();
  for (const p of params) {
    const k = keyAt(p, depth);
    if (!groups.has(k)) groups.set(k, { params: [], buffers: [] });
    groups.get(k)!.params.push(p);
  }
  for (const b of buffers) groups.get(keyAt(b, depth))?.buffers.push(b);
  splitBlockList(groups, modulePath);
  const out: Stage[] = [];
  for (const [k, v] of groups) {
    const normLike = v.params.every((p) => g.initializers.get(p)!.dims.length <= 1);
    const prev = out[out.length - 1];
    if (normLike && prev) {
      prev.prefixes.push(k);
      prev.name = prev.prefixes.join('/');
      prev.params.push(...v.params);
      prev.buffers.push(...v.buffers);
    } else out.push({ name: k, prefixes: [k], params: [...v.params], buffers: [...v.buffers], count: 0 });
  }
  for (const s of out) s.count = s.params.reduce((a, p) => a + g.initializers.get(p)!.size, 0);
  return out;
}

/**
 * A transformer's blocks are one list (`encoder.layer.0` … `encoder.layer.11`), which the prefix grouping sees as a
 * single stage. When exactly one group is a list (its parameters share a module path followed by at least two block indices) and
 * its blocks are alike (each holding the same parameter names), its blocks become the stages, in place.
 * Several lists (ResNet's layer1 … layer4, each a list of blocks) are the stages already and stay as they are.
 */
function splitBlockList(groups: Map<string, { params: string[]; buffers: string[] }>, modulePath: (name: string) => string[]): void {
  // a group's list: the module path all its parameters share (encoder.layer), then the block index
  const listOf = (params: string[]) => {
    const paths = params.map(modulePath);
    let k = 0;
    while (paths.every((q) => q.length > k + 1 && q[k] === paths[0]![k])) k++;
    if (k === 0) return undefined;
    const blocks = new Map<string, string>();
    for (const [i, q] of paths.entries()) {
      if (!/^\d+$/.test(q[k] ?? '')) return undefined;
      blocks.set(
        q[k]!,
        `${blocks.get(q[k]!) ?? ''}|${params[i]!.split('.')
          .slice(k + 1)
          .join('.')}`,
      );
    }
    return blocks.size < 2 ? undefined : { prefix: paths[0]!.slice(0, k).join('.'), uniform: new Set(blocks.values()).size === 1 };
  };
  const lists = [...groups].flatMap(([key, v]) => {
    const l = listOf(v.params);
    return l ? [{ key, ...l, v }] : [];
  });
  if (lists.length !== 1 || !lists[0]!.uniform) return;
  const { key, prefix, v: list } = lists[0]!;
  const blockOf = (n: string) => `${prefix}.${modulePath(n)[prefix.split('.').length]}`;
  const blocks = new Map<string, { params: string[]; buffers: string[] }>();
  for (const p of list.params) {
    if (!blocks.has(blockOf(p))) blocks.set(blockOf(p), { params: [], buffers: [] });
    blocks.get(blockOf(p))!.params.push(p);
  }
  for (const b of list.buffers) blocks.get(blockOf(b))?.buffers.push(b);
  const entries = [...groups];
  const at = entries.findIndex(([k]) => k === key);
  groups.clear();
  for (const [k, g] of [...entries.slice(0, at), ...blocks, ...entries.slice(at + 1)]) groups.set(k, g);
}

/**
 * The part of the model after `cut`: a model whose input is the cut value (e.g. pooled features) and
 * whose outputs are the model's outputs. Used to train a head on cached features.
 * @throws when something after the cut also reads values from before it (a skip connection across the cut).
 */
export function suffixFrom(model: Model, cut: string, opts: { inputName?: string } = {}): Model {
  const m = model.clone();
  const g = m.graph;
  const info = valueInfoOf(model, cut);
  g.nodes = g.nodes.filter((n) => !n.outputs.includes(cut));
  g.inputs = [{ name: cut, dtype: info.dtype, shape: info.shape }];
  g.prune();
  const defined = new Set<string>(['', cut, ...g.initializers.keys()]);
  for (const n of g.nodes) for (const o of n.outputs) defined.add(o);
  for (const n of g.nodes)
    for (const i of n.inputs)
      if (!defined.has(i))
        throw new Error(
          `suffixFrom: node "${n.name}" after the cut "${cut}" also reads "${i}" from before it, so the head cannot run on cached features. Cut later (after the skip connection).`,
        );
  if (opts.inputName && opts.inputName !== cut) g.rename(cut, opts.inputName);
  g.topoSort();
  return m;
}

/**
 * Undoes PyTorch's initializer de-duplication: `torch.onnx.export` stores bitwise-equal tensors once and reads the
 * copies through Identity nodes. Left alone, fine-tuning would train those tensors as one tied parameter (and, for
 * BatchNorm, leave the affected layers outside training mode). Each Identity of an initializer becomes an initializer
 * of its own, named after the Identity's output (the state_dict name). Returns the model itself when there is none.
 */
export function untieInitializerCopies(model: Model): Model {
  const g = model.graph;
  const outputs = new Set(g.outputs.map((v) => v.name));
  const inputs = new Set(g.inputs.map((v) => v.name));
  const copies = g.nodes.filter((n) => n.op === 'Identity' && g.initializers.has(n.inputs[0]!) && !inputs.has(n.inputs[0]!) && !outputs.has(n.outputs[0]!));
  if (!copies.length) return model;
  const m = model.clone();
  const drop = new Set(copies.map((n) => n.outputs[0]!));
  for (const n of copies) {
    m.graph.initializers.set(n.outputs[0]!, g.initializers.get(n.inputs[0]!)!.clone());
    m.graph.valueInfo.delete(n.outputs[0]!);
  }
  m.graph.nodes = m.graph.nodes.filter((n) => !(n.op === 'Identity' && drop.has(n.outputs[0]!)));
  m.graph.prune();
  return m;
}
