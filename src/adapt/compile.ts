/**
 * Compiles one domain-adaptation training step into a single ONNX graph. The step's data input is the
 * joint batch [source (n) | target (m) | strong target view (m, FixMatch only)] concatenated along N on the
 * host — so BatchNorm sees both domains at once, as in the PyTorch reference (shared/ref/exp_da_shift.py,
 * `model.features(torch.cat([x_s, x_t]))`). The graph computes the forward pass of the shared network, the
 * source cross-entropy on the first n rows, the method's adaptation term on the features/logits, the backward
 * pass (through the model and any discriminator) and the optimizer update.
 *
 * The result is a {@link CompiledStep}, so the lead's {@link StepRunner} runs it unchanged: the target labels
 * input holds the n source labels only, and the GRL coefficient λ is one of the step's scalar inputs, fed from
 * the host schedule λ(p) = 2/(1 + exp(−10p)) − 1 through `scalarValues`.
 */

import { Emitter, reinferShapes } from '../ir/emit.js';
import type { Graph, Node } from '../ir/graph.js';
import { Model } from '../ir/model.js';
import { findCut } from '../ir/surgery.js';
import { registerStandardOps } from '../ops/index.js';
import { type CompiledStep, DROPOUT_SEED_INPUT, type StepOptionsBase, TARGET_INPUT } from '../step/compile.js';
import { softmaxCrossEntropy } from '../step/loss.js';
import { toTrainingGraph } from '../step/mode.js';
import { emitBackwardAndUpdate } from '../step/update.js';
import type { Tensor } from '../tensor.js';
import { grlLambda } from './adversarial.js';
import { METHOD_INFO, type MethodContext, type MethodSpec } from './methods.js';

/** Name of the GRL coefficient input of DANN/CDAN steps. */
export const LAMBDA_INPUT = 'grl_lambda';

/** What to compile. */
export interface AdaptStepSpec extends StepOptionsBase {
  /** The feature value the adaptation term acts on (default: the input of the final classifier, see findCut). */
  features?: string;
  method: MethodSpec;
  /** Source rows per step. */
  sourceBatch: number;
  /** Target rows per view per step (default: sourceBatch). */
  targetBatch?: number;
  /** Total optimizer steps of the run (the GRL schedule's progress p = step/total). */
  totalSteps: number;
  /** Seed of parameters the method adds (the discriminator). */
  seed?: number;
}

/** A compiled adaptation step: a {@link CompiledStep} plus what the adaptation loop needs to know. */
export interface CompiledAdaptStep extends CompiledStep {
  method: MethodSpec;
  /** Rows of each part of the joint batch. */
  batch: { source: number; target: number; targetViews: number; rows: number };
  /** Parameters the method added (discriminator); not part of the forward model. */
  methodParams: string[];
  /** The feature value used. */
  features: string;
}

/** Values downstream of any of `from` (forward closure over the nodes). */
function downstream(g: Graph, from: string[]): Set<string> {
  const live = new Set(from);
  for (const n of g.nodes) if (n.inputs.some((i) => live.has(i))) for (const o of n.outputs) if (o) live.add(o);
  return live;
}

/** Builds the adaptation step graph. Throws naming what is wrong (shapes, names, frozen features). */
export function compileAdaptStep(spec: AdaptStepSpec): CompiledAdaptStep {
  registerStandardOps();
  const src = spec.model;
  const opset = src.opset;
  const g: Graph = src.graph.clone();
  const info = METHOD_INFO[spec.method.name];
  if (!info) throw new Error(`compileAdaptStep: unknown method "${spec.method.name}".`);
  if (g.inputs.length !== 1)
    throw new Error(`compileAdaptStep: the model has ${g.inputs.length} inputs (${g.inputs.map((v) => v.name)}); adaptation needs a single-input model.`);
  const input = g.inputs[0]!;
  const output = g.outputs[0]?.name;
  if (!output) throw new Error('compileAdaptStep: the model has no outputs; nothing to train.');
  const n = spec.sourceBatch;
  const m = info.targetViews ? (spec.targetBatch ?? n) : 0;
  if (!(Number.isInteger(n) && n >= 2) || !(Number.isInteger(m) && (m >= 2 || (m === 0 && !info.targetViews))))
    throw new Error(`compileAdaptStep: batch sizes must be integers ≥ 2 (got source ${n}, target ${m}); batch statistics and covariances need ≥ 2 rows.`);
  const rows = n + info.targetViews * m;
  const sample = input.shape?.slice(1) ?? [];
  if (!input.shape || sample.some((d) => typeof d !== 'number'))
    throw new Error(
      `compileAdaptStep: the model input "${input.name}" has shape [${input.shape?.map((d) => d ?? '?') ?? '?'}]; every dimension but the batch must be static. Rebuild/export the model with a fixed input size.`,
    );
  input.shape = [rows, ...sample];
  g.valueInfo.delete(input.name); // a stale entry (e.g. the cut of a suffix model) would shadow the new shape
  reinferShapes(g, opset);
  const features = spec.features ?? findCut(src).value;
  if (!g.has(features)) throw new Error(`compileAdaptStep: feature value "${features}" is not in the model; name a value listed by \`graft inspect\`.`);

  const trainable = [...new Set(spec.trainable)];
  for (const p of trainable) {
    const t = g.initializers.get(p);
    if (!t) throw new Error(`compileAdaptStep: trainable parameter "${p}" is not an initializer of the model. Check the name (see \`graft inspect\`).`);
    if (t.dtype !== 'float32') throw new Error(`compileAdaptStep: trainable parameter "${p}" has dtype ${t.dtype}; only float32 parameters can be trained.`);
  }
  const live = downstream(g, trainable);
  if (!live.has(output)) throw new Error('compileAdaptStep: the logits do not depend on any trainable parameter; unfreeze something (e.g. the head) first.');
  if (info.alignsFeatures && !live.has(features))
    throw new Error(
      `${spec.method.name} aligns the features "${features}", but nothing trainable comes before them, so the adaptation term could not change anything. ` +
        'Unfreeze the last stages of the backbone, or train a bottleneck head (e.g. mlp([256], classes)) and align its hidden layer.',
    );
  const trainableSet = new Set(trainable);

  // 1. forward in training mode
  const trainBN = spec.trainBN ?? ((node: Node) => trainableSet.has(node.inputs[1] ?? ''));
  const hasDropout = (spec.dropout ?? true) && g.nodes.some((x) => x.op === 'Dropout');
  if (hasDropout) g.inputs.push({ name: DROPOUT_SEED_INPUT, dtype: 'float32', shape: [] });
  const { runningStats } = toTrainingGraph(g, opset, { trainBN, dropoutSeed: hasDropout ? DROPOUT_SEED_INPUT : undefined });
  reinferShapes(g, opset);

  // 2. losses: source cross-entropy + the method's term
  const e = new Emitter(g, opset, 'adapt/');
  const logitsShape = g.info(output)?.shape;
  const classes = logitsShape?.at(-1);
  if (logitsShape?.length !== 2 || typeof classes !== 'number')
    throw new Error(`compileAdaptStep: the model output "${output}" has shape [${logitsShape ?? '?'}]; adaptation needs logits [N, C].`);
  const fr = e.rank(features);
  const feats = fr !== undefined && fr > 2 ? e.op('Flatten', [features], { axis: 1 }) : features;
  const rowsOf = (x: string, a: number, b: number) => e.op('Slice', [x, e.ints([a]), e.ints([b]), e.ints([0])]);
  const part = (a: number, b: number) => ({ features: rowsOf(feats, a, b), logits: rowsOf(output, a, b) });
  g.inputs.push({ name: TARGET_INPUT, dtype: 'int64', shape: [n] });
  const ce = softmaxCrossEntropy(e, rows === n ? output : rowsOf(output, 0, n), TARGET_INPUT, classes);
  let lambdaInput: string | undefined;
  const metrics: Record<string, string> = { correct: ce.correct, cls_loss: ce.loss };
  let loss = ce.loss;
  const methodParams: string[] = [];
  if (info.build) {
    const ctx: MethodContext = {
      e,
      n,
      m,
      classes,
      joint: info.targetViews === 1 ? { features: feats, logits: output } : part(0, n + m),
      source: part(0, n),
      target: part(n, n + m),
      strong: info.targetViews === 2 ? part(n + m, n + 2 * m) : undefined,
      lambda: () => {
        if (!lambdaInput) {
          lambdaInput = LAMBDA_INPUT;
          g.inputs.push({ name: LAMBDA_INPUT, dtype: 'float32', shape: [] });
        }
        return lambdaInput;
      },
      seed: spec.seed ?? 0,
    };
    const term = info.build(ctx, spec.method);
    loss = e.add(ce.loss, term.loss);
    metrics.adapt_loss = term.loss;
    Object.assign(metrics, term.metrics ?? {});
    methodParams.push(...(term.params ?? []));
  }
  const allTrainable = [...trainable, ...methodParams];
  const inits = new Map<string, Tensor>();
  for (const p of allTrainable) {
    const init = g.initializers.get(p)!;
    inits.set(p, init);
    g.initializers.delete(p);
    g.inputs.push({ name: p, dtype: 'float32', shape: [...init.dims] });
  }

  // 3. backward through the trainable part, clipping, optimizer update, carried state
  const methodSet = new Set(methodParams);
  const groupsIn = spec.groups ?? [{}];
  const upd = emitBackwardAndUpdate(g, opset, loss, allTrainable, inits, runningStats, {
    optimizer: spec.optimizer,
    groups: groupsIn,
    clipNorm: spec.clipNorm,
    where: 'compileAdaptStep: ',
    // the method's parameters (discriminator) train with the last group (the head's learning rate)
    groupOf: (p) => (methodSet.has(p) ? groupsIn.length - 1 : (spec.groupOf?.(p) ?? 0)),
  });
  const { carried, lrInputs, scalarInputs, gradNormOutput, differentiated, groups } = upd;

  // 4. outputs
  g.outputs = [{ name: loss, dtype: 'float32', shape: [] }];
  for (const v of Object.values(metrics)) if (v !== loss) g.outputs.push({ name: v, dtype: 'float32', shape: [] });
  if (gradNormOutput) g.outputs.push({ name: gradNormOutput, dtype: 'float32', shape: [] });
  for (const c of carried) g.outputs.push({ name: c.output, dtype: c.init.dtype, shape: [...c.init.dims] });
  g.prune();
  g.topoSort();
  const model = new Model(g, opset);
  model.metadata = { 'graft.role': 'adapt-step', 'graft.adapt.method': spec.method.name };
  const total = spec.totalSteps;
  if (lambdaInput && !(total > 0)) throw new Error(`compileAdaptStep: totalSteps must be > 0 for the GRL schedule (got ${total}).`);
  return {
    model,
    dataInput: input.name,
    targetInput: TARGET_INPUT,
    lrInputs,
    lrScales: groups.map((gr) => gr.lrScale ?? 1),
    scalarInputs: lambdaInput ? [...scalarInputs, lambdaInput] : scalarInputs,
    scalarValues: (step) => {
      const r: Record<string, number> = {};
      for (const [k, v] of Object.entries(spec.optimizer.scalarValues(step))) r[`opt_${k}`] = v;
      if (lambdaInput) r[lambdaInput] = grlLambda(Math.min(1, (step - 1) / total));
      return r;
    },
    dropoutSeedInput: hasDropout ? DROPOUT_SEED_INPUT : undefined,
    carried,
    lossOutput: loss,
    metricOutputs: metrics,
    gradNormOutput,
    trainable: allTrainable,
    differentiatedNodes: differentiated,
    method: spec.method,
    batch: { source: n, target: m, targetViews: info.targetViews, rows },
    methodParams,
    features,
  };
}
