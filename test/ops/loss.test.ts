import assert from 'node:assert/strict';
import { test } from 'node:test';
import { randn } from '../../src/autodiff/gradcheck.js';
import { Emitter } from '../../src/ir/emit.js';
import { Graph } from '../../src/ir/graph.js';
import { Model } from '../../src/ir/model.js';
import { createSession, runHost } from '../../src/runtime/session.js';
import { binaryCrossEntropyWithLogits, type CrossEntropyOptions, mseLoss, softmaxCrossEntropy } from '../../src/step/loss.js';
import { Tensor } from '../../src/tensor.js';
import { EVERY_RULE, expectGrad } from '../helpers.js';

const N = 5;
const C = 4;
const LABELS = [2, 0, 3, 3, 1];

/** PyTorch's F.cross_entropy, written the way aten does it: (1−ε)·nll(weight) + ε/C·Σ_i Σ_c w_c(−logp) / Σ_i w_{y_i}. */
function torchCrossEntropy(logits: Float32Array, labels: number[], c: number, opts: CrossEntropyOptions) {
  const eps = opts.labelSmoothing ?? 0;
  const w = opts.classWeights ?? Array(c).fill(1);
  const n = labels.length;
  let nll = 0;
  let smooth = 0;
  let wsum = 0;
  const none: number[] = [];
  for (let i = 0; i < n; i++) {
    const row = Array.from(logits.subarray(i * c, (i + 1) * c));
    const mx = Math.max(...row);
    const lse = mx + Math.log(row.reduce((a, v) => a + Math.exp(v - mx), 0));
    const logp = row.map((v) => v - lse);
    const y = labels[i]!;
    const nllI = -w[y]! * logp[y]!;
    const smoothI = -logp.reduce((a, v, k) => a + w[k]! * v, 0);
    nll += nllI;
    smooth += smoothI;
    wsum += w[y]!;
    none.push((1 - eps) * nllI + (eps / c) * smoothI);
  }
  return { loss: (1 - eps) * (nll / wsum) + (eps / c) * (smooth / wsum), none };
}

async function runLoss(logits: Tensor, labels: number[], opts: CrossEntropyOptions, batch: number | string = N) {
  const g = new Graph();
  g.inputs.push({ name: 'logits', dtype: 'float32', shape: [batch, C] }, { name: 'labels', dtype: 'int64', shape: [batch] });
  const e = new Emitter(g, 17);
  const r = softmaxCrossEntropy(e, 'logits', 'labels', C, opts);
  g.outputs = [r.loss, r.correct, r.perSample].map((name) => ({ name, dtype: 'float32' as const, shape: g.info(name)?.shape }));
  assert.deepEqual(g.info(r.correct)?.shape, [], 'correct must be a scalar');
  const sess = await createSession(new Model(g, 17), { threads: 1 });
  const out = await runHost(sess, { logits, labels: Tensor.i64([labels.length], labels) });
  return { loss: out[r.loss]!.toNumbers()[0]!, correct: out[r.correct]!.toNumbers()[0]!, perSample: out[r.perSample]!.toNumbers() };
}

const VARIANTS: CrossEntropyOptions[] = [{}, { labelSmoothing: 0.1 }, { classWeights: [0.5, 2, 1, 3] }, { classWeights: [0.5, 2, 1, 3], labelSmoothing: 0.2 }];

test('softmaxCrossEntropy gradient wrt logits (plain, smoothing, class weights, both)', async () => {
  for (const opts of VARIANTS)
    await expectGrad('LogSoftmax', {
      inputs: { logits: randn([N, C], 1), labels: Tensor.i64([N], LABELS) },
      wrt: ['logits'],
      build: (e) => softmaxCrossEntropy(e, 'logits', 'labels', C, opts).loss,
    });
  for (const opset of [13, 21])
    await expectGrad(EVERY_RULE, {
      opset,
      inputs: { logits: randn([N, C], 2), labels: Tensor.i64([N], LABELS) },
      wrt: ['logits'],
      build: (e) => softmaxCrossEntropy(e, 'logits', 'labels', C, VARIANTS[3]).loss,
    });
});

test('softmaxCrossEntropy values match PyTorch semantics, with a symbolic batch size', async () => {
  const logits = randn([N, C], 3);
  for (const opts of VARIANTS)
    for (const batch of [N, 'N']) {
      const r = await runLoss(logits, LABELS, opts, batch);
      const ref = torchCrossEntropy(logits.data as Float32Array, LABELS, C, opts);
      assert.ok(Math.abs(r.loss - ref.loss) < 1e-5, `${JSON.stringify(opts)}: loss ${r.loss} vs ${ref.loss}`);
      for (const [i, v] of ref.none.entries())
        assert.ok(Math.abs(r.perSample[i]! - v) < 1e-5, `${JSON.stringify(opts)}: sample ${i} ${r.perSample[i]} vs ${v}`);
    }
});

test('correct counts argmax hits; the first maximum wins on ties', async () => {
  const logits = Tensor.f32([N, C], [0, 1, 5, 2, 3, 1, 1, 1, 0, 0, 0, 0, 1, 2, 0, 9, 0, 0, 0, 0]);
  // argmax per row: 2, 0, 0 (all tied), 3, 0 (all tied) — labels 2, 0, 3, 3, 1 → hits rows 0, 1, 3
  assert.equal((await runLoss(logits, LABELS, {})).correct, 3);
});

test('softmaxCrossEntropy rejects bad arguments with actionable messages', () => {
  const g = new Graph();
  g.inputs.push({ name: 'logits', dtype: 'float32', shape: ['N', C] }, { name: 'labels', dtype: 'int64', shape: ['N'] });
  const e = new Emitter(g, 17);
  assert.throws(() => softmaxCrossEntropy(e, 'logits', 'labels', C + 1), /expected \[N, 5\]/);
  assert.throws(() => softmaxCrossEntropy(e, 'logits', 'labels', C, { classWeights: [1, 2] }), /4 non-negative/);
  assert.throws(() => softmaxCrossEntropy(e, 'logits', 'labels', C, { labelSmoothing: 1.5 }), /outside \[0, 1\]/);
});

test('mseLoss gradient and value', async () => {
  await expectGrad('Sub', { inputs: { p: randn([3, 4], 1), t: randn([3, 4], 2) }, wrt: ['p'], build: (e) => mseLoss(e, 'p', 't').loss });
  const p = randn([3, 4], 1);
  const t = randn([3, 4], 2);
  const g = new Graph();
  g.inputs.push({ name: 'p', dtype: 'float32', shape: [3, 4] }, { name: 't', dtype: 'float32', shape: [3, 4] });
  const { loss } = mseLoss(new Emitter(g, 17), 'p', 't');
  g.outputs = [{ name: loss, dtype: 'float32', shape: [] }];
  const r = await runHost(await createSession(new Model(g, 17), { threads: 1 }), { p, t });
  const pd = p.data as Float32Array;
  const ref = Array.from(t.data as Float32Array).reduce((a, v, i) => a + (pd[i]! - v) ** 2, 0) / 12;
  assert.ok(Math.abs(r[loss]!.toNumbers()[0]! - ref) < 1e-5);
  assert.throws(() => mseLoss(new Emitter(g, 17), 'p', g.addInitializer('t2', Tensor.f32([4, 3]))), /must match/);
});

test('binaryCrossEntropyWithLogits gradient and value (with pos_weight)', async () => {
  const x = randn([3, 4], 5, { lo: -4, hi: 4 });
  const t = randn([3, 4], 6, { lo: 0, hi: 1 });
  for (const posWeight of [undefined, [1, 2, 0.5, 3]]) {
    await expectGrad(EVERY_RULE, { inputs: { x, t }, wrt: ['x'], build: (e) => binaryCrossEntropyWithLogits(e, 'x', 't', { posWeight }).loss });
    const g = new Graph();
    g.inputs.push({ name: 'x', dtype: 'float32', shape: [3, 4] }, { name: 't', dtype: 'float32', shape: [3, 4] });
    const { loss } = binaryCrossEntropyWithLogits(new Emitter(g, 17), 'x', 't', { posWeight });
    g.outputs = [{ name: loss, dtype: 'float32', shape: [] }];
    const r = await runHost(await createSession(new Model(g, 17), { threads: 1 }), { x, t });
    const xd = x.data as Float32Array;
    const td = t.data as Float32Array;
    let ref = 0;
    for (let i = 0; i < 12; i++) {
      const sig = 1 / (1 + Math.exp(-xd[i]!));
      const pw = posWeight?.[i % 4] ?? 1;
      ref += -(pw * td[i]! * Math.log(sig) + (1 - td[i]!) * Math.log(1 - sig));
    }
    assert.ok(Math.abs(r[loss]!.toNumbers()[0]! - ref / 12) < 1e-5, `BCE ${r[loss]!.toNumbers()[0]} vs ${ref / 12}`);
  }
});
