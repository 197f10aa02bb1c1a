/**
 * Helper of bench/transformer-vs-torch.py (not run by npm test): loads the exported nn.TransformerEncoder
 * classifier and the batch the script wrote, and prints as JSON graft's loss and raw gradients (a loss + backward
 * graph, bench/grad-graph.ts) and the parameters after one SGD step (compileTrainStep + StepRunner, the path
 * `Network.fit` takes), keyed by initializer name.
 * Usage: GRAFT_THREADS=1 node --import tsx bench/transformer-vs-torch.ts <dir with model.onnx and case.json>
 */
import fs from 'node:fs';
import path from 'node:path';
import { inferShapes } from '../src/ir/emit.js';
import { Graph, type Node } from '../src/ir/graph.js';
import { Model } from '../src/ir/model.js';
import { sgd } from '../src/optim/index.js';
import { createSession, runHost } from '../src/runtime/session.js';
import { compileTrainStep } from '../src/step/compile.js';
import { StepRunner } from '../src/step/runner.js';
import { Tensor } from '../src/tensor.js';
import { Network } from '../src/train/network.js';
import { gradientModel } from './grad-graph.js';

/**
 * PyTorch's export without constant folding (which keeps every parameter one initializer under its name) computes
 * the Slice bounds of `in_proj_weight` from its Shape at run time; graft's Slice gradient needs them constant. This
 * folds every value computable from constants and the static shapes of the parameters (never their values), as
 * onnxsim would, by running that part of the graph once in onnxruntime.
 */
async function foldShapeConstants(model: Model, params: Set<string>): Promise<Model> {
  const m = model.clone();
  const g = m.graph;
  inferShapes(g, m.opset);
  const known = new Set([...g.initializers.keys()].filter((k) => !params.has(k)));
  const shapes = new Map<string, Tensor>();
  const fold: Node[] = [];
  const prod = g.producers();
  const constant = (v: string) => g.initializers.get(v) ?? (prod.get(v)?.op === 'Constant' ? (prod.get(v)!.attrs.value as Tensor) : undefined);
  for (const n of g.nodes) {
    const dims = n.op === 'Shape' && Object.keys(n.attrs).length === 0 ? g.info(n.inputs[0]!)?.shape : undefined;
    // one static dim of a shape with a dynamic batch: Gather(Shape(x), i)
    const of = n.op === 'Gather' && prod.get(n.inputs[0]!)?.op === 'Shape' ? g.info(prod.get(n.inputs[0]!)!.inputs[0]!)?.shape : undefined;
    const at = of && constant(n.inputs[1]!)?.toNumbers();
    if (of && at?.length === 1 && typeof of.at(at[0]!) === 'number') {
      const t = constant(n.inputs[1]!)!;
      shapes.set(n.outputs[0]!, Tensor.i64([...t.dims], [of.at(at[0]!) as number]));
      known.add(n.outputs[0]!);
      fold.push(n);
    } else if (dims?.every((d) => typeof d === 'number')) {
      shapes.set(n.outputs[0]!, Tensor.i64([dims.length], dims as number[]));
      known.add(n.outputs[0]!);
      fold.push(n);
    } else if (n.inputs.every((i) => i === '' || known.has(i))) {
      for (const o of n.outputs) known.add(o);
      fold.push(n);
    }
  }
  const folded = new Set(fold.flatMap((n) => n.outputs));
  const frontier = [...new Set(g.nodes.filter((n) => !folded.has(n.outputs[0]!)).flatMap((n) => n.inputs.filter((i) => folded.has(i))))];
  const sub = new Graph();
  sub.nodes = fold.filter((n) => !shapes.has(n.outputs[0]!));
  for (const k of known) if (g.initializers.has(k)) sub.initializers.set(k, g.initializers.get(k)!);
  for (const [k, v] of shapes) sub.initializers.set(k, v);
  sub.outputs = frontier.filter((f) => !shapes.has(f)).map((name) => ({ name, dtype: g.info(name)?.dtype ?? 'int64', shape: g.info(name)?.shape }));
  const values = sub.outputs.length ? await runHost(await createSession(new Model(sub, m.opset)), {}) : {};
  g.nodes = g.nodes.filter((n) => !fold.includes(n));
  for (const f of frontier) g.initializers.set(f, shapes.get(f) ?? values[f]!);
  g.prune();
  return m;
}

const dir = process.argv[2]!;
const c = JSON.parse(fs.readFileSync(path.join(dir, 'case.json'), 'utf8')) as { x: number[]; dims: number[]; y: number[]; lr: number };
const loaded = Network.load(path.join(dir, 'model.onnx')).unfreeze();
const trainable = [...loaded.trainable];
const net = new Network(await foldShapeConstants(loaded.model, new Set(trainable)));
const x = Tensor.f32(c.dims, c.x);
const y = Tensor.i64([c.y.length], c.y);

const gm = gradientModel(net.model, trainable);
const gs = await createSession(gm.model, { threads: 1 });
const feeds: Record<string, Tensor> = { [gm.dataInput]: x, [gm.targetInput]: y };
for (const p of trainable) feeds[p] = net.model.graph.initializers.get(p)!;
const g = await runHost(gs, feeds, [gm.lossOutput, ...new Set(gm.gradOutputs.values())]);
await gs.release();

const step = compileTrainStep({ model: net.model, trainable, optimizer: sgd({ lr: c.lr, momentum: 0 }), dropout: false });
const runner = await StepRunner.create(step, undefined, { threads: 1 });
const t0 = performance.now();
const r = await runner.train({ x, y }, [c.lr]);
const stepSeconds = (performance.now() - t0) / 1000;
const state = runner.state(['param']);
await runner.release();

const arr = (t: Tensor) => Array.from(t.data as Float32Array);
process.stdout.write(
  JSON.stringify({
    loss: (g[gm.lossOutput]!.data as Float32Array)[0],
    stepLoss: r.loss,
    stepSeconds,
    grads: Object.fromEntries(trainable.map((p) => [p, arr(g[gm.gradOutputs.get(p)!]!)])),
    params: Object.fromEntries(trainable.map((p) => [p, arr(state.get(p)!)])),
  }),
);
