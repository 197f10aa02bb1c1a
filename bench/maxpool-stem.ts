/**
 * Kernel-level A/B of ResNet's stem MaxPool (3×3, stride 2, pad 1, [16, 64, 112, 112]) forward with the argmax its
 * backward needs (not a test). Forms, each its own session, run in turn, CPU time of the process per run (median):
 *  - `idx`: MaxPool with its Indices output (graft's forward now).
 *  - `plain`: MaxPool without Indices (the lower bound).
 *  - `sep`: the window split into a 1×3/(1,2) pool with Indices over x and a 3×1/(2,1) pool with Indices over its
 *    output, the final index gathered from the first's through the second's (exact first argmax in row-major order).
 * Run: node --import tsx bench/maxpool-stem.ts [--iters 10] [--threads 1] [--batch 16]
 */
import { parseArgs } from 'node:util';
import { Emitter } from '../src/ir/emit.js';
import { Graph } from '../src/ir/graph.js';
import { DEFAULT_OPSET, Model } from '../src/ir/model.js';
import { registerStandardOps } from '../src/ops/index.js';
import { createSession, ort } from '../src/runtime/session.js';
import { Rng } from '../src/tensor.js';

registerStandardOps();
const { values } = parseArgs({
  options: { iters: { type: 'string', default: '10' }, threads: { type: 'string', default: '1' }, batch: { type: 'string', default: '16' } },
});
const shape = [Number(values.batch), 64, 112, 112];
type Form = 'idx' | 'plain' | 'sep';

function build(form: Form): Model {
  const g = new Graph();
  g.inputs.push({ name: 'x', dtype: 'float32', shape });
  const e = new Emitter(g, DEFAULT_OPSET);
  let outs: string[];
  if (form === 'plain') outs = [e.op('MaxPool', ['x'], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] })];
  else if (form === 'idx') outs = e.opN('MaxPool', ['x'], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }, 2);
  else {
    const [r, ic] = e.opN('MaxPool', ['x'], { kernel_shape: [1, 3], strides: [1, 2], pads: [0, 1, 0, 1] }, 2) as [string, string];
    const [y, ir] = e.opN('MaxPool', [r], { kernel_shape: [3, 1], strides: [2, 1], pads: [1, 0, 1, 0] }, 2) as [string, string];
    const flat = (v: string) => e.op('Reshape', [v, e.ints([-1])]);
    const i = e.op('Reshape', [e.op('GatherElements', [flat(ic), flat(ir)], { axis: 0 }), e.op('Shape', [y])]);
    outs = [y, i];
  }
  g.outputs = outs.map((name, i) => ({ name, dtype: i ? ('int64' as const) : ('float32' as const), shape: null! }));
  return new Model(g, DEFAULT_OPSET);
}

const rng = new Rng(0);
const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
// post-BN-like values with many exact ties (rounded), so the tie rule is exercised
for (let i = 0; i < data.length; i++) data[i] = Math.max(-1, Math.round(rng.normal() * 4) / 4);
const feeds = { x: new ort.Tensor('float32', data, shape) };
const forms: Form[] = ['idx', 'plain', 'sep'];
const sessions = await Promise.all(forms.map((f) => createSession(build(f), { threads: Number(values.threads) })));
const res = [];
for (const s of sessions) res.push(await s.run(feeds));
const idxOf = (r: Record<string, ort.Tensor>) => Object.values(r)[1]?.data as BigInt64Array | undefined;
const a = idxOf(res[0]!)!;
const b = idxOf(res[2]!)!;
let bad = 0;
for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) bad++;
console.log(`sep indices differing from idx: ${bad} of ${a.length}`);
const cpu = forms.map(() => [] as number[]);
for (let it = 0; it < Number(values.iters); it++)
  for (const [k, s] of sessions.entries()) {
    const c0 = process.cpuUsage();
    await s.run(feeds);
    const c = process.cpuUsage(c0);
    cpu[k]!.push((c.user + c.system) / 1000);
  }
const med = (v: number[]) => [...v].sort((x, y) => x - y)[v.length >> 1]!;
console.log(forms.map((f, k) => `${f} CPU ${med(cpu[k]!).toFixed(1)} ms`).join(' | '));
