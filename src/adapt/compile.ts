/**
 * Compiles one domain-adaptation training step into a single ONNX graph. The step's data input is the
 * joint batch [source (n) | target (m) | strong target view (m, FixMatch only)] concatenated along N on the
 * host — so BatchNorm sees both domains at once, as in the PyTorch reference (shared/ref/exp_da_shift.py,
 * `model.features(torch.cat([x_s, x_t]))`). The graph computes the forward pass of the shared network, the
 * source cross-entropy on the first n rows, the method's adaptation term on the features/logits, the backward
 * pass (through the model and any discriminator) and the optimizer update.
 *
 * There is one step compiler ({@link compileTrainStep}); adaptation contributes only its term through the
 * compiler's extension point: the joint batch's rows, the method's loss, its parameters (a discriminator) and its
 * scalar input (the GRL coefficient λ, fed from the host schedule λ(p) = 2/(1 + exp(−10p)) − 1 through
 * `scalarValues`). The target labels input holds the n source labels only.
 */
import type { Graph } from '../ir/graph.js';
import { findCut } from '../ir/surgery.js';
import { registerStandardOps } from '../ops/index.js';
import { type CompiledStep, compileTrainStep, type StepOptionsBase, type StepTerm } from '../step/compile.js';
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
  const g = src.graph;
  const where = 'compileAdaptStep: ';
  const info = METHOD_INFO[spec.method.name];
  if (!info) throw new Error(`compileAdaptStep: unknown method "${spec.method.name}".`);
  if (g.inputs.length !== 1)
    throw new Error(`compileAdaptStep: the model has ${g.inputs.length} inputs (${g.inputs.map((v) => v.name)}); adaptation needs a single-input model.`);
  const output = g.outputs[0]?.name;
  if (!output) throw new Error('compileAdaptStep: the model has no outputs; nothing to train.');
  const n = spec.sourceBatch;
  const m = info.targetViews ? (spec.targetBatch ?? n) : 0;
  if (!(Number.isInteger(n) && n >= 2) || !(Number.isInteger(m) && (m >= 2 || (m === 0 && !info.targetViews))))
    throw new Error(`compileAdaptStep: batch sizes must be integers ≥ 2 (got source ${n}, target ${m}); batch statistics and covariances need ≥ 2 rows.`);
  const rows = n + info.targetViews * m;
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
  const logitsShape = g.info(output)?.shape;
  if (logitsShape?.length !== 2 || typeof logitsShape[1] !== 'number')
    throw new Error(`compileAdaptStep: the model output "${output}" has shape [${logitsShape ?? '?'}]; adaptation needs logits [N, C].`);
  const classes = logitsShape[1];
  const total = spec.totalSteps;

  const methodParams: string[] = [];
  const step = compileTrainStep({
    ...spec,
    trainable,
    extension: {
      rows,
      labelled: n,
      where,
      term: ({ e, output: logits, mainLoss, scalarInput }): StepTerm => {
        const metrics: Record<string, string> = { cls_loss: mainLoss };
        if (!info.build) return { metrics };
        const fr = e.rank(features);
        const feats = fr !== undefined && fr > 2 ? e.op('Flatten', [features], { axis: 1 }) : features;
        const rowsOf = (x: string, a: number, b: number) => e.op('Slice', [x, e.ints([a]), e.ints([b]), e.ints([0])]);
        const part = (a: number, b: number) => ({ features: rowsOf(feats, a, b), logits: rowsOf(logits, a, b) });
        let lambda: string | undefined;
        const ctx: MethodContext = {
          e,
          n,
          m,
          classes,
          joint: info.targetViews === 1 ? { features: feats, logits } : part(0, n + m),
          source: part(0, n),
          target: part(n, n + m),
          strong: info.targetViews === 2 ? part(n + m, n + 2 * m) : undefined,
          lambda: () => {
            lambda ??= scalarInput(LAMBDA_INPUT);
            return lambda;
          },
          seed: spec.seed ?? 0,
        };
        const term = info.build(ctx, spec.method);
        methodParams.push(...(term.params ?? []));
        return {
          loss: term.loss,
          metrics: { ...metrics, adapt_loss: term.loss, ...term.metrics },
          // the method's parameters (discriminator) train with the last group (the head's learning rate), the default
          params: term.params,
          scalarValues: (s) => (lambda ? { [lambda]: grlLambda(Math.min(1, (s - 1) / total)) } : {}),
        };
      },
    },
  });
  if (step.scalarInputs.includes(LAMBDA_INPUT) && !(total > 0))
    throw new Error(`compileAdaptStep: totalSteps must be > 0 for the GRL schedule (got ${total}).`);
  step.model.metadata = { 'graft.role': 'adapt-step', 'graft.adapt.method': spec.method.name };
  return { ...step, method: spec.method, batch: { source: n, target: m, targetViews: info.targetViews, rows }, methodParams, features };
}
