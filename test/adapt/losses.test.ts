import assert from 'node:assert/strict';
import { test } from 'node:test';
import { domainAdversarialLoss, grlLambda } from '../../src/adapt/adversarial.js';
import { coralLoss, mccLoss, mmdLoss, pseudoLabelLoss } from '../../src/adapt/losses.js';
import { backward } from '../../src/autodiff/backward.js';
import { randn } from '../../src/autodiff/gradcheck.js';
import type { Emitter } from '../../src/ir/emit.js';
import { Graph } from '../../src/ir/graph.js';
import { DEFAULT_OPSET, Model } from '../../src/ir/model.js';
import { createSession, runHost } from '../../src/runtime/session.js';
import { Tensor } from '../../src/tensor.js';
import { EVERY_RULE, expectGrad } from '../helpers.js';

/** Runs a scalar loss built on the given inputs and returns its value. */
async function value(inputs: Record<string, Tensor>, build: (e: Emitter) => string): Promise<number> {
  const g = new Graph();
  for (const [name, t] of Object.entries(inputs)) g.inputs.push({ name, dtype: t.dtype, shape: [...t.dims] });
  const { Emitter: E } = await import('../../src/ir/emit.js');
  const e = new E(g, DEFAULT_OPSET);
  const y = build(e);
  g.outputs = [{ name: y, dtype: 'float32', shape: [] }];
  g.prune();
  const r = await runHost(await createSession(new Model(g, DEFAULT_OPSET), { threads: 1 }), inputs);
  return (r[y]!.data as Float32Array)[0]!;
}

const rowsOf = (t: Tensor) => Array.from({ length: t.dims[0]! }, (_, i) => Array.from((t.data as Float32Array).subarray(i * t.dims[1]!, (i + 1) * t.dims[1]!)));
const d2 = (a: number[], b: number[]) => a.reduce((s, v, k) => s + (v - b[k]!) ** 2, 0);

test('Deep CORAL: gradient wrt source and target features; value = mean((μs−μt)²) + mean((Cs−Ct)²)', async () => {
  const fs = randn([6, 3], 1);
  const ft = randn([5, 3], 2, { lo: -1, hi: 2 });
  await expectGrad(EVERY_RULE, { inputs: { fs, ft }, wrt: ['fs', 'ft'], build: (e) => coralLoss(e, 'fs', 'ft') });
  const stats = (t: Tensor) => {
    const r = rowsOf(t);
    const d = r[0]!.length;
    const mu = Array.from({ length: d }, (_, k) => r.reduce((s, x) => s + x[k]!, 0) / r.length);
    const cov = Array.from({ length: d * d }, (_, ij) => {
      const i = Math.floor(ij / d);
      const j = ij % d;
      return r.reduce((s, x) => s + (x[i]! - mu[i]!) * (x[j]! - mu[j]!), 0) / (r.length - 1);
    });
    return { mu, cov };
  };
  const a = stats(fs);
  const b = stats(ft);
  const want = d2(a.mu, b.mu) / 3 + d2(a.cov, b.cov) / 9;
  assert.ok(Math.abs((await value({ fs, ft }, (e) => coralLoss(e, 'fs', 'ft'))) - want) < 1e-4);
});

test('DAN multi-kernel MMD: gradient wrt the joint features (fixed bandwidth); heuristics match a host computation', async () => {
  const all = randn([9, 3], 3);
  await expectGrad(EVERY_RULE, { inputs: { all }, wrt: ['all'], build: (e) => mmdLoss(e, 'all', 4, { bandwidth: 3, multipliers: [0.5, 1, 2] }) });
  const r = rowsOf(all);
  const n = 4;
  const m = 5;
  const dist = r.map((a) => r.map((b) => d2(a, b)));
  const off: number[] = [];
  for (let i = 0; i < 9; i++) for (let j = 0; j < 9; j++) if (i !== j) off.push(dist[i]![j]!);
  const upper: number[] = [];
  for (let i = 0; i < 9; i++) for (let j = i + 1; j < 9; j++) upper.push(dist[i]![j]!);
  upper.sort((a, b) => a - b);
  const host = (sigma: number, mults: number[]) => {
    let s = 0;
    for (let i = 0; i < 9; i++)
      for (let j = 0; j < 9; j++) {
        if (i === j) continue;
        const k = mults.reduce((acc, q) => acc + Math.exp(-dist[i]![j]! / (2 * sigma * q)), 0);
        const si = i < n;
        const sj = j < n;
        s += k * (si && sj ? 1 / (n * (n - 1)) : !si && !sj ? 1 / (m * (m - 1)) : -1 / (n * m));
      }
    return s;
  };
  const mean = off.reduce((a, b) => a + b, 0) / 81; // the full 9×9 matrix, diagonal zeros included
  const median = upper[Math.ceil(upper.length / 2) - 1]!;
  const mults = [0.125, 0.25, 0.5, 1, 2];
  assert.ok(Math.abs((await value({ all }, (e) => mmdLoss(e, 'all', n, { bandwidth: 'mean' }))) - host(mean, mults)) < 1e-4);
  assert.ok(Math.abs((await value({ all }, (e) => mmdLoss(e, 'all', n, { bandwidth: 'median' }))) - host(median, mults)) < 1e-4);
  // identical domains give ≈ 0 only in expectation; a shifted target gives a clearly larger value
  const shifted = all.clone();
  for (let i = n * 3; i < 27; i++) (shifted.data as Float32Array)[i]! += 3;
  assert.ok((await value({ all: shifted }, (e) => mmdLoss(e, 'all', n))) > (await value({ all }, (e) => mmdLoss(e, 'all', n))));
});

test("DAN's default kernels are TLlib's: Σ_k exp(−D/(2·2^k·mean D)), quadratic estimate = TLlib's value − 2/(n − 1)", async () => {
  // TLlib (tllib/alignment/dan.py, linear=False; tllib/modules/kernels.py GaussianKernel), restated on the host
  const n = 5;
  const all = randn([2 * n, 4], 7);
  const r = rowsOf(all);
  const dist = r.map((a) => r.map((b) => d2(a, b)));
  const meanAll = dist.flat().reduce((a, b) => a + b, 0) / (2 * n) ** 2;
  let tllib = 2 / (n - 1);
  for (let i = 0; i < 2 * n; i++)
    for (let j = 0; j < 2 * n; j++) {
      const k = [-3, -2, -1, 0, 1].reduce((acc, p) => acc + Math.exp(-dist[i]![j]! / (2 * 2 ** p * meanAll)), 0);
      const same = i < n === j < n;
      tllib += k * (same ? (i === j ? 0 : 1 / (n * (n - 1))) : -1 / (n * n));
    }
  const graft = await value({ all }, (e) => mmdLoss(e, 'all', n));
  assert.ok(Math.abs(graft + 2 / (n - 1) - tllib) < 1e-5, `graft ${graft} + 2/(n−1) vs TLlib ${tllib}`);
});

test('MCC: gradient wrt the target logits (entropy weights differentiated, as the reference)', async () => {
  await expectGrad(EVERY_RULE, { inputs: { logits: randn([6, 4], 4, { lo: -2, hi: 2 }) }, wrt: ['logits'], build: (e) => mccLoss(e, 'logits', 2.5) });
  // one-hot-like confident, balanced predictions have almost no class confusion
  const sharp = Tensor.f32([4, 4]);
  for (let i = 0; i < 4; i++) (sharp.data as Float32Array)[i * 4 + i] = 40;
  assert.ok((await value({ logits: sharp }, (e) => mccLoss(e, 'logits'))) < 1e-3);
});

/** The value and the gradient wrt `x` of a scalar loss built on input `x`, through graft's backward pass. */
async function valueAndGrad(x: Tensor, build: (e: Emitter) => string): Promise<{ value: number; grad: Float32Array }> {
  const g = new Graph();
  g.inputs.push({ name: 'x', dtype: 'float32', shape: [...x.dims] });
  const { Emitter: E } = await import('../../src/ir/emit.js');
  const y = build(new E(g, DEFAULT_OPSET));
  const { grads } = backward(g, DEFAULT_OPSET, y, ['x']);
  g.outputs = [
    { name: y, dtype: 'float32', shape: [] },
    { name: grads.get('x')!, dtype: 'float32', shape: [...x.dims] },
  ];
  const r = await runHost(await createSession(new Model(g, DEFAULT_OPSET), { threads: 1 }), { x });
  return { value: (r[y]!.data as Float32Array)[0]!, grad: r[grads.get('x')!]!.data as Float32Array };
}

test("MCC detachWeights: TLlib's gradient (entropy weights held constant), the same value, and not the reference's gradient", async () => {
  const x = randn([6, 4], 4, { lo: -2, hi: 2 });
  const [b, c] = [6, 4];
  const T = 2.5;
  // TLlib's MinimumClassConfusionLoss restated in float64, the entropy weights computed from `wx` (a constant)
  const mcc = (xs: Float64Array, wx: Float64Array) => {
    const soft = (v: Float64Array) =>
      Array.from({ length: b }, (_, i) => {
        const row = Array.from(v.subarray(i * c, (i + 1) * c), (z) => Math.exp(z / T));
        const s = row.reduce((a, z) => a + z, 0);
        return row.map((z) => z / s);
      });
    const p = soft(xs);
    const w0 = soft(wx).map((q) => 1 + Math.exp(q.reduce((a, v) => a + v * Math.log(v + 1e-5), 0)));
    const w = w0.map((v) => (b * v) / w0.reduce((a, z) => a + z, 0));
    let loss = 0;
    for (let k = 0; k < c; k++) {
      const row = Array.from({ length: c }, (_, l) => p.reduce((a, pi, i) => a + pi[k]! * w[i]! * pi[l]!, 0));
      const sum = row.reduce((a, v) => a + v, 0);
      loss += (sum - row[k]!) / sum;
    }
    return loss / c;
  };
  const x0 = Float64Array.from(x.data as Float32Array);
  const h = 1e-5;
  const want = Array.from(x0, (_, i) => {
    const up = x0.slice();
    const down = x0.slice();
    up[i]! += h;
    down[i]! -= h;
    return (mcc(up, x0) - mcc(down, x0)) / (2 * h);
  });
  const detached = await valueAndGrad(x, (e) => mccLoss(e, 'x', T, { detachWeights: true }));
  const differentiated = await valueAndGrad(x, (e) => mccLoss(e, 'x', T));
  const maxDiff = (g: Float32Array) => Math.max(...want.map((v, i) => Math.abs(v - g[i]!)));
  assert.ok(Math.abs(detached.value - mcc(x0, x0)) < 1e-6, `value ${detached.value} vs ${mcc(x0, x0)}`);
  assert.equal(detached.value, differentiated.value);
  assert.ok(maxDiff(detached.grad) < 1e-6, `detached gradient off TLlib's by ${maxDiff(detached.grad)}`);
  // the reference's gradient (weights differentiated) is another one: the check can tell them apart
  assert.ok(maxDiff(differentiated.grad) > 5e-5, `differentiated gradient within ${maxDiff(differentiated.grad)} of TLlib's`);
});

test('pseudo-label loss: gradient wrt the student logits only; mask and labels from the teacher', async () => {
  const teacher = randn([6, 3], 5, { lo: -3, hi: 3 });
  await expectGrad(EVERY_RULE, {
    inputs: { student: randn([6, 3], 6), teacher },
    wrt: ['student'],
    build: (e) => pseudoLabelLoss(e, 'student', 'teacher', 0.5).loss,
  });
  const t = Tensor.f32([2, 2], [5, 0, 0.1, 0]); // first row confident (class 0), second not
  const s = Tensor.f32([2, 2], [0, 0, 0, 0]);
  assert.ok(Math.abs((await value({ student: s, teacher: t }, (e) => pseudoLabelLoss(e, 'student', 'teacher', 0.9).loss)) - Math.log(2) / 2) < 1e-5);
});

test('DANN and CDAN(+E) discriminator losses: gradient wrt the features (λ = −1 makes the GRL a plain identity)', async () => {
  const lam = Tensor.scalar(-1);
  const feats = randn([6, 3], 9); // a seed whose discriminator ReLUs sit away from their kink at eps = 1e-2
  const logits = randn([6, 4], 8);
  for (const [conditional, entropyWeight] of [
    [false, false],
    [true, false],
    [true, true],
  ] as const) {
    await expectGrad(EVERY_RULE, {
      inputs: { feats, logits, lam },
      wrt: ['feats'],
      build: (e) => domainAdversarialLoss(e, 'feats', 3, { lambda: 'lam', hidden: 5, seed: 3, conditional, entropyWeight, logits: 'logits' }).loss,
    });
  }
});

test('GRL schedule λ(p) = 2/(1+exp(−10p)) − 1', () => {
  assert.equal(grlLambda(0), 0);
  assert.ok(Math.abs(grlLambda(1) - 0.9999092) < 1e-6);
  assert.ok(Math.abs(grlLambda(0.1) - (2 / (1 + Math.exp(-1)) - 1)) < 1e-12);
});

test('losses reject shapes they cannot use, naming the loss', async () => {
  await assert.rejects(
    value({ a: randn([1, 3], 1), b: randn([4, 3], 2) }, (e) => coralLoss(e, 'a', 'b')),
    /coralLoss: covariances need at least 2/,
  );
  await assert.rejects(
    value({ a: randn([4, 3], 1), b: randn([4, 2], 2) }, (e) => coralLoss(e, 'a', 'b')),
    /same feature layer/,
  );
  await assert.rejects(
    value({ a: randn([5, 3], 1) }, (e) => mmdLoss(e, 'a', 1)),
    /at least 2 samples per domain/,
  );
  await assert.rejects(
    value({ a: randn([5, 3], 1) }, (e) => mccLoss(e, 'a', 0)),
    /temperature must be > 0/,
  );
});
