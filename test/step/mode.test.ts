import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backward } from '../../src/autodiff/backward.js';
import { randn } from '../../src/autodiff/gradcheck.js';
import { Emitter } from '../../src/ir/emit.js';
import { Graph } from '../../src/ir/graph.js';
import { Model } from '../../src/ir/model.js';
import { createSession, runHost } from '../../src/runtime/session.js';
import { streamId, toInferenceGraph, toTrainingGraph } from '../../src/step/mode.js';
import { Tensor } from '../../src/tensor.js';
import { EVERY_RULE, expectGrad } from '../helpers.js';

const OPSET = 17;

/** Host reference of randomUniformLike's hash (BigInt), pinning the algorithm bit for bit. */
function refUniform(count: number, seed: number, stream: number): Float64Array {
  const M = 2n ** 31n;
  const A = [1103515245n, 22695477n, 134775813n];
  const mod = (v: bigint) => ((v % M) + M) % M;
  const s = Math.fround(seed);
  const whole = Math.floor(s);
  const frac = Math.floor(Math.fround(s - whole) * 2 ** 24);
  let a = mod(mod(BigInt(whole)) * 2654435761n + BigInt(frac) * 1013904223n + BigInt(stream));
  const keys: bigint[] = [];
  for (let r = 0; r < 3; r++) {
    a = mod(a * A[r]! + 987654321n);
    a = mod((a * a) / 65536n);
    keys.push(a);
  }
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    let h = BigInt(i) % M;
    for (let r = 0; r < 3; r++) {
      h = mod(h * A[r]! + keys[r]!);
      h = mod((h * h) / 65536n + keys[r]!);
    }
    h = mod(h * 1664525n + keys[0]!);
    out[i] = Number(h / 128n) / 2 ** 24;
  }
  return out;
}

/** x [N, 100] → two Dropout nodes (ratio 0.3 and 0.5) with mask outputs, rewritten for training. */
function dropoutGraph(opset = OPSET) {
  const g = new Graph();
  g.inputs.push({ name: 'x', dtype: 'float32', shape: ['N', 100] });
  const e = new Emitter(g, opset);
  const [y1, m1] = e.opN('Dropout', ['x', e.scalar(0.3)], {}, 2, 'drop_a');
  const [y2, m2] = e.opN('Dropout', ['x', e.scalar(0.5)], {}, 2, 'drop_b');
  g.outputs = [y1!, m1!, y2!, m2!].map((name) => ({ name, dtype: g.info(name)!.dtype, shape: g.info(name)!.shape }));
  toTrainingGraph(g, opset, { trainBN: () => true, dropoutSeed: 'seed' });
  return { g, y1: y1!, m1: m1!, y2: y2!, m2: m2! };
}

async function run(g: Graph, feeds: Record<string, Tensor>, opset = OPSET) {
  const s = await createSession(new Model(g, opset), { threads: 1, optimization: 'disabled' });
  return runHost(s, feeds);
}

const ones = (n: number, c: number) => Tensor.f32([n, c], new Float32Array(n * c).fill(1));
const maskOf = (t: Tensor) => Array.from(t.data as Uint8Array);

test('dropout mask: keep rate, scaling, reproducibility, distinct seeds and nodes', async () => {
  const { g, y1, m1, m2 } = dropoutGraph();
  assert.ok(!g.nodes.some((n) => n.op === 'Dropout'), 'Dropout nodes remain after toTrainingGraph');
  assert.ok(
    g.inputs.some((v) => v.name === 'seed' && v.dtype === 'float32'),
    'the seed input was not added',
  );
  const x = randn([100, 100], 3);
  const r1 = await run(g, { x, seed: Tensor.scalar(17) });
  const mask = maskOf(r1[m1]!);
  const keep = mask.reduce((a, b) => a + b, 0) / mask.length;
  assert.ok(Math.abs(keep - 0.7) < 0.02, `keep rate ${keep} is not within 2% of 0.7`);
  const maskB = maskOf(r1[m2]!);
  const keepB = maskB.reduce((a, b) => a + b, 0) / mask.length;
  assert.ok(Math.abs(keepB - 0.5) < 0.02, `keep rate ${keepB} is not within 2% of 0.5`);
  const xd = x.data as Float32Array;
  const yd = r1[y1]!.data as Float32Array;
  for (let i = 0; i < xd.length; i++) assert.ok(Math.abs(yd[i]! - (mask[i] ? xd[i]! / 0.7 : 0)) < 1e-5, `element ${i}: y is not x·mask/(1−ratio)`);
  // the two nodes use different streams
  const same = mask.filter((v, i) => v === maskB[i]).length / mask.length;
  assert.ok(same < 0.6, `two Dropout nodes produced correlated masks (${same} agreement)`);
  // adjacent elements are not correlated
  let agree = 0;
  for (let i = 1; i < mask.length; i++) if (mask[i] === mask[i - 1]) agree++;
  const expected = 0.7 * 0.7 + 0.3 * 0.3;
  assert.ok(Math.abs(agree / (mask.length - 1) - expected) < 0.02, `adjacent mask bits agree ${agree / (mask.length - 1)}, expected ≈ ${expected}`);

  // another seed: a different mask; a fresh rewrite of a fresh graph with the same seed: the same bits
  const r2 = await run(g, { x, seed: Tensor.scalar(18) });
  const mask2 = maskOf(r2[m1]!);
  const differ = mask.filter((v, i) => v !== mask2[i]).length / mask.length;
  assert.ok(differ > 0.3, `masks of seeds 17 and 18 differ in only ${differ} of the elements`);
  const again = dropoutGraph();
  const r3 = await run(again.g, { x, seed: Tensor.scalar(17) });
  assert.deepEqual(Array.from(r3[again.y1]!.data as Float32Array), Array.from(yd), 'the same seed must reproduce the output bit for bit');
  // non-integer seeds work and differ from their integer part
  const r4 = await run(g, { x, seed: Tensor.scalar(17.25) });
  const mask4 = maskOf(r4[m1]!);
  assert.ok(
    mask.some((v, i) => v !== mask4[i]),
    'seed 17.25 gave the same mask as 17',
  );
});

test('dropout mask matches the host reference bit for bit, for any batch size and opset', async () => {
  for (const [n, seed, opset] of [
    [3, 0, 17],
    [7, 123.5, 13],
    [1, -4, 21],
  ] as const) {
    const { g, m1, y1 } = dropoutGraph(opset);
    const r = await run(g, { x: ones(n, 100), seed: Tensor.scalar(seed) }, opset);
    const ref = refUniform(n * 100, seed, streamId(y1));
    assert.deepEqual(
      maskOf(r[m1]!),
      Array.from(ref, (u) => (u >= Math.fround(0.3) ? 1 : 0)),
      `batch ${n}, seed ${seed}`,
    );
  }
});

test('gradient through the rewritten dropout is mask/(1−ratio); without a seed Dropout is Identity', async () => {
  const { g, y1, m1 } = dropoutGraph();
  const e = new Emitter(g, OPSET);
  const loss = e.reduceSum(y1, 'all', false);
  const { grads } = backward(g, OPSET, loss, ['x']);
  g.outputs = [
    { name: grads.get('x')!, dtype: 'float32', shape: ['N', 100] },
    { name: m1, dtype: 'bool', shape: ['N', 100] },
  ];
  const r = await run(g, { x: randn([4, 100], 1), seed: Tensor.scalar(5) });
  const gx = r[grads.get('x')!]!.data as Float32Array;
  for (const [i, m] of maskOf(r[m1]!).entries()) assert.ok(Math.abs(gx[i]! - (m ? 1 / 0.7 : 0)) < 1e-5, `element ${i}`);

  const plain = new Graph();
  plain.inputs.push({ name: 'x', dtype: 'float32', shape: ['N', 4] });
  const pe = new Emitter(plain, OPSET);
  const [y, mask] = pe.opN('Dropout', ['x', pe.scalar(0.5), pe.constTensor(new Tensor('bool', [], Uint8Array.of(1)))], {}, 2);
  plain.outputs = [
    { name: y!, dtype: 'float32', shape: ['N', 4] },
    { name: mask!, dtype: 'bool', shape: ['N', 4] },
  ];
  toTrainingGraph(plain, OPSET, { trainBN: () => false });
  assert.ok(!plain.nodes.some((n) => n.op === 'Dropout'));
  const x = randn([3, 4], 2);
  const rp = await run(plain, { x });
  assert.deepEqual(Array.from(rp[y!]!.data as Float32Array), Array.from(x.data as Float32Array));
  assert.ok(maskOf(rp[mask!]!).every((v) => v === 1));
});

test('Dropout gradient rule: identity in inference form, a clear error in training form', async () => {
  await expectGrad(EVERY_RULE, { inputs: { x: randn([3, 4], 1) }, wrt: ['x'], build: (e) => e.opN('Dropout', ['x', e.scalar(0.5)], {}, 2)[0]! });
  const g = new Graph();
  g.inputs.push({ name: 'x', dtype: 'float32', shape: [3, 4] });
  const e = new Emitter(g, OPSET);
  const y = e.op('Dropout', ['x', e.scalar(0.5), e.constTensor(new Tensor('bool', [], Uint8Array.of(1)))]);
  assert.throws(() => backward(g, OPSET, e.reduceSum(y, 'all', false), ['x']), /toTrainingGraph/);
});

test('toInferenceGraph removes Dropout, puts BN in eval mode, and onnxruntime runs the result', async () => {
  const g = new Graph();
  g.inputs.push({ name: 'x', dtype: 'float32', shape: ['N', 3, 4, 4] });
  const e = new Emitter(g, OPSET);
  const stat = (seed: number, lo = -1, hi = 1) => e.constTensor(randn([3], seed, { lo, hi }));
  const trueT = e.constTensor(new Tensor('bool', [], Uint8Array.of(1)));
  const [d1] = e.opN('Dropout', ['x', e.scalar(0.4), trueT], {}, 2);
  const [bn] = e.opN('BatchNormalization', [d1!, stat(1), stat(2), stat(3), stat(4, 0.5, 2)], { training_mode: 1, epsilon: 1e-3 }, 3);
  const relu = e.op('Relu', [bn!]);
  const out = e.op('Dropout', [relu, e.scalar(0.2), trueT]);
  g.outputs = [{ name: out, dtype: 'float32', shape: ['N', 3, 4, 4] }];
  const res = toInferenceGraph(g);
  assert.deepEqual(res, { dropoutsRemoved: 2, batchNorms: 1 });
  assert.ok(!g.nodes.some((n) => n.op === 'Dropout'), 'a Dropout node remains');
  const bnNode = g.nodes.find((n) => n.op === 'BatchNormalization')!;
  assert.equal(bnNode.attrs.training_mode, undefined);
  assert.equal(bnNode.outputs.length, 1);
  assert.equal(bnNode.inputs[0], 'x', 'the first Dropout was not bypassed');

  // reference: eval BN then ReLU, twice with the same input (deterministic)
  const x = randn([2, 3, 4, 4], 9);
  const r = await run(g, { x });
  const p = ['scale', 'B', 'mean', 'var'].map((_, i) => g.initializers.get(bnNode.inputs[i + 1]!)!.data as Float32Array);
  const xd = x.data as Float32Array;
  const yd = r[out]!.data as Float32Array;
  for (let i = 0; i < xd.length; i++) {
    const c = Math.floor(i / 16) % 3;
    const ref = Math.max(0, ((xd[i]! - p[2]![c]!) / Math.sqrt(p[3]![c]! + 1e-3)) * p[0]![c]! + p[1]![c]!);
    assert.ok(Math.abs(yd[i]! - ref) < 1e-5, `element ${i}: ${yd[i]} vs ${ref}`);
  }
});

test('frozen BatchNormalization (trainBN false) is put in eval mode by toTrainingGraph', async () => {
  const g = new Graph();
  g.inputs.push({ name: 'x', dtype: 'float32', shape: [4, 3] });
  const e = new Emitter(g, OPSET);
  const c = (v: number[]) => e.constTensor(Tensor.f32([3], v));
  const [y] = e.opN('BatchNormalization', ['x', c([1, 2, 3]), c([0, 0, 1]), c([0.5, -1, 0]), c([4, 1, 0.25])], { training_mode: 1 }, 3);
  g.outputs = [{ name: y!, dtype: 'float32', shape: [4, 3] }];
  const { runningStats } = toTrainingGraph(g, OPSET, { trainBN: () => false });
  assert.deepEqual(runningStats, []);
  const x = randn([4, 3], 2);
  const r = await run(g, { x });
  const xd = x.data as Float32Array;
  const [sc, b, m, v] = [
    [1, 2, 3],
    [0, 0, 1],
    [0.5, -1, 0],
    [4, 1, 0.25],
  ];
  for (let i = 0; i < 12; i++) {
    const k = i % 3;
    const ref = ((xd[i]! - m![k]!) / Math.sqrt(v![k]! + 1e-5)) * sc![k]! + b![k]!;
    assert.ok(Math.abs((r[y!]!.data as Float32Array)[i]! - ref) < 1e-4);
  }
});
