/**
 * Helper of bench/optim-vs-torch.py (not run by npm test): reads a JSON case file written by the Python
 * script, runs graft's optimizers (plus optional global-norm clipping and a schedule) in onnxruntime on the
 * same params, gradients and LRs, and prints the parameters after every step as JSON.
 * Usage: node --import tsx bench/optim-vs-torch.ts cases.json
 */
import fs from 'node:fs';
import { Emitter } from '../src/ir/emit.js';
import { Graph } from '../src/ir/graph.js';
import { DEFAULT_OPSET, Model } from '../src/ir/model.js';
import { registerStandardOps } from '../src/ops/index.js';
import { adam, adamw, clipGradNorm, makeSchedule, type Optimizer, type ParamGroup, type ScheduleSpec, sgd } from '../src/optim/index.js';
import { createSession, runHost } from '../src/runtime/session.js';
import { Tensor } from '../src/tensor.js';

registerStandardOps();

interface Case {
  name: string;
  optimizer: 'sgd' | 'adam' | 'adamw';
  options: Record<string, unknown>;
  groups: ParamGroup[];
  clip?: number;
  schedule: ScheduleSpec;
  params: { name: string; dims: number[]; group: number; init: number[] }[];
  /** grads[step][param index] */
  grads: number[][][];
}

const makers = { sgd, adam, adamw } as Record<string, (o: Record<string, unknown>) => Optimizer & { lr: number }>;

async function run(c: Case): Promise<number[][][]> {
  const opt = makers[c.optimizer]!(c.options);
  const g = new Graph();
  const e = new Emitter(g, DEFAULT_OPSET);
  const lrNames = c.groups.map((_, k) => `lr_${k}`);
  for (const n of lrNames) g.inputs.push({ name: n, dtype: 'float32', shape: [] });
  for (const p of c.params) g.inputs.push({ name: p.name, dtype: 'float32', shape: p.dims }, { name: `${p.name}_grad`, dtype: 'float32', shape: p.dims });
  const scalars: Record<string, string> = {};
  for (const s of opt.scalarInputs()) {
    g.inputs.push({ name: s, dtype: 'float32', shape: [] });
    scalars[s] = s;
  }
  let grads = c.params.map((p) => `${p.name}_grad`);
  if (c.clip !== undefined) grads = clipGradNorm(e, grads, c.clip).grads;
  const slots = c.params.map((p, i) => ({ param: p.name, grad: grads[i]!, group: p.group, dims: p.dims }));
  const res = opt.emit(e, slots, lrNames, c.groups, scalars);
  for (const s of res.state) g.inputs.push({ name: s.input, dtype: 'float32', shape: [...s.init.dims] });
  g.outputs = [
    ...c.params.map((p) => ({ name: res.params.get(p.name)!, dtype: 'float32' as const, shape: p.dims })),
    ...res.state.map((s) => ({ name: s.output, dtype: 'float32' as const, shape: [...s.init.dims] })),
  ];
  const session = await createSession(new Model(g, DEFAULT_OPSET), { threads: 1 });
  const schedule = makeSchedule(c.schedule);
  const total = c.grads.length;
  const values = c.params.map((p) => Tensor.f32(p.dims, p.init));
  const state = new Map(res.state.map((s) => [s.input, s.init]));
  const trajectory: number[][][] = [];
  for (let t = 1; t <= total; t++) {
    const feeds: Record<string, Tensor> = {};
    for (const [k, n] of lrNames.entries()) feeds[n] = Tensor.scalar(opt.lr * (c.groups[k]!.lrScale ?? 1) * schedule(t - 1, total));
    for (const [k, v] of Object.entries(opt.scalarValues(t))) feeds[k] = Tensor.scalar(v);
    c.params.forEach((p, i) => {
      feeds[p.name] = values[i]!;
      feeds[`${p.name}_grad`] = Tensor.f32(p.dims, c.grads[t - 1]![i]!);
    });
    for (const [k, v] of state) feeds[k] = v;
    const out = await runHost(session, feeds);
    c.params.forEach((p, i) => {
      values[i] = out[res.params.get(p.name)!]!;
    });
    for (const s of res.state) state.set(s.input, out[s.output]!);
    trajectory.push(values.map((v) => Array.from(v.data as Float32Array)));
  }
  return trajectory;
}

const cases = JSON.parse(fs.readFileSync(process.argv[2]!, 'utf8')) as Case[];
const out: Record<string, number[][][]> = {};
for (const c of cases) out[c.name] = await run(c);
process.stdout.write(JSON.stringify(out));
