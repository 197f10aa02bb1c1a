/**
 * Kernel-level A/B of runtime/nchwc-dense.ts (not a test): ResNet-18's dense Convs at batch 16 (224 px), as graft's
 * step runs them, on onnxruntime's generic Conv (the graph as bytes, unrewritten) against the NCHWc kernel (the
 * rewrite createSession applies on the CPU). Per shape: the forward Conv alone, and the forward with dX and dW of a
 * run-time batch (dX: a Conv at stride 1, a ConvTranspose at stride 2; dW: ops/conv.ts's im2col + MatMul). Best of
 * `--iters`, alternating; also the process CPU time of all runs of each side (the machine is shared: wall is noisy).
 * Run: node --import tsx bench/nchwc-dense.ts [--iters 5] [--threads 2] [--batch 16] [--net resnet18|mobilenet_v2]
 * (mobilenet_v2: its 1×1 Convs, which the rewrite leaves alone unless GRAFT_ORT_NCHWC_DENSE=all)
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
const { values } = parseArgs({
  options: {
    iters: { type: 'string', default: '5' },
    threads: { type: 'string', default: '2' },
    batch: { type: 'string', default: '16' },
    net: { type: 'string', default: 'resnet18' },
  },
});
const iters = Number(values.iters);
const threads = Number(values.threads);
const N = Number(values.batch);

/** Conv of x [N, C, H, H] (symbolic batch) with w [K, C, k, k]; with `grads`, also dX (unless `noDx`) and dW of Σ(y·r). */
function build(C: number, H: number, K: number, k: number, s: number, grads: boolean, dx: boolean): Model {
  const g = new Graph();
  g.inputs.push({ name: 'x', dtype: 'float32', shape: ['N', C, H, H] }, { name: 'w', dtype: 'float32', shape: [K, C, k, k] });
  const e = new Emitter(g, DEFAULT_OPSET);
  const p = (k - 1) >> 1;
  const y = e.op('Conv', ['x', 'w'], { strides: [s, s], pads: [p, p, p, p] });
  if (!grads) {
    g.outputs = [{ name: y, dtype: 'float32' }];
    return new Model(g, DEFAULT_OPSET);
  }
  g.inputs.push({ name: 'r', dtype: 'float32', shape: e.shape(y)! });
  const loss = e.reduceSum(e.mul(y, 'r'), 'all', false);
  const wrt = dx ? ['x', 'w'] : ['w'];
  const { grads: d } = backward(g, DEFAULT_OPSET, loss, wrt);
  g.outputs = wrt.map((v) => ({ name: d.get(v)!, dtype: 'float32' }));
  return new Model(g, DEFAULT_OPSET);
}

// [C, H, K, k, s]: ResNet-18's convs at 224 px (the stem's dX is not needed: its input is the image)
const resnet18: [number, number, number, number, number][] = [
  [3, 224, 64, 7, 2],
  [64, 56, 64, 3, 1],
  [64, 56, 128, 3, 2],
  [64, 56, 128, 1, 2],
  [128, 28, 128, 3, 1],
  [128, 28, 256, 3, 2],
  [256, 14, 256, 3, 1],
  [256, 14, 512, 3, 2],
  [512, 7, 512, 3, 1],
];
// MobileNetV2's 1×1 Convs whose channels are multiples of 16 (expand and project) at 224 px
const mobilenet: [number, number, number, number, number][] = [
  [16, 112, 96, 1, 1],
  [32, 112, 16, 1, 1],
  [144, 28, 32, 1, 1],
  [32, 28, 192, 1, 1],
  [64, 14, 384, 1, 1],
  [384, 14, 64, 1, 1],
  [160, 7, 960, 1, 1],
  [960, 7, 160, 1, 1],
  [320, 7, 1280, 1, 1],
];
const shapes = values.net === 'mobilenet_v2' ? mobilenet : resnet18;
console.log(`batch ${N}, threads ${threads}, best of ${iters} (ms) and CPU ms per run: generic Conv / NCHWc`);
for (const [C, H, K, k, s] of shapes) {
  const row: string[] = [];
  for (const grads of [false, true]) {
    const model = build(C, H, K, k, s, grads, C !== 3);
    const Ho = Math.floor((H + 2 * ((k - 1) >> 1) - k) / s) + 1;
    const feeds: Record<string, ort.Tensor> = { x: toOrt(randn([N, C, H, H], 1)), w: toOrt(randn([K, C, k, k], 2)) };
    if (grads) feeds.r = toOrt(randn([N, K, Ho, Ho], 3));
    const sessions = [await createSession(encodeModel(lowered(model)), { threads }), await createSession(model, { threads })];
    for (const sess of sessions) await sess.run(feeds);
    const best = [Infinity, Infinity];
    const cpu = [0, 0];
    for (let i = 0; i < iters; i++)
      for (const [j, sess] of sessions.entries()) {
        const [t, c] = [performance.now(), process.cpuUsage()];
        await sess.run(feeds);
        const u = process.cpuUsage(c);
        cpu[j]! += (u.user + u.system) / 1000 / iters;
        best[j] = Math.min(best[j]!, performance.now() - t);
      }
    for (const sess of sessions) await sess.release();
    row.push(
      `${grads ? 'fwd+dX+dW' : 'fwd'} ${best[0]!.toFixed(1)} / ${best[1]!.toFixed(1)} (${(best[0]! / best[1]!).toFixed(2)}x; CPU ${cpu[0]!.toFixed(0)} / ${cpu[1]!.toFixed(0)})`,
    );
  }
  console.log(`C${C} ${H}px → K${K} ${k}×${k} s${s}: ${row.join(', ')}`);
}
