/**
 * Training/inference mode rewrites.
 *
 * `toTrainingGraph` turns the stateful, random parts of a model into standard ONNX ops that graft can
 * differentiate: training BatchNormalization becomes batch-statistics arithmetic (plus running-stat
 * updates with PyTorch semantics), Dropout becomes a seeded, bit-reproducible mask.
 * `toInferenceGraph` removes Dropout and puts every BatchNormalization in eval mode, for export.
 */

import { Emitter, inferNode, inferShapes } from '../ir/emit.js';
import { type AttrValue, attrFloat, attrInt, type Graph, type Node } from '../ir/graph.js';
import { emitBatchNormTrain } from '../ops/bn-train.js';
import { registerStandardOps } from '../ops/index.js';
import { nonChannelAxes } from '../ops/norm.js';
import { Tensor } from '../tensor.js';
import { foldPadIntoConv, poolBeforeRelu } from './rewrites.js';

/** Options of {@link toTrainingGraph}. */
export interface TrainingGraphOptions {
  /** True for each BatchNormalization node that should train (batch statistics); false freezes it (running statistics). */
  trainBN: (node: Node) => boolean;
  /**
   * Name of a float32 scalar graph input holding a per-step seed (an integer value in [0, 2^24)); it is added to
   * `graph.inputs` if missing. When given, Dropout draws a seeded mask; when absent, Dropout becomes Identity.
   */
  dropoutSeed?: string;
}

/** A running statistic of a training BatchNormalization: feed `output` back into `input` after each step. */
export interface RunningStat {
  /** The running mean/var value read by the step (initializer or graph input). */
  input: string;
  /** The updated value computed by the step (appended to `graph.outputs`). */
  output: string;
}

const BIG = 2 ** 31;
/** Multipliers of the three hash rounds (each < 2^31 so that products of 31-bit values fit in int64). */
const MULTS = [1103515245, 22695477, 134775813];

/**
 * Rewrites `graph` in place for training:
 * - BatchNormalization with `trainBN(node)` true → batch statistics as in PyTorch's training-mode BN
 *   (mean and biased variance over every axis but 1), plus updated running stats
 *   `momentum·running + (1 − momentum)·batch` (ONNX momentum 0.9 = PyTorch momentum 0.1; the variance
 *   update uses the unbiased batch variance n/(n−1), n = N·H·W; when n = 1 at run time it uses 0).
 *   The updated stats are appended to `graph.outputs` and returned as pairs.
 * - BatchNormalization with `trainBN(node)` false → eval mode (running statistics, no stat outputs).
 * - Relu → MaxPool pairs become MaxPool → Relu (the same values and gradients, ReLU on the pooled tensor), and zero
 *   Pads feeding only Convs fold into the Convs' pads (see rewrites.ts).
 * - Dropout → `x · (u ≥ ratio) / (1 − ratio)` with `u` from {@link randomUniformLike} (one stream per node)
 *   when `opts.dropoutSeed` is set; Identity otherwise.
 * @throws when an input shape is unknown, a ratio is out of range, or a frozen BN's stat outputs are consumed.
 */
export function toTrainingGraph(graph: Graph, opset: number, opts: TrainingGraphOptions): { runningStats: RunningStat[] } {
  registerStandardOps();
  poolBeforeRelu(graph);
  foldPadIntoConv(graph, opset);
  const targets = graph.nodes.filter((n) => n.op === 'BatchNormalization' || n.op === 'Dropout');
  if (targets.some((n) => !graph.info(n.inputs[0]!)?.shape)) inferShapes(graph, opset);
  if (opts.dropoutSeed && targets.some((n) => n.op === 'Dropout')) ensureSeedInput(graph, opts.dropoutSeed);
  const runningStats: RunningStat[] = [];
  const removed = new Set(targets.filter((n) => n.op === 'Dropout' || opts.trainBN(n)));
  graph.nodes = graph.nodes.filter((n) => !removed.has(n));
  const e = new Emitter(graph, opset);
  for (const n of targets) {
    e.prefix = `${n.name}/`;
    if (n.op === 'Dropout') rewriteDropout(e, n, opts.dropoutSeed);
    else if (removed.has(n)) runningStats.push(...rewriteTrainingBN(e, n));
    else freezeBN(graph, n);
  }
  graph.topoSort();
  return { runningStats };
}

/**
 * Prepares a graph for export/inference, in place: Dropout nodes are bypassed (kept as Identity only when
 * their output is a graph output; a consumed mask output becomes an all-true tensor) and every
 * BatchNormalization is put in eval mode (`training_mode` removed, running-stat outputs dropped).
 * Apply it to the original (not the `toTrainingGraph`-rewritten) graph, with the trained running stats.
 * @throws when a BatchNormalization's running-stat outputs are consumed by other nodes.
 */
export function toInferenceGraph(graph: Graph): { dropoutsRemoved: number; batchNorms: number } {
  registerStandardOps();
  let dropoutsRemoved = 0;
  let batchNorms = 0;
  const graphOutputs = new Set(graph.outputs.map((o) => o.name));
  for (const n of [...graph.nodes]) {
    if (n.op === 'BatchNormalization') {
      freezeBN(graph, n);
      batchNorms++;
      continue;
    }
    if (n.op !== 'Dropout') continue;
    dropoutsRemoved++;
    const [x] = n.inputs as [string];
    const [y, mask] = n.outputs;
    if (mask) allTrueLike(graph, x, mask, n.name);
    if (graphOutputs.has(y!)) {
      Object.assign(n, { op: 'Identity', inputs: [x], outputs: [y], attrs: {} });
      continue;
    }
    graph.nodes = graph.nodes.filter((m) => m !== n);
    for (const m of graph.nodes) m.inputs = m.inputs.map((i) => (i === y ? x : i));
    graph.valueInfo.delete(y!);
  }
  graph.topoSort();
  return { dropoutsRemoved, batchNorms };
}

/**
 * A deterministic uniform [0, 1) field with the runtime shape of `like` (symbolic batch size is fine), computed in
 * ONNX integer ops from each element's flat row-major index, the float32 scalar value `seed` and a `stream` id.
 * Same (index, seed, stream) → the same bits on every run and machine; values are multiples of 2^-24.
 * Any float32 seed works: its integer part and 24 fractional bits both enter the key, so distinct seeds give
 * unrelated fields. Hash: keys k1..k3 from (seed, stream); then three rounds of
 * `h = (h·A_r + k_r) mod 2^31; h = (⌊h²/2^16⌋ + k_r) mod 2^31`, a final `h = (h·1664525 + k1) mod 2^31`,
 * and u = ⌊h/2^7⌋·2^-24. Every intermediate stays below 2^63. Indices ≥ 2^31 repeat the stream.
 */
export function randomUniformLike(e: Emitter, like: string, seed: string, stream: number): string {
  const i64 = (v: number) => e.constTensor(Tensor.i64([], [v]), 'i');
  const big = i64(BIG);
  const mod = (v: string) => e.op('Mod', [v, big]);
  const affine = (h: string, mult: number, k: string) => mod(e.add(e.mul(h, i64(mult)), k));
  const square = (h: string, k: string) => mod(e.add(e.div(e.mul(h, h), i64(2 ** 16)), k));
  // key input: integer and fractional parts of the seed (any float32 value; distinct values give distinct keys)
  const whole = e.op('Floor', [seed]);
  const wholeI = mod(e.op('Cast', [whole], { to: 7 }));
  const fracI = e.op('Cast', [e.op('Floor', [e.mul(e.sub(seed, whole), e.scalar(2 ** 24))])], { to: 7 });
  let a = mod(e.add(e.add(e.mul(wholeI, i64(2654435761)), e.mul(fracI, i64(1013904223))), i64(stream >>> 0)));
  const keys: string[] = [];
  for (let r = 0; r < 3; r++) {
    a = square(affine(a, MULTS[r % 3]!, i64(987654321)), i64(0));
    keys.push(a);
  }
  const count = e.op('Size', [like]);
  let h = mod(e.op('Reshape', [e.op('Range', [i64(0), count, i64(1)]), e.op('Shape', [like])]));
  for (let r = 0; r < 3; r++) h = square(affine(h, MULTS[r]!, keys[r]!), keys[r]!);
  h = affine(h, 1664525, keys[0]!);
  return e.mul(e.op('Cast', [e.div(h, i64(128))], { to: 1 }), e.scalar(2 ** -24));
}

/** FNV-1a of a string: the per-node dropout stream id, stable across runs and independent of node order. */
export function streamId(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

function ensureSeedInput(graph: Graph, seed: string): void {
  const inp = graph.inputs.find((v) => v.name === seed);
  if (!inp) {
    if (graph.has(seed))
      throw new Error(`toTrainingGraph: dropoutSeed "${seed}" names a value that is not a graph input; pass the name of a float32 scalar graph input.`);
    graph.inputs.push({ name: seed, dtype: 'float32', shape: [] });
  } else if (inp.dtype !== 'float32')
    throw new Error(`toTrainingGraph: dropoutSeed input "${seed}" has dtype ${inp.dtype}; it must be a float32 scalar. Change the input's type.`);
}

/** Emits a node whose outputs carry the given (existing) names, and infers their shapes. */
function emitNamed(e: Emitter, op: string, inputs: string[], outputs: string[], attrs: Record<string, AttrValue> = {}): void {
  const node = e.graph.addNode(op, inputs, outputs, attrs, e.graph.fresh(`${e.prefix}${op}_node`));
  inferNode(e.graph, node, e);
}

function allTrueLike(graph: Graph, like: string, out: string, where: string): void {
  const t = graph.fresh(`${where}/true`);
  graph.addInitializer(t, new Tensor('bool', [], Uint8Array.of(1)));
  const shape = graph.fresh(`${where}/shape`);
  graph.addNode('Shape', [like], [shape]);
  graph.addNode('Expand', [t, shape], [out]);
}

function rewriteDropout(e: Emitter, n: Node, seed: string | undefined): void {
  const [x, ratioIn] = n.inputs as [string, string | undefined];
  const [y, mask] = n.outputs as [string, string | undefined];
  const where = `Dropout node "${n.name}"`;
  if (!seed) {
    emitNamed(e, 'Identity', [x], [y]);
    if (mask) allTrueLike(e.graph, x, mask, n.name);
    return;
  }
  let ratio: string;
  const constRatio = ratioIn ? e.constant(ratioIn)?.toNumbers()[0] : typeof n.attrs.ratio === 'number' ? n.attrs.ratio : 0.5;
  if (constRatio !== undefined) {
    if (!(constRatio >= 0 && constRatio < 1)) throw new Error(`${where}: ratio ${constRatio} is outside [0, 1). Fix the model's dropout ratio.`);
    ratio = e.scalar(constRatio);
  } else ratio = e.op('Cast', [ratioIn!], { to: 1 });
  const keep = e.op('GreaterOrEqual', [randomUniformLike(e, x, seed, streamId(y)), ratio]);
  const scale = constRatio !== undefined ? e.scalar(1 / (1 - constRatio)) : e.op('Reciprocal', [e.sub(e.scalar(1), ratio)]);
  emitNamed(e, 'Mul', [x, e.mul(e.op('Cast', [keep], { to: 1 }), scale)], [y]);
  if (mask) emitNamed(e, 'Identity', [keep], [mask]);
}

function rewriteTrainingBN(e: Emitter, n: Node): RunningStat[] {
  const g = e.graph;
  const [x, scale, bias, runMean, runVar] = n.inputs as [string, string, string, string, string];
  const shape = g.info(x)?.shape;
  if (!shape)
    throw new Error(`BatchNormalization node "${n.name}": the shape of its input "${x}" is unknown. Give the model input a static rank (e.g. [N,3,224,224]).`);
  const r = shape.length;
  if (r < 2) throw new Error(`BatchNormalization node "${n.name}": input "${x}" has rank ${r}; BatchNormalization needs (N, C, ...).`);
  checkExtraOutputs(g, n, n.outputs.slice(3));
  const eps = attrFloat(n, 'epsilon', 1e-5);
  const momentum = attrFloat(n, 'momentum', 0.9);
  const axes = nonChannelAxes(r);

  // One fused node while differentiating (lean closed-form backward); lowerGraftOps expands it to standard ops.
  const [, mean, variance] = emitBatchNormTrain(e, x, scale, bias, eps, n.outputs[0]!) as [string, string, string];

  // running statistics (PyTorch: unbiased variance for the running estimate)
  const meanC = e.squeeze(mean, axes);
  const varC = e.squeeze(variance, axes);
  const rest = axes.map((a) => shape[a]);
  let correction: string;
  if (rest.every((d) => typeof d === 'number')) {
    const count = (rest as number[]).reduce((p, q) => p * q, 1);
    if (count < 2)
      throw new Error(
        `BatchNormalization node "${n.name}": only ${count} value per channel (input shape [${shape}]), so batch statistics are undefined ` +
          '(PyTorch rejects this too). Use a batch with more than one value per channel, or freeze this layer (trainBN → false).',
      );
    correction = e.scalar(count / (count - 1));
  } else {
    const count = e.div(e.op('Cast', [e.op('Size', [x])], { to: 1 }), e.op('Cast', [e.op('Size', [meanC])], { to: 1 }));
    correction = e.div(count, e.op('Max', [e.sub(count, e.scalar(1)), e.scalar(1)]));
  }
  const m = e.scalar(momentum);
  const oneMinus = e.scalar(1 - momentum);
  const stats: RunningStat[] = [];
  const update = (run: string, batch: string, outName: string | undefined) => {
    const out = outName || g.fresh(`${n.name}/${run}_updated`);
    emitNamed(e, 'Add', [e.mul(run, m), e.mul(batch, oneMinus)], [out]);
    if (!g.outputs.some((o) => o.name === out)) g.outputs.push({ name: out, dtype: 'float32', shape: g.info(out)?.shape });
    stats.push({ input: run, output: out });
  };
  update(runMean, meanC, n.outputs[1]);
  update(runVar, e.mul(varC, correction), n.outputs[2]);
  return stats;
}

/** Puts a BatchNormalization node in eval mode (running statistics) in place. */
function freezeBN(graph: Graph, n: Node): void {
  checkExtraOutputs(graph, n, n.outputs.slice(1));
  if (attrInt(n, 'training_mode', 0) !== 0 || 'training_mode' in n.attrs) delete n.attrs.training_mode;
  n.outputs = n.outputs.slice(0, 1);
}

function checkExtraOutputs(graph: Graph, n: Node, extra: string[]): void {
  const consumers = graph.consumers();
  for (const o of extra) {
    if (!o) continue;
    if (consumers.has(o) || graph.outputs.some((v) => v.name === o))
      throw new Error(
        `BatchNormalization node "${n.name}": its statistic output "${o}" is used elsewhere in the graph, which graft cannot keep when ` +
          'switching the node between training and eval mode. Remove that use from the model.',
      );
  }
}
