/**
 * Kernel-level A/B (not a test): the backward of MobileNetV2's BN-train + ReLU6 pair on one expanded activation, in
 * several formulations, best of `--iters`, alternating, in one process.
 * Run: node --import tsx bench/bn-relu6-backward.ts [--iters 15] [--threads 2]
 */
import { parseArgs } from 'node:util';
import { randn } from '../src/autodiff/gradcheck.js';
import { Emitter } from '../src/ir/emit.js';
import { FLOAT_ATTRS, Graph } from '../src/ir/graph.js';
import { DEFAULT_OPSET, Model } from '../src/ir/model.js';
import { registerStandardOps } from '../src/ops/index.js';
import { createSession, type ort, toOrt } from '../src/runtime/session.js';
import { Tensor } from '../src/tensor.js';

registerStandardOps();
FLOAT_ATTRS.add('activation_params'); // FusedConv's (bench only)
const { values } = parseArgs({ options: { iters: { type: 'string', default: '15' }, threads: { type: 'string', default: '2' } } });
const iters = Number(values.iters);
const threads = Number(values.threads);

type Variant = (e: Emitter, C: number, M: number) => string[];
const axes = [0, 2, 3];
/** Shared tail: a = γ·invstd; b = −a·invstd²·sK/M; c = −a·Σg/M (as bn-train.ts). */
function coeffs(e: Emitter, sK: string, sg: string, M: number) {
  const a = e.mul('gamma', 'invstd');
  const b = e.neg(e.div(e.mul(e.mul(a, e.mul('invstd', 'invstd')), sK), e.scalar(M)));
  const c = e.neg(e.div(e.mul(a, sg), e.scalar(M)));
  return { a, b, c };
}
const vec = (e: Emitter, t: string) => e.op('Reshape', [t, e.ints([-1])]);
function affine(e: Emitter, x: string, s: string, b: string, C: number) {
  const fill = (v: number) => e.constTensor(Tensor.f32([C], new Float32Array(C).fill(v)));
  return e.op('BatchNormalization', [x, vec(e, s), vec(e, b), fill(0), fill(1)], { epsilon: 0 });
}
const masked = (e: Emitter) => e.mul('dz', e.op('Cast', ['m'], { to: 1 }));
const variants: Record<string, Variant> = {
  current: (e, C, M) => {
    const g = masked(e);
    const sg = e.reduceSum(g, axes, true);
    const sK = e.reduceSum(e.mul(g, 'cen'), axes, true);
    const { a, b, c } = coeffs(e, sK, sg, M);
    return [e.add(e.mul(g, a), affine(e, 'cen', b, c, C)), sK, sg];
  },
  where: (e, C, M) => {
    const g = e.op('Where', ['m', 'dz', e.scalar(0)]);
    const sg = e.reduceSum(g, axes, true);
    const sK = e.reduceSum(e.mul(g, 'cen'), axes, true);
    const { a, b, c } = coeffs(e, sK, sg, M);
    return [e.add(e.mul(g, a), affine(e, 'cen', b, c, C)), sK, sg];
  },
  matmulDot: (e, C, M) => {
    const g = masked(e);
    const sg = e.reduceSum(g, axes, true);
    const rows = (v: string, tail: number[]) => e.op('Reshape', [v, e.ints([0, C, ...tail])]);
    const sK = e.reduceSum(e.op('MatMul', [rows(g, [1, -1]), rows('cen', [-1, 1])]), [0], true); // [1, C, 1, 1]
    const { a, b, c } = coeffs(e, sK, sg, M);
    return [e.add(e.mul(g, a), affine(e, 'cen', b, c, C)), sK, sg];
  },
  matmulBoth: (e, C, M) => {
    const g = masked(e);
    const rows = (v: string, tail: number[]) => e.op('Reshape', [v, e.ints([0, C, ...tail])]);
    const gr = rows(g, [-1]);
    const ones = e.constTensor(Tensor.f32([M / 8, 1], new Float32Array(M / 8).fill(1)));
    const sg = e.op('Reshape', [e.reduceSum(e.op('MatMul', [gr, ones]), [0], true), e.ints([1, C, 1, 1])]);
    const sK = e.reduceSum(e.op('MatMul', [rows(g, [1, -1]), rows('cen', [-1, 1])]), [0], true);
    const { a, b, c } = coeffs(e, sK, sg, M);
    return [e.add(e.mul(g, a), affine(e, 'cen', b, c, C)), sK, sg];
  },
  mulAddBcast: (e, _C, M) => {
    const g = masked(e);
    const sg = e.reduceSum(g, axes, true);
    const sK = e.reduceSum(e.mul(g, 'cen'), axes, true);
    const { a, b, c } = coeffs(e, sK, sg, M);
    return [e.add(e.add(e.mul(g, a), e.mul('cen', b)), c), sK, sg];
  },
  // session 9, kept: a = γ·invstd folded into the Conv that made the BN's input (its weight for dX, its dW), so the
  // BN's output is dx / a = g + b′·(x − μ) + c′, b′ = −invstd²·sK/M, c′ = −Σg/M: two full-size passes instead of three
  foldA: (e, C, M) => {
    const g = masked(e);
    const sg = e.reduceSum(g, axes, true);
    const sK = e.reduceSum(e.mul(g, 'cen'), axes, true);
    const b1 = e.neg(e.div(e.mul(e.mul('invstd', 'invstd'), sK), e.scalar(M)));
    const c1 = e.neg(e.div(sg, e.scalar(M)));
    return [e.add(g, affine(e, 'cen', b1, c1, C)), sK, sg];
  },
  fusedConvSum: (e, C, M) => {
    const g = masked(e);
    const sg = e.reduceSum(g, axes, true);
    const sK = e.reduceSum(e.mul(g, 'cen'), axes, true);
    const { a, b, c } = coeffs(e, sK, sg, M);
    const w = e.op('Reshape', [b, e.ints([C, 1, 1, 1])]);
    const y = e.graph.fresh('fc');
    const ins = ['cen', w, vec(e, c), e.mul(g, a)];
    e.graph.addNode(
      'FusedConv',
      ins,
      [y],
      { group: C, kernel_shape: [1, 1], activation: 'Clip', activation_params: [-3.4e38, 3.4e38] },
      e.graph.fresh('fcn'),
    ).domain = 'com.microsoft';
    return [y, sK, sg];
  },
};

const shapes = process.env.SHAPE
  ? [JSON.parse(process.env.SHAPE) as number[]]
  : [
      [8, 96, 112, 112],
      [8, 144, 56, 56],
      [8, 576, 14, 14],
    ];
for (const s of shapes) {
  const [N, C, H, W] = s as [number, number, number, number];
  const M = N * H * W;
  const sessions: [string, ort.InferenceSession][] = [];
  for (const [name, v] of Object.entries(variants)) {
    const g = new Graph();
    g.inputs.push(
      { name: 'dz', dtype: 'float32', shape: ['N', C, H, W] },
      { name: 'm', dtype: 'bool', shape: ['N', C, H, W] },
      { name: 'cen', dtype: 'float32', shape: ['N', C, H, W] },
      { name: 'gamma', dtype: 'float32', shape: [1, C, 1, 1] },
      { name: 'invstd', dtype: 'float32', shape: [1, C, 1, 1] },
    );
    const e = new Emitter(g, DEFAULT_OPSET);
    g.outputs = v(e, C, M).map((name) => ({ name, dtype: 'float32' }));
    const model = new Model(g, DEFAULT_OPSET);
    if (name === 'fusedConvSum') model.otherOpsets = [...model.otherOpsets, { domain: 'com.microsoft', version: 1 }];
    try {
      sessions.push([name, await createSession(model, { threads })]);
    } catch (err) {
      console.log(`${name}: ${(err as Error).message.slice(0, 200)}`);
    }
  }
  const mask = new Tensor(
    'bool',
    s,
    new Uint8Array(N * C * H * W).map((_, i) => ((i * 2654435761) >>> 28 < 12 ? 1 : 0)),
  );
  const feeds: Record<string, ort.Tensor> = {
    dz: toOrt(randn(s, 1)),
    m: toOrt(mask),
    cen: toOrt(randn(s, 2)),
    gamma: toOrt(randn([1, C, 1, 1], 3)),
    invstd: toOrt(randn([1, C, 1, 1], 4)),
  };
  const best = new Map<string, number>();
  const ref = (await sessions[0]![1].run(feeds)) as Record<string, ort.Tensor>;
  for (const [name, sess] of sessions) {
    const out = (await sess.run(feeds)) as Record<string, ort.Tensor>;
    const [r0, o0] = [Object.values(ref)[0]!.data as Float32Array, Object.values(out)[0]!.data as Float32Array];
    if (name === 'foldA') {
      // its output is dx / a: scaled back on the host for the comparison
      const [ga, is] = [feeds.gamma!.data as Float32Array, feeds.invstd!.data as Float32Array];
      for (let i = 0; i < o0.length; i++) o0[i]! *= ga[Math.floor(i / (H * W)) % C]! * is[Math.floor(i / (H * W)) % C]!;
    }
    let err = 0;
    let big = 0;
    for (let i = 0; i < r0.length; i++) {
      err = Math.max(err, Math.abs(r0[i]! - o0[i]!));
      big = Math.max(big, Math.abs(r0[i]!));
    }
    if (err > 1e-4 * big) console.log(`${name}: dx differs from current by ${err} (max ${big})`);
  }
  for (let i = 0; i < iters; i++)
    for (const [name, sess] of sessions) {
      const t = performance.now();
      await sess.run(feeds);
      best.set(name, Math.min(best.get(name) ?? Infinity, performance.now() - t));
    }
  console.log(`[${s}] ${[...best].map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}`);
}
