/**
 * K optimizer steps in one graph: {@link repeatStep} unrolls a compiled training step K times, so one `session.run`
 * takes K steps. Not a second compiler: it copies the nodes of {@link compileTrainStep}'s graph K times, renaming
 * each copy's values, and chains the carried state (parameters, optimizer state, BN statistics) from copy k's
 * `.next` outputs into copy k+1's inputs. Every per-step input (the batch, its targets, the learning rates, the
 * optimizer's scalars, the dropout seed) is stacked along a new leading axis of K and each copy reads its slice with
 * a Gather; each copy's loss, metrics and gradient norm come out stacked as [K] vectors; only the last copy's state
 * comes out, under the single step's output names. Each copy computes exactly what one step computes, so K steps in
 * one run equal K single-step runs bit for bit (test/step/repeat.test.ts).
 *
 * Why: at small batches a head step on cached features is dominated by what every run pays (onnxruntime-node's
 * binding copies every output, parameters and momenta included, into fresh memory; the run's own overhead; the
 * JS side of a step). With K steps per run those are paid once per K steps.
 */
import { Emitter } from '../ir/emit.js';
import { Graph, type Node } from '../ir/graph.js';
import { Model } from '../ir/model.js';
import { registerStandardOps } from '../ops/index.js';
import { Tensor } from '../tensor.js';
import type { CarriedSlot, CompiledStep } from './compile.js';

/** A compiled step unrolled K times (see {@link repeatStep}). */
export interface RepeatedStep {
  model: Model;
  /** Steps per run (K). */
  steps: number;
  /** Inputs stacked along a new leading axis of K (the single step's per-step inputs, same names). */
  stackedInputs: string[];
  /** The carried state: the single step's input and output names (in: the state before the run; out: after its K steps). */
  carried: CarriedSlot[];
  /** [K] outputs: each step's loss, metrics and gradient norm. */
  lossOutput: string;
  metricOutputs: Record<string, string>;
  gradNormOutput?: string;
}

/** Prefix of the stacked [K] outputs' names. */
const STACKED = 'steps/';

/**
 * Unrolls `step` into a graph that takes `k` optimizer steps per run (see the module comment).
 * @throws when k < 2, or when the step graph holds a node with a subgraph or passes a carried input straight through.
 */
export function repeatStep(step: CompiledStep, k: number): RepeatedStep {
  if (!(Number.isInteger(k) && k >= 2))
    throw new Error(`repeatStep: steps per run must be an integer ≥ 2 (got ${k}); a single step is the compiled step itself.`);
  registerStandardOps();
  const src = step.model.graph;
  const carriedIn = new Set(step.carried.map((c) => c.input));
  const inputNames = new Set(src.inputs.map((v) => v.name));
  for (const c of step.carried)
    if (inputNames.has(c.output) || src.initializers.has(c.output))
      throw new Error(
        `repeatStep: the carried output "${c.output}" of "${c.input}" is an input or constant of the step, not a computed value; this step cannot be chained.`,
      );
  for (const n of src.nodes)
    if (Object.values(n.attrs).some((a) => a instanceof Graph))
      throw new Error(`repeatStep: node "${n.name}" (${n.op}) holds a subgraph; unrolling steps with control flow is not supported. Use one step per run.`);

  const g = new Graph();
  g.name = `${src.name}_x${k}`;
  g.initializers = new Map(src.initializers);
  const perStep = src.inputs.filter((v) => !carriedIn.has(v.name));
  g.inputs = [
    ...perStep.map((v) => ({ ...v, shape: v.shape ? [k, ...v.shape] : undefined })),
    ...src.inputs.filter((v) => carriedIn.has(v.name)).map((v) => ({ ...v, shape: v.shape ? [...v.shape] : undefined })),
  ];
  // fresh() below must not hand out a name a copied node will take: reserve every copy's names first
  const copyName = (i: number, name: string) => (i === k - 1 ? name : `s${i}/${name}`);
  const reserved = new Set<string>();
  for (let i = 0; i < k; i++)
    for (const n of src.nodes) {
      reserved.add(copyName(i, n.name));
      for (const o of n.outputs) if (o) reserved.add(copyName(i, o));
    }
  for (const name of reserved) g.valueInfo.set(name, { name, dtype: 'float32' }); // placeholders, dropped below
  const e = new Emitter(g, step.model.opset, 'repeat/');
  const copied: Node[] = [];
  const scalars: Record<string, string[]> = {};
  const collect = [...new Set([step.lossOutput, ...Object.values(step.metricOutputs), ...(step.gradNormOutput ? [step.gradNormOutput] : [])])];
  let prev = new Map<string, string>();
  for (let i = 0; i < k; i++) {
    const map = new Map<string, string>();
    const index = e.constTensor(Tensor.i64([], [i]), `step${i}`);
    for (const v of perStep) map.set(v.name, e.op('Gather', [v.name, index], { axis: 0 }, `${v.name}/${i}`));
    for (const c of step.carried) map.set(c.input, i === 0 ? c.input : prev.get(c.output)!);
    for (const n of src.nodes) {
      const outputs = n.outputs.map((o) => (o ? copyName(i, o) : o));
      const node: Node = { ...n, name: copyName(i, n.name), inputs: n.inputs.map((x) => (x ? (map.get(x) ?? x) : x)), outputs, attrs: { ...n.attrs } };
      n.outputs.forEach((o, j) => {
        if (o) map.set(o, outputs[j]!);
      });
      copied.push(node);
    }
    for (const name of collect) (scalars[name] ??= []).push(e.unsqueeze(map.get(name) ?? name, [0]));
    prev = map;
  }
  for (const name of reserved) g.valueInfo.delete(name);
  // each copy's values have the single step's types and shapes (lowering graft's own ops reads them)
  for (let i = 0; i < k; i++)
    for (const n of src.nodes)
      for (const o of n.outputs) {
        const info = o ? src.valueInfo.get(o) : undefined;
        if (info) g.valueInfo.set(copyName(i, o), { ...info, name: copyName(i, o), shape: info.shape ? [...info.shape] : undefined });
      }
  const stacked = new Map(collect.map((name) => [name, `${STACKED}${name}`]));
  for (const name of collect) g.addNode('Concat', scalars[name]!, [stacked.get(name)!], { axis: 0 }, `${STACKED}${name}/concat`);
  g.nodes.push(...copied);
  g.outputs = [
    ...collect.map((name) => ({ name: stacked.get(name)!, dtype: 'float32' as const, shape: [k] })),
    ...step.carried.map((c) => ({ name: c.output, dtype: c.init.dtype, shape: [...c.init.dims] })),
  ];
  g.topoSort(); // before the prune, which walks the nodes in order
  g.prune();
  const model = new Model(g, step.model.opset);
  model.otherOpsets = [...step.model.otherOpsets];
  model.metadata = { ...step.model.metadata, 'graft.steps_per_run': String(k) };
  const metricOutputs: Record<string, string> = {};
  for (const [key, name] of Object.entries(step.metricOutputs)) metricOutputs[key] = stacked.get(name)!;
  return {
    model,
    steps: k,
    stackedInputs: perStep.map((v) => v.name),
    carried: step.carried,
    lossOutput: stacked.get(step.lossOutput)!,
    metricOutputs,
    gradNormOutput: step.gradNormOutput ? stacked.get(step.gradNormOutput) : undefined,
  };
}
