import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gradCheck, randn } from '../../src/autodiff/gradcheck.js';
import { defineOp, opDef } from '../../src/ir/op-registry.js';
import { sameAsInput } from '../../src/ir/shape-utils.js';
import { expectGrad } from '../helpers.js';

test('Add/Sub/Mul/Div with broadcasting', async () => {
  for (const op of ['Add', 'Sub', 'Mul', 'Div']) {
    await expectGrad(op, {
      inputs: { a: randn([2, 3, 4], 1), b: randn([3, 1], 2, { awayFromZero: 0.5 }) },
      wrt: ['a', 'b'],
      build: (e) => e.op(op, ['a', 'b']),
    });
  }
});

test('Gemm with every transpose combination and bias', async () => {
  for (const [ta, tb] of [
    [0, 0],
    [0, 1],
    [1, 0],
    [1, 1],
  ]) {
    await expectGrad('Gemm', {
      inputs: { a: randn(ta ? [4, 3] : [3, 4], 3), b: randn(tb ? [5, 4] : [4, 5], 4), c: randn([5], 5) },
      wrt: ['a', 'b', 'c'],
      build: (e) => e.op('Gemm', ['a', 'b', 'c'], { transA: ta!, transB: tb!, alpha: 0.7, beta: 1.3 }),
    });
  }
});

test('MatMul 2-D and batched with broadcasting', async () => {
  await expectGrad('MatMul', { inputs: { a: randn([3, 4], 1), b: randn([4, 2], 2) }, wrt: ['a', 'b'], build: (e) => e.op('MatMul', ['a', 'b']) });
  await expectGrad('MatMul', { inputs: { a: randn([2, 3, 4], 1), b: randn([4, 2], 2) }, wrt: ['a', 'b'], build: (e) => e.op('MatMul', ['a', 'b']) });
});

test('a wrong rule is caught', async () => {
  const real = opDef('Exp')!;
  defineOp('Exp', { infer: sameAsInput(), grad: (e, n, [dy]) => [e.mul(e.mul(dy!, n.outputs[0]!), e.scalar(1.05))] });
  try {
    const r = await gradCheck({ inputs: { a: randn([3, 4], 1) }, wrt: ['a'], build: (e) => e.op('Exp', ['a']) });
    assert.equal(r.ok, false, 'a 5% wrong Exp gradient must fail the check');
  } finally {
    defineOp('Exp', real);
  }
});
