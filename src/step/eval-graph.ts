/**
 * The evaluation graph that pairs with a compiled training step: the forward model in inference
 * mode (BN running statistics, no dropout), taking the carried parameters and BN statistics as
 * inputs so it always evaluates the runner's current state without copies.
 */
import { Emitter } from '../ir/emit.js';
import { Model } from '../ir/model.js';
import { registerStandardOps } from '../ops/index.js';
import type { CompiledStep, LossSpec } from './compile.js';
import { TARGET_INPUT } from './compile.js';
import { mseLoss, softmaxCrossEntropy } from './loss.js';
import { toInferenceGraph } from './mode.js';

export interface CompiledEval {
  model: Model;
  dataInput: string;
  targetInput: string;
  /** Carried inputs (params and BN stats) the eval graph reads, by name. */
  stateInputs: string[];
  lossOutput: string;
  metricOutputs: Record<string, string>;
  /** The model output (logits/predictions). */
  output: string;
}

/**
 * Builds the eval graph for a forward model and the carried slots of its training step. Without a step
 * (evaluation only: no optimizer, nothing trains) every parameter stays an initializer of the graph.
 */
export function compileEvalStep(forward: Model, step?: CompiledStep, loss: LossSpec = { kind: 'cross-entropy' }, output?: string): CompiledEval {
  registerStandardOps();
  const g = forward.graph.clone();
  toInferenceGraph(g);
  const out = output ?? g.outputs[0]!.name;
  const stateInputs: string[] = [];
  for (const c of step?.carried ?? []) {
    if (c.kind === 'optim') continue;
    if (!g.initializers.has(c.input)) continue;
    g.initializers.delete(c.input);
    g.inputs.push({ name: c.input, dtype: c.init.dtype, shape: [...c.init.dims] });
    stateInputs.push(c.input);
  }
  const e = new Emitter(g, forward.opset, 'eval/');
  const shape = g.info(out)?.shape;
  let lossName: string;
  const metrics: Record<string, string> = {};
  if (loss.kind === 'cross-entropy') {
    g.inputs.push({ name: TARGET_INPUT, dtype: 'int64', shape: [shape?.[0] ?? 'N'] });
    const classes = shape?.at(-1) as number;
    const r = softmaxCrossEntropy(e, out, TARGET_INPUT, classes, {});
    lossName = r.loss;
    metrics.correct = r.correct;
  } else if (loss.kind === 'mse') {
    g.inputs.push({ name: TARGET_INPUT, dtype: 'float32', shape });
    lossName = mseLoss(e, out, TARGET_INPUT).loss;
  } else {
    g.inputs.push({ name: TARGET_INPUT, dtype: loss.targetDtype ?? 'float32', shape: loss.targetDtype === 'int64' ? [shape?.[0] ?? 'N'] : shape });
    const r = loss.build(e, out, TARGET_INPUT);
    lossName = r.loss;
    Object.assign(metrics, r.metrics ?? {});
  }
  g.outputs = [
    { name: lossName, dtype: 'float32', shape: [] },
    ...Object.values(metrics).map((m) => ({ name: m, dtype: 'float32' as const, shape: [] })),
    { name: out, dtype: 'float32', shape },
  ];
  g.prune();
  const model = new Model(g, forward.opset);
  return {
    model,
    dataInput: step?.dataInput ?? forward.graph.inputs[0]!.name,
    targetInput: TARGET_INPUT,
    stateInputs,
    lossOutput: lossName,
    metricOutputs: metrics,
    output: out,
  };
}
