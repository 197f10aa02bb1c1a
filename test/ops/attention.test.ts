/**
 * Gradients of the patterns a BERT block is made of, beyond the one-op-per-row table in all-ops.test.ts (which
 * already checks Gather, LayerNormalization, Softmax, Erf, Where and MatMul [2,3,4]·[4,2]): MatMul of two batched
 * 4-D operands with broadcast batch dims (Q·Kᵀ, weights·V), Softmax over a 4-D score tensor with the additive
 * padding mask, and one whole self-attention block from int64 token ids (embedding Gather, mask from the pad id,
 * LayerNorm, masked attention, GELU) against central finite differences. Each check must fail with a 10% wrong rule.
 */
import { test } from 'node:test';
import { randn } from '../../src/autodiff/gradcheck.js';
import type { Emitter } from '../../src/ir/emit.js';
import { Tensor } from '../../src/tensor.js';
import { EVERY_RULE, expectGrad } from '../helpers.js';

test('MatMul of batched 4-D operands, with and without broadcast batch dims', async () => {
  for (const [da, db] of [
    [
      [2, 2, 3, 4],
      [2, 2, 4, 3],
    ],
    [
      [2, 1, 3, 4],
      [1, 2, 4, 3],
    ],
    [
      [3, 3, 4],
      [2, 3, 4, 2],
    ],
  ])
    await expectGrad('MatMul', { inputs: { a: randn(da!, 1), b: randn(db!, 2) }, wrt: ['a', 'b'], build: (e) => e.op('MatMul', ['a', 'b']) }, `${da} · ${db}`);
});

test('Softmax over the last axis of 4-D scores with the additive padding mask (1 − mask) · −10000', async () => {
  const mask = Tensor.f32([2, 1, 1, 3], [1, 1, 0, 1, 0, 0]);
  await expectGrad('Softmax', {
    inputs: { s: randn([2, 2, 3, 3], 4), mask },
    wrt: ['s'],
    build: (e) => e.op('Softmax', [e.add('s', e.mul(e.sub(e.scalar(1), 'mask'), e.scalar(-10000)))], { axis: -1 }),
  });
});

/** One BERT-style block on token ids [2, 4] (pad id 0), hidden 4, 2 heads; returns the block's output [2, 4, 4]. */
function block(e: Emitter): string {
  const N = 2;
  const T = 4;
  const H = 4;
  const heads = 2;
  const d = H / heads;
  const x0 = e.op('Gather', ['emb', 'ids'], { axis: 0 });
  const x = e.op('LayerNormalization', [x0, 'ln_s', 'ln_b'], { axis: -1 });
  const real = e.op('Cast', [e.op('Not', [e.op('Equal', ['ids', e.constTensor(Tensor.i64([], [0]))])])], { to: 1 });
  const bias = e.mul(e.sub(e.scalar(1), e.op('Reshape', [real, e.ints([N, 1, 1, T])])), e.scalar(-10000));
  const split = (v: string) => e.op('Transpose', [e.op('Reshape', [v, e.ints([N, T, heads, d])])], { perm: [0, 2, 1, 3] });
  const q = split(e.op('MatMul', [x, 'wq']));
  const k = split(e.op('MatMul', [x, 'wk']));
  const v = split(e.op('MatMul', [x, 'wv']));
  const scores = e.add(e.mul(e.op('MatMul', [q, e.op('Transpose', [k], { perm: [0, 1, 3, 2] })]), e.scalar(1 / Math.sqrt(d))), bias);
  const ctx = e.op('MatMul', [e.op('Softmax', [scores], { axis: -1 }), v]);
  const merged = e.op('Reshape', [e.op('Transpose', [ctx], { perm: [0, 2, 1, 3] }), e.ints([N, T, H])]);
  const h = e.add(merged, x);
  // GELU as BERT writes it: 0.5 · h · (1 + erf(h / √2))
  return e.mul(e.mul(h, e.scalar(0.5)), e.add(e.scalar(1), e.op('Erf', [e.div(h, e.scalar(Math.SQRT2))])));
}

test('a whole self-attention block from int64 token ids with padding: embeddings, LayerNorm and projections', async () => {
  await expectGrad(
    EVERY_RULE,
    {
      inputs: {
        ids: Tensor.i64([2, 4], [3, 1, 4, 0, 2, 2, 0, 0]),
        emb: randn([5, 4], 1),
        ln_s: randn([4], 2, { lo: 0.5, hi: 1.5 }),
        ln_b: randn([4], 3),
        wq: randn([4, 4], 4),
        wk: randn([4, 4], 5),
        wv: randn([4, 4], 6),
      },
      wrt: ['emb', 'ln_s', 'ln_b', 'wq', 'wk', 'wv'],
      build: block,
    },
    'attention block',
  );
});
