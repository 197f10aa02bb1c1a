/**
 * Kernel-level A/B of runtime/nchwc-depthwise.ts (not a test): MobileNetV2's depthwise layers at batch 8, as graft's step runs
 * them, on onnxruntime's generic Conv (the graph as bytes, unrewritten) against the NCHWc depthwise kernel (the
 * rewrite createSession applies on the CPU). Per shape: the forward Conv alone, and the forward with dX and dW of a
 * run-time batch (the step's form: dW is ops/conv.ts's stacked depthwise Conv). Best of `--iters`, alternating.
 * Run: node --import tsx bench/nchwc-depthwise.ts [--iters 15] [--threads 2]
 */
import { parseArgs } from 'node:util';
import { backward } from '../src/autodiff/backward.js';
import { randn } from '../src/autodiff/gradcheck.js';
import { Emitter } from '../src/ir/emit.js';
import { Graph } from '../src/ir/graph.js';
import { DEFAULT_OPSET, Model } from '../src/ir/model.js';
import { encodeModel } from '../src/onnx/io.js';
import { registerStandardOps } from '../src/ops/index.js';
import { createSession, lowered, type ort, toOrt } from '../src/runtime/session.js';

registerStandardOps();
const { values } = parseArgs({ options: { iters: { type: 'string', default: '15' }, threads: { type: 'string', default: '2' } } });
const iters = Number(values.iters);
const threads = Number(values.threads);

/** Depthwise 3×3 Conv of x [N, C, H, H] (symbolic batch); with `grads`, also dX and dW of Σ(y·r). */
function build(x: number[], s: number, grads: boolean): Model {
  const [, C, H] = x as [number, number, number];
  const g = new Graph();
  g.inputs.push({ name: 'x', dtype: 'float32', shape: ['N', C, H, H] }, { name: 'w', dtype: 'float32', shape: [C, 1, 3, 3] });
  const e = new Emitter(g, DEFAULT_OPSET);
  const y = e.op('Conv', ['x', 'w'], { group: C, strides: [s, s], pads: s === 1 ? [1, 1, 1, 1] : [0, 0, 1, 1] });
  if (!grads) {
    g.outputs = [{ name: y, dtype: 'float32' }];
    return new Model(g, DEFAULT_OPSET);
  }
  g.inputs.push({ name: 'r', dtype: 'float32', shape: e.shape(y)! });
  const loss = e.reduceSum(e.mul(y, 'r'), 'all', false);
  const { grads: d } = backward(g, DEFAULT_OPSET, loss, ['x', 'w']);
  g.outputs = [d.get('x')!, d.get('w')!].map((name) => ({ name, dtype: 'float32' }));
  return new Model(g, DEFAULT_OPSET);
}

const shapes: [number[], number][] = [
  [[8, 32, 112, 112], 1],
  [[8, 96, 112, 112], 2],
  [[8, 144, 56, 56], 1],
  [[8, 144, 56, 56], 2],
  [[8, 192, 28, 28], 1],
  [[8, 384, 14, 14], 1],
  [[8, 576, 14, 14], 1],
  [[8, 960, 7, 7], 1],
];
console.log(`threads ${threads}, best of ${iters} (ms): generic Conv / NCHWc`);
for (const [x, s] of shapes) {
  const row: string[] = [];
  for (const grads of [false, true]) {
    const model = build(x, s, grads);
    const H = x[2]!;
    const Ho = s === 1 ? H : H / 2;
    const feeds: Record<string, ort.Tensor> = { x: toOrt(randn(x, 1)), w: toOrt(randn([x[1]!, 1, 3, 3], 2)) };
    if (grads) feeds.r = toOrt(randn([x[0]!, x[1]!, Ho, Ho], 3));
    const sessions = [await createSession(encodeModel(lowered(model)), { threads }), await createSession(model, { threads })];
    const best = [Infinity, Infinity];
    for (let i = 0; i < iters; i++)
      for (const [k, sess] of sessions.entries()) {
        const t = performance.now();
        await sess.run(feeds);
        best[k] = Math.min(best[k]!, performance.now() - t);
      }
    row.push(`${grads ? 'fwd+dX+dW' : 'fwd'} ${best[0]!.toFixed(1)} / ${best[1]!.toFixed(1)} (${(best[0]! / best[1]!).toFixed(2)}x)`);
  }
  console.log(`[${x}] s${s}: ${row.join(', ')}`);
}
