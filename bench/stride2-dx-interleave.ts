/**
 * Kernel-level cost check (not a test) for a sub-pixel stride-2 depthwise dX: MobileNetV2 block 1's ConvTranspose
 * (dY [8, 96, 56, 56] → dX [8, 96, 112, 112]) against the interleave the four phase Convs' outputs would need in
 * onnxruntime's blocked layout (a Concat on the last axis in 64-byte chunks for the columns, then one in rows of
 * 2·W·B floats), and a ReduceMax of an input of the output size (the tail both graphs share, to subtract). Best CPU ms
 * of 20, alternating. Run: node --import tsx bench/stride2-dx-interleave.ts
 */
import { loadavg } from 'node:os';
import { randn } from '../src/autodiff/gradcheck.js';
import { Emitter } from '../src/ir/emit.js';
import { Graph } from '../src/ir/graph.js';
import { DEFAULT_OPSET, Model } from '../src/ir/model.js';
import { registerStandardOps } from '../src/ops/index.js';
import { createSession, toOrt } from '../src/runtime/session.js';

registerStandardOps();
const [N, C, H, B] = [8, 96, 56, 16];
const mk = (kind: string) => {
  const g = new Graph();
  const e = new Emitter(g, DEFAULT_OPSET);
  let y: string;
  if (kind === 'reduce') {
    g.inputs.push({ name: 'z', dtype: 'float32', shape: ['N', C, 2 * H, 2 * H] });
    y = 'z';
  } else if (kind === 'convT') {
    g.inputs.push({ name: 'dy', dtype: 'float32', shape: ['N', C, H, H] }, { name: 'w', dtype: 'float32', shape: [C, 1, 3, 3] });
    y = e.op('ConvTranspose', ['dy', 'w'], { group: C, strides: [2, 2], kernel_shape: [3, 3], pads: [0, 0, 1, 1], output_padding: [1, 1] });
  } else {
    g.inputs.push({ name: 'a', dtype: 'float32', shape: ['N', C / B, H, H, B] }, { name: 'b', dtype: 'float32', shape: ['N', C / B, H, H, B] });
    // column interleave (64-byte chunks), then row interleave (rows of 2·H·B floats)
    const q = e.op('Reshape', [e.op('Concat', ['a', 'b'], { axis: 4 }), e.ints([0, C / B, H, 2 * H * B])]);
    y = e.op('Concat', [q, q], { axis: 3 });
  }
  g.outputs = [{ name: e.op('ReduceMax', [y], { keepdims: 0 }), dtype: 'float32' }];
  return createSession(new Model(g, DEFAULT_OPSET), { threads: 2 });
};
const ss = { convT: await mk('convT'), interleave: await mk('interleave'), reduce: await mk('reduce') };
const feeds = {
  convT: { dy: toOrt(randn([N, C, H, H], 1)), w: toOrt(randn([C, 1, 3, 3], 2)) },
  reduce: { z: toOrt(randn([N, C, 2 * H, 2 * H], 3)) },
  interleave: { a: toOrt(randn([N, C / B, H, H, B], 1)), b: toOrt(randn([N, C / B, H, H, B], 2)) },
};
const best: Record<string, number> = {};
for (let i = 0; i < 20; i++)
  for (const [k, s] of Object.entries(ss)) {
    const c = process.cpuUsage();
    await s.run(feeds[k as keyof typeof feeds]);
    const u = process.cpuUsage(c);
    best[k] = Math.min(best[k] ?? 1e9, (u.user + u.system) / 1000);
  }
console.log(`load ${loadavg()[0]!.toFixed(1)}; best CPU ms:`, best);
