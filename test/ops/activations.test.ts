import assert from 'node:assert/strict';
import { test } from 'node:test';
import { randn } from '../../src/autodiff/gradcheck.js';
import { Emitter } from '../../src/ir/emit.js';
import { Graph } from '../../src/ir/graph.js';
import { emitGelu } from '../../src/ops/activations.js';
import { Tensor } from '../../src/tensor.js';
import { awayFrom, EVERY_RULE, expectGrad, expectShapesMatchOrt, randomShape } from '../helpers.js';

/** Pointwise ops checked on N(0,1)-ish inputs; `kinks` are points where the derivative jumps. */
const POINTWISE: { op: string; attrs?: Record<string, number>; kinks?: number[]; scale?: number }[] = [
  { op: 'Relu', kinks: [0] },
  { op: 'LeakyRelu', kinks: [0] },
  { op: 'LeakyRelu', attrs: { alpha: 0.3 }, kinks: [0] },
  { op: 'Sigmoid', scale: 2 },
  { op: 'Tanh', scale: 1.5 },
  { op: 'Erf' },
  { op: 'Softplus', scale: 2 },
  { op: 'Softsign', kinks: [0] },
  { op: 'Elu', kinks: [0] },
  { op: 'Elu', attrs: { alpha: 0.7 }, kinks: [0] },
  { op: 'Selu', kinks: [0] },
  { op: 'HardSigmoid', kinks: [-2.5, 2.5], scale: 3 },
  { op: 'HardSigmoid', attrs: { alpha: 0.5, beta: 0.25 }, kinks: [-0.5, 1.5], scale: 2 },
  { op: 'HardSwish', kinks: [-3, 3], scale: 3 },
];

for (const [k, { op, attrs, kinks, scale }] of POINTWISE.entries()) {
  test(`${op}${attrs ? ` ${JSON.stringify(attrs)}` : ''} gradient`, async () => {
    const x = randn(randomShape(1 + (k % 4), 100 + k, 2, 4), 10 + k);
    const d = x.data as Float32Array;
    for (let i = 0; i < d.length; i++) d[i]! *= scale ?? 1;
    awayFrom(x, kinks ?? [], 0.1);
    await expectGrad(op, { inputs: { x }, wrt: ['x'], build: (e) => e.op(op, ['x'], attrs) });
  });
}

test('HardSwish gradient covers all three pieces', async () => {
  const x = Tensor.f32([8], [-4.5, -3.4, -2.5, -0.5, 0.7, 2.6, 3.3, 5]);
  await expectGrad('HardSwish', { inputs: { x }, wrt: ['x'], build: (e) => e.op('HardSwish', ['x']) });
});

test('Clip as ReLU6 with constant bounds (opset 13 and 17)', async () => {
  const x = awayFrom(randn([3, 5], 21, { lo: -3, hi: 9 }), [0, 6], 0.15);
  for (const opset of [13, 17]) await expectGrad('Clip', { opset, inputs: { x }, wrt: ['x'], build: (e) => e.op('Clip', ['x', e.scalar(0), e.scalar(6)]) });
});

test('Clip with only one bound (empty-string input) or none', async () => {
  const x = awayFrom(randn([4, 3], 22, { lo: -3, hi: 3 }), [-1, 1], 0.1);
  await expectGrad('Clip', { inputs: { x }, wrt: ['x'], build: (e) => e.op('Clip', ['x', '', e.scalar(1)]) });
  await expectGrad('Clip', { inputs: { x }, wrt: ['x'], build: (e) => e.op('Clip', ['x', e.scalar(-1)]) });
  await expectGrad('Clip', { inputs: { x }, wrt: ['x'], build: (e) => e.op('Clip', ['x']) });
});

test('Clip gradient for the bounds themselves', async () => {
  const x = awayFrom(randn([5, 4], 23, { lo: -2, hi: 2 }), [-0.5, 0.8], 0.1);
  await expectGrad('Clip', {
    inputs: { x, lo: Tensor.f32([], [-0.5]), hi: Tensor.f32([], [0.8]) },
    wrt: ['x', 'lo', 'hi'],
    build: (e) => e.op('Clip', ['x', 'lo', 'hi']),
  });
});

test('PRelu: slope broadcast per channel, per last axis, full shape', async () => {
  const x = randn([2, 3, 4, 2], 31, { awayFromZero: 0.1 });
  const cases: [string, Tensor][] = [
    ['[C,1,1]', randn([3, 1, 1], 32)],
    ['[W]', randn([2], 33)],
    ['[1]', randn([1], 34)],
    ['full', randn([2, 3, 4, 2], 35)],
  ];
  for (const [, slope] of cases) await expectGrad('PRelu', { inputs: { x, slope }, wrt: ['x', 'slope'], build: (e) => e.op('PRelu', ['x', 'slope']) });
});

test('Gelu op (opset 20, 21) both approximations', async () => {
  const x = randn([3, 4], 41, { lo: -3, hi: 3 });
  for (const opset of [20, 21])
    for (const approximate of ['none', 'tanh'])
      await expectGrad('Gelu', { opset, inputs: { x }, wrt: ['x'], build: (e) => e.op('Gelu', ['x'], { approximate }) });
});

test('emitGelu: the Erf/Tanh fallback below opset 20 matches the Gelu op and differentiates', async () => {
  const x = randn([2, 6], 42, { lo: -4, hi: 4 });
  for (const approximate of ['none', 'tanh'] as const) {
    const ref = await expectShapesMatchOrt({ x }, (e) => emitGelu(e, 'x', approximate), 20);
    const fallback = await expectShapesMatchOrt({ x }, (e) => emitGelu(e, 'x', approximate), 17);
    const [a, b] = [Object.values(ref)[0]!.data as Float32Array, Object.values(fallback)[0]!.data as Float32Array];
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) < 1e-5, `gelu(${approximate}) fallback differs at ${i}: ${a[i]} vs ${b[i]}`);
    await expectGrad(EVERY_RULE, { opset: 13, inputs: { x }, wrt: ['x'], build: (e) => emitGelu(e, 'x', approximate) });
  }
});

test('Gelu below opset 20 is refused with a clear message', () => {
  const g = new Graph();
  g.inputs.push({ name: 'x', dtype: 'float32', shape: [2] });
  const e = new Emitter(g, 17);
  assert.throws(() => e.op('Gelu', ['x']), /opset 20.*emitGelu/);
  assert.throws(() => new Emitter(g, 20).op('Gelu', ['x'], { approximate: 'fast' }), /"none" or "tanh"/);
});

test('activations chained on a batch keep shapes and gradients (opset 13 and 18)', async () => {
  const x = randn([2, 3, 4], 51, { awayFromZero: 0.1 });
  for (const opset of [13, 18])
    await expectGrad(EVERY_RULE, {
      opset,
      inputs: { x },
      wrt: ['x'],
      build: (e) => e.op('Tanh', [e.op('LeakyRelu', [e.op('Sigmoid', [e.op('Elu', ['x'])])], { alpha: 0.2 })]),
    });
});

test('Clip passes the gradient on [min, max] inclusive and blocks it outside, at the bounds exactly too', async () => {
  const { backward } = await import('../../src/autodiff/backward.js');
  const { Model } = await import('../../src/ir/model.js');
  const { createSession, runHost } = await import('../../src/runtime/session.js');
  const g = new Graph();
  g.inputs.push({ name: 'x', dtype: 'float32', shape: [7] });
  const e = new Emitter(g, 17);
  const loss = e.reduceSum(e.mul(e.op('Clip', ['x', e.scalar(0), e.scalar(6)]), e.constTensor(Tensor.f32([7], [1, 2, 3, 4, 5, 6, 7]))), 'all', false);
  const { grads } = backward(g, 17, loss, ['x']);
  g.outputs = [{ name: grads.get('x')!, dtype: 'float32' }];
  const x = Tensor.f32([7], [-1, 0, 0.5, 6, 6.5, 3, Number.NaN]);
  const r = await runHost(await createSession(new Model(g, 17), { threads: 1 }), { x });
  assert.deepEqual([...(r[grads.get('x')!]!.data as Float32Array)], [0, 2, 3, 4, 0, 6, 0]);
});
