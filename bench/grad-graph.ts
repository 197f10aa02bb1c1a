/**
 * A gradient-only graph for cross-checks (bench/torchvision-check.ts): the same training-mode forward and
 * cross-entropy loss as `compileTrainStep`, followed by graft's backward pass, with the loss and the raw gradient
 * of every trainable parameter as outputs (the step graph only exposes updated parameters).
 */
import { backward } from '../src/autodiff/backward.js';
import { Emitter, reinferShapes } from '../src/ir/emit.js';
import type { Node } from '../src/ir/graph.js';
import { Model } from '../src/ir/model.js';
import { softmaxCrossEntropy } from '../src/step/loss.js';
import { toTrainingGraph } from '../src/step/mode.js';

/** The gradient model and the names of its inputs/outputs. */
export interface GradModel {
  model: Model;
  dataInput: string;
  targetInput: string;
  lossOutput: string;
  /** Gradient output name per trainable parameter (parameters are graph inputs of the same name). */
  gradOutputs: Map<string, string>;
}

/**
 * Builds loss + gradients of `trainable` for a single-input classifier `model`, with BN in training mode where its
 * scale is trainable (compileTrainStep's default) and Dropout as Identity.
 * @throws when a trainable parameter gets no gradient (the loss does not depend on it).
 */
export function gradientModel(model: Model, trainable: string[]): GradModel {
  const g = model.graph.clone();
  const opset = model.opset;
  const dataInput = g.inputs[0]!.name;
  const output = g.outputs[0]!.name;
  const set = new Set(trainable);
  toTrainingGraph(g, opset, { trainBN: (n: Node) => set.has(n.inputs[1] ?? '') });
  reinferShapes(g, opset);
  for (const p of trainable) {
    const init = g.initializers.get(p);
    if (!init) throw new Error(`gradientModel: trainable "${p}" is not an initializer of the model.`);
    g.initializers.delete(p);
    g.inputs.push({ name: p, dtype: 'float32', shape: [...init.dims] });
  }
  const targetInput = 'target';
  const outShape = g.info(output)?.shape;
  g.inputs.push({ name: targetInput, dtype: 'int64', shape: [outShape?.[0] ?? 'N'] });
  const classes = outShape?.at(-1);
  if (typeof classes !== 'number') throw new Error(`gradientModel: output "${output}" has no static class dimension (shape [${outShape}]).`);
  const e = new Emitter(g, opset, 'xent/');
  const { loss } = softmaxCrossEntropy(e, output, targetInput, classes);
  const { grads } = backward(g, opset, loss, trainable);
  const gradOutputs = new Map<string, string>();
  g.outputs = [{ name: loss, dtype: 'float32', shape: [] }];
  for (const p of trainable) {
    const name = grads.get(p);
    if (!name) throw new Error(`gradientModel: the loss does not depend on trainable "${p}".`);
    gradOutputs.set(p, name);
    if (!g.outputs.some((o) => o.name === name)) g.outputs.push({ name, dtype: 'float32', shape: g.info(name)?.shape });
  }
  g.prune();
  g.topoSort();
  return { model: new Model(g, opset), dataInput, targetInput, lossOutput: loss, gradOutputs };
}
