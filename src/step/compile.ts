/**
 * Compiles a forward model into one training-step graph: forward (BN with batch statistics,
 * dropout masks), loss, backward (only through the trainable part), gradient clipping and the
 * optimizer update. Trainable parameters, optimizer state and BN running statistics become graph
 * inputs with matching "<name>.next" outputs that the runner feeds back each step.
 */

import { Emitter, reinferShapes } from '../ir/emit.js';
import type { Graph, Node } from '../ir/graph.js';
import { Model } from '../ir/model.js';
import { registerStandardOps } from '../ops/index.js';
import type { Optimizer, ParamGroup } from '../optim/optimizer.js';
import type { Tensor } from '../tensor.js';
import { mseLoss, softmaxCrossEntropy } from './loss.js';
import { toTrainingGraph } from './mode.js';
import { chooseCuts, forwardNodes, RECOMPUTE_DEFAULTS, type RecomputeResult, type RecomputeSpec, recomputeSegments } from './recompute.js';
import { gemmAccumulate } from './rewrites.js';
import { emitBackwardAndUpdate } from './update.js';

/** What the step optimises. */
export type LossSpec =
  | { kind: 'cross-entropy'; classWeights?: number[]; labelSmoothing?: number }
  | { kind: 'mse' }
  /** Any loss built from the model output and a target input; returns scalar loss plus named float scalar metrics. */
  | {
      kind: 'custom';
      build(e: Emitter, output: string, target: string): { loss: string; metrics?: Record<string, string> };
      targetDtype?: 'float32' | 'int64';
    };

/** What every compiled training step needs: the model, what trains, and how (shared by classification and adaptation steps). */
export interface StepOptionsBase {
  /** Forward model: one data input, first output the logits (or predictions). */
  model: Model;
  /** Initializer names to train. Everything else stays frozen (and is not differentiated). */
  trainable: string[];
  optimizer: Optimizer;
  /** Parameter groups (discriminative LRs): each param's group index comes from `groupOf`. Default: one group. */
  groups?: ParamGroup[];
  groupOf?: (param: string) => number;
  /** Clip gradients to this global L2 norm. */
  clipNorm?: number;
  /** Which BatchNormalization nodes use batch statistics. Default: those whose scale is trainable (frozen BN stays in inference mode). */
  trainBN?: (node: Node) => boolean;
  /** Train-mode dropout (default true). */
  dropout?: boolean;
  /**
   * Gradient checkpointing (step/recompute.ts): the backward recomputes the forward's first, largest stages from
   * their input instead of keeping their activations. Default 'auto' (only when the activations the backward reads
   * exceed {@link RECOMPUTE_DEFAULTS}.minBytesPerSample per sample, e.g. MobileNetV2 at 224 px, and the batch dimension is
   * symbolic; `{ batchSize }` also asks for {@link RECOMPUTE_DEFAULTS}.minBytesPerStep per batch, as `Network.fit` does); false keeps them all (faster: MobileNetV2 b32 ~10 % less CPU per step, ~1.1 GB more peak RSS).
   * Gradients are bit-identical either way.
   */
  recompute?: RecomputeSpec;
}

export interface StepSpec extends StepOptionsBase {
  loss?: LossSpec;
  /** Name of the model output to train (default: the first output). */
  output?: string;
  /** Number of classes for cross-entropy (default: the output's last dim). */
  numClasses?: number;
  /** An extra loss term (e.g. a domain-adaptation method) and the joint batch it reads; see {@link StepExtension}. */
  extension?: StepExtension;
}

/** What the compiler hands an extension: the training-mode graph after the forward pass and the main loss. */
export interface StepExtensionContext {
  e: Emitter;
  /** The trained model output over all rows of the batch. */
  output: string;
  /** The main loss (over the labelled rows). */
  mainLoss: string;
  /** Declares (once) a float32 scalar input of the step and returns its name; feed it through {@link StepTerm.scalarValues}. */
  scalarInput(name: string): string;
}

/** An extension's contribution to the step graph. */
export interface StepTerm {
  /** A scalar added to the main loss (none: the extension only splits the batch and reports metrics). */
  loss?: string;
  /** Extra scalar metric outputs. */
  metrics?: Record<string, string>;
  /** Initializers the term added (a discriminator): trained with group `paramGroup` (default: the last group), never exported. */
  params?: string[];
  paramGroup?: number;
  /** Values of the declared scalar inputs for a 1-based step number. */
  scalarValues?: (step: number) => Record<string, number>;
}

/**
 * The compiler's extension point: the data input holds `rows` rows per step (a joint batch, e.g. [source | target]),
 * the first `labelled` of which have labels and enter the main loss; `term` adds the extension's loss.
 */
export interface StepExtension {
  rows: number;
  /** Labelled rows at the start of the batch (default: all). */
  labelled?: number;
  term(ctx: StepExtensionContext): StepTerm;
  /** Prefix of error messages (e.g. 'compileAdaptStep: '). */
  where?: string;
}

/** A state value carried from step to step (param, optimizer state or BN running stat). */
export interface CarriedSlot {
  kind: 'param' | 'optim' | 'bn';
  input: string;
  output: string;
  init: Tensor;
}

export interface CompiledStep {
  model: Model;
  dataInput: string;
  targetInput: string;
  /** Float scalar inputs: per-group learning rates. */
  lrInputs: string[];
  /** Each group's multiplier on the base learning rate. */
  lrScales: number[];
  /** Extra float scalar inputs (optimizer bias corrections). */
  scalarInputs: string[];
  /** Values of those scalar inputs for a 1-based step number, keyed by input name. */
  scalarValues(step: number): Record<string, number>;
  dropoutSeedInput?: string;
  carried: CarriedSlot[];
  lossOutput: string;
  /** Named scalar metric outputs (e.g. correct). */
  metricOutputs: Record<string, string>;
  gradNormOutput?: string;
  trainable: string[];
  differentiatedNodes: number;
  /** What gradient checkpointing recomputes (absent or no cuts: every activation is kept). */
  recomputed?: RecomputeResult;
}

export const TARGET_INPUT = 'target';
export const DROPOUT_SEED_INPUT = 'dropout_seed';

/** Builds the training-step graph. Throws naming the node/op when something cannot be differentiated. */
export function compileTrainStep(spec: StepSpec): CompiledStep {
  registerStandardOps();
  const src = spec.model;
  const g: Graph = src.graph.clone();
  const opset = src.opset;
  const ext = spec.extension;
  const where = ext?.where ?? '';
  if (g.inputs.length !== 1)
    throw new Error(
      `${where}The model has ${g.inputs.length} inputs (${g.inputs.map((v) => v.name)}); graft trains single-input models. Extract a single-input subgraph first.`,
    );
  const dataInput = g.inputs[0]!.name;
  const output = spec.output ?? g.outputs[0]?.name;
  if (!output) throw new Error(`${where}The model has no outputs; nothing to train.`);
  const trainable = [...new Set(spec.trainable)];
  for (const p of trainable) {
    const t = g.initializers.get(p);
    if (!t) throw new Error(`${where}Trainable parameter "${p}" is not an initializer of the model. Check the name (see \`graft inspect\`).`);
    if (t.dtype !== 'float32') throw new Error(`${where}Trainable parameter "${p}" has dtype ${t.dtype}; only float32 parameters can be trained.`);
  }
  const trainableSet = new Set(trainable);
  const labelled = ext ? (ext.labelled ?? ext.rows) : undefined;
  if (ext) fixBatchRows(g, opset, ext.rows, where);

  // 1. Forward in training mode.
  const trainBN = spec.trainBN ?? ((n: Node) => trainableSet.has(n.inputs[1] ?? ''));
  const dropout = spec.dropout ?? true;
  const hasDropout = dropout && g.nodes.some((n) => n.op === 'Dropout');
  if (hasDropout) g.inputs.push({ name: DROPOUT_SEED_INPUT, dtype: 'float32', shape: [] });
  const { runningStats } = toTrainingGraph(g, opset, { trainBN, dropoutSeed: hasDropout ? DROPOUT_SEED_INPUT : undefined });
  reinferShapes(g, opset);

  // 2. Parameters become inputs.
  const carried: CarriedSlot[] = [];
  for (const p of trainable) {
    const init = g.initializers.get(p)!;
    g.initializers.delete(p);
    g.inputs.push({ name: p, dtype: 'float32', shape: [...init.dims] });
  }
  const e = new Emitter(g, opset, 'step/');

  // 3. Loss (over the labelled rows of a joint batch).
  const lossSpec = spec.loss ?? { kind: 'cross-entropy' };
  const outShape = g.info(output)?.shape;
  let loss: string;
  const metrics: Record<string, string> = {};
  const lossOutput = labelled !== undefined && labelled !== ext!.rows ? e.op('Slice', [output, e.ints([0]), e.ints([labelled]), e.ints([0])]) : output;
  if (lossSpec.kind === 'cross-entropy') {
    g.inputs.push({ name: TARGET_INPUT, dtype: 'int64', shape: [labelled ?? outShape?.[0] ?? 'N'] });
    const classes = spec.numClasses ?? (typeof outShape?.at(-1) === 'number' ? (outShape.at(-1) as number) : undefined);
    if (!classes) throw new Error(`${where}Cannot tell the number of classes from output "${output}" (shape [${outShape}]). Pass numClasses.`);
    const r = softmaxCrossEntropy(e, lossOutput, TARGET_INPUT, classes, { classWeights: lossSpec.classWeights, labelSmoothing: lossSpec.labelSmoothing });
    loss = r.loss;
    metrics.correct = r.correct;
  } else if (ext) {
    throw new Error(`${where}a step extension needs the cross-entropy loss (labelled rows), not ${lossSpec.kind}.`);
  } else if (lossSpec.kind === 'mse') {
    g.inputs.push({ name: TARGET_INPUT, dtype: 'float32', shape: outShape });
    loss = mseLoss(e, output, TARGET_INPUT).loss;
  } else {
    g.inputs.push({
      name: TARGET_INPUT,
      dtype: lossSpec.targetDtype ?? 'float32',
      shape: lossSpec.targetDtype === 'int64' ? [outShape?.[0] ?? 'N'] : outShape,
    });
    const r = lossSpec.build(e, output, TARGET_INPUT);
    loss = r.loss;
    Object.assign(metrics, r.metrics ?? {});
  }

  // 3b. The extension's term, parameters and scalar inputs.
  const scalarExtra: string[] = [];
  const term = ext?.term({
    e,
    output,
    mainLoss: loss,
    scalarInput: (name) => {
      if (!scalarExtra.includes(name)) {
        scalarExtra.push(name);
        g.inputs.push({ name, dtype: 'float32', shape: [] });
      }
      return name;
    },
  });
  if (term?.loss) loss = e.add(loss, term.loss);
  Object.assign(metrics, term?.metrics ?? {});
  const termParams = term?.params ?? [];
  const allTrainable = [...trainable, ...termParams];
  const inits = new Map(trainable.map((p) => [p, src.graph.initializers.get(p)!]));
  for (const p of termParams) {
    const init = g.initializers.get(p);
    if (!init) throw new Error(`${where}the step extension names parameter "${p}", which it did not add as an initializer.`);
    inits.set(p, init);
    g.initializers.delete(p);
    g.inputs.push({ name: p, dtype: 'float32', shape: [...init.dims] });
  }

  // 4–5. Backward (trainable part only), clipping, optimizer update, carried state.
  const termSet = new Set(termParams);
  const groupCount = (spec.groups ?? [{}]).length;
  const upd = emitBackwardAndUpdate(g, opset, loss, allTrainable, inits, runningStats, {
    ...spec,
    where,
    groupOf: termParams.length ? (p) => (termSet.has(p) ? (term!.paramGroup ?? groupCount - 1) : (spec.groupOf?.(p) ?? 0)) : spec.groupOf,
  });
  const { lrInputs, scalarInputs, gradNormOutput, differentiated, groups } = upd;
  carried.push(...upd.carried);

  // when each carried output can first be computed, in the backward's emission order (last layers first)
  const readyAt = backwardReadiness(g);

  // 5b. Gradient checkpointing: the backward reads recomputed copies of the first stages' activations.
  const roots = [loss, ...Object.values(metrics), ...carried.filter((c) => c.kind === 'bn').map((c) => c.output)];
  const recomputed = checkpointSegments(g, opset, roots, dataInput, spec.recompute ?? 'auto', upd.gradOf);

  // 6. Outputs: loss, metrics, carried values.
  g.outputs = [{ name: loss, dtype: 'float32', shape: [] }];
  for (const m of Object.values(metrics)) if (!g.outputs.some((o) => o.name === m)) g.outputs.push({ name: m, dtype: 'float32', shape: [] });
  if (gradNormOutput) g.outputs.push({ name: gradNormOutput, dtype: 'float32', shape: [] });
  for (const c of carried) g.outputs.push({ name: c.output, dtype: c.init.dtype, shape: [...c.init.dims] });
  // each weight gradient's Gemm accumulates onto its optimizer state (momentum, weight decay) in place of an Add
  gemmAccumulate(g);
  g.prune();
  g.topoSort();
  // the order matters only where activations are large enough to recompute; elsewhere it cost ~5 % CPU for nothing
  if (recomputed) leavesForOrt(g, readyAt);
  const model = new Model(g, opset);
  model.metadata = { 'graft.role': 'train-step' };
  return {
    model,
    dataInput,
    targetInput: TARGET_INPUT,
    lrInputs,
    lrScales: groups.map((gr) => gr.lrScale ?? 1),
    scalarInputs: [...scalarInputs, ...scalarExtra],
    scalarValues: (step) => {
      const r: Record<string, number> = {};
      for (const [k, v] of Object.entries(spec.optimizer.scalarValues(step))) r[`opt_${k}`] = v;
      if (term?.scalarValues) Object.assign(r, term.scalarValues(step));
      return r;
    },
    dropoutSeedInput: hasDropout ? DROPOUT_SEED_INPUT : undefined,
    carried,
    lossOutput: loss,
    metricOutputs: metrics,
    gradNormOutput,
    trainable: allTrainable,
    differentiatedNodes: differentiated,
    recomputed,
  };
}

/**
 * Moves the leaf nodes (those whose outputs only leave the graph: each parameter's update) to the end of the node
 * list, the one ready last in the backward first. onnxruntime's execution order is a depth-first walk back from the
 * leaves, taken from the highest node index down, each leaf's unvisited ancestors run just before it. With the
 * updates in Kahn order, the first leaf walked is the first layer's update, whose ancestors are the whole backward:
 * every other layer's dW (and its update) then ran after it, keeping each layer's activation and output gradient
 * alive to the end of the step. In this order the last layer's update is walked first, so each layer's dW and update
 * run right after its dX and free them (docs/benchmarks.md "Session 8"). Topological order is kept.
 */
function leavesForOrt(g: Graph, readyAt: Map<string, number>): void {
  const consumed = new Set(g.nodes.flatMap((n) => n.inputs));
  const isLeaf = (n: Node) => n.outputs.every((o) => !o || !consumed.has(o));
  const ready = (n: Node) => Math.max(-1, ...n.outputs.map((o) => readyAt.get(o) ?? -1));
  const leaves = g.nodes.filter(isLeaf).sort((a, b) => ready(b) - ready(a));
  g.nodes = [...g.nodes.filter((n) => !isLeaf(n)), ...leaves];
}

/**
 * For each value of `g` (in emission order: forward, then the backward from the loss back to the input, then the
 * updates), the index of the latest backward node it depends on: the point of the backward after which it can run.
 */
function backwardReadiness(g: Graph): Map<string, number> {
  const ready = new Map<string, number>();
  g.nodes.forEach((n, i) => {
    let r = n.name.startsWith('grad/') ? i : -1;
    for (const x of n.inputs) r = Math.max(r, ready.get(x) ?? -1);
    for (const o of n.outputs) if (o) ready.set(o, r);
  });
  return ready;
}

/** Applies `spec` (see StepOptionsBase.recompute) to the step graph `g` whose first nodes are `forward`. */
function checkpointSegments(
  g: Graph,
  opset: number,
  roots: string[],
  dataInput: string,
  spec: RecomputeSpec,
  gradOf: (v: string) => string | undefined,
): RecomputeResult | undefined {
  if (spec === false) return undefined;
  g.topoSort();
  const forward = forwardNodes(g, roots);
  let cuts: string[];
  if (typeof spec === 'object' && 'cuts' in spec) cuts = spec.cuts;
  else {
    // the gate needs a symbolic batch: with a static one onnxruntime folds Shape(dCut) and could run the clones
    // right after the forward, keeping both copies alive (a joint adaptation batch is static)
    if (typeof g.info(dataInput)?.shape?.[0] === 'number') return undefined;
    const fwd = new Set(forward);
    const readByBackward = new Set(g.nodes.filter((n) => !fwd.has(n)).flatMap((n) => n.inputs));
    cuts = chooseCuts(g, forward, dataInput, readByBackward, spec === 'auto' ? RECOMPUTE_DEFAULTS : spec);
  }
  if (!cuts.length) return undefined;
  return recomputeSegments(g, opset, forward, dataInput, cuts, gradOf);
}

/** Gives the data input a static batch of `rows` (a joint batch); every other dimension must already be static. */
function fixBatchRows(g: Graph, opset: number, rows: number, where: string): void {
  const input = g.inputs[0]!;
  const sample = input.shape?.slice(1) ?? [];
  if (!input.shape || sample.some((d) => typeof d !== 'number'))
    throw new Error(
      `${where}the model input "${input.name}" has shape [${input.shape?.map((d) => d ?? '?') ?? '?'}]; every dimension but the batch must be static. Rebuild/export the model with a fixed input size.`,
    );
  input.shape = [rows, ...sample];
  g.valueInfo.delete(input.name); // a stale entry (e.g. the cut of a suffix model) would shadow the new shape
  reinferShapes(g, opset);
}
