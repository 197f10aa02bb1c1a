/**
 * Every differentiable op, one table (in the style of JAX's `LAX_GRAD_OPS`): for each op that has a gradient rule
 * in the op table, one small graph whose gradient is checked against central finite differences in strict mode
 * (the check must also fail when that op's rule is scaled by 1.1). The test fails when an op with a rule has no
 * entry here, so a new rule cannot go unchecked. Inputs stay away from kinks (Abs, Relu, Clip bounds, max ties)
 * and inside domains (Sqrt, Log, Pow, Reciprocal). The per-family files in test/ops/ check more configurations.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type GradCheckSpec, randn } from '../../src/autodiff/gradcheck.js';
import type { AttrValue } from '../../src/ir/graph.js';
import { differentiableOps } from '../../src/ir/op-registry.js';
import { emitBatchNormTrain } from '../../src/ops/bn-train.js';
import { gradReverse, stopGradient } from '../../src/ops/grl.js';
import { registerStandardOps } from '../../src/ops/index.js';
import { Rng, Tensor } from '../../src/tensor.js';
import { awayFrom, expectGrad } from '../helpers.js';

registerStandardOps();

/** Values 0.1 apart in random order, shifted by `offset`: no ties closer than eps = 0.01 for max-like ops. */
function spaced(dims: number[], seed: number, offset = 0): Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  return Tensor.f32(
    dims,
    Array.from(new Rng(seed).permutation(n), (v) => (Number(v) - n / 2) * 0.1 + offset),
  );
}
const positive = (dims: number[], seed: number) => randn(dims, seed, { lo: 0.5, hi: 2 });
const nonZero = (dims: number[], seed: number) => randn(dims, seed, { awayFromZero: 0.2 });
const i64 = (dims: number[], values: number[]) => Tensor.i64(dims, values);

/** One unary op on x. */
const unary = (op: string, x: Tensor, attrs: Record<string, AttrValue> = {}): GradCheckSpec => ({
  inputs: { x },
  wrt: ['x'],
  build: (e) => e.op(op, ['x'], attrs),
});
/** One binary op on a [2,3] and a broadcast b [3]. */
const binary = (op: string, a: Tensor, b: Tensor): GradCheckSpec => ({ inputs: { a, b }, wrt: ['a', 'b'], build: (e) => e.op(op, ['a', 'b']) });

const GRAD_OPS: Record<string, () => GradCheckSpec> = {
  Abs: () => unary('Abs', nonZero([3, 4], 1)),
  Add: () => binary('Add', randn([2, 3], 1), randn([3], 2)),
  AveragePool: () => unary('AveragePool', randn([1, 2, 5, 5], 1), { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }),
  BatchNormTrain: () => ({
    inputs: { x: randn([4, 3, 2, 2], 1), scale: positive([3], 2), B: randn([3], 3) },
    wrt: ['x', 'scale', 'B'],
    build: (e) => emitBatchNormTrain(e, 'x', 'scale', 'B', 1e-5, e.graph.fresh('y'))[0]!,
  }),
  BatchNormalization: () => ({
    inputs: { x: randn([2, 3, 4], 1), scale: positive([3], 2), B: randn([3], 3), mean: randn([3], 4), var: positive([3], 5) },
    wrt: ['x', 'scale', 'B', 'mean', 'var'],
    build: (e) => e.op('BatchNormalization', ['x', 'scale', 'B', 'mean', 'var']),
  }),
  Cast: () => ({
    inputs: { x: randn([3, 4], 1) },
    wrt: ['x'],
    build: (e) => e.op('Cast', [e.mul(e.op('Cast', ['x'], { to: 11 }), e.op('Cast', [e.scalar(2)], { to: 11 }))], { to: 1 }),
  }),
  Clip: () => ({
    inputs: { x: awayFrom(randn([4, 5], 1, { lo: -2, hi: 2 }), [-0.5, 0.8]) },
    wrt: ['x'],
    build: (e) => e.op('Clip', ['x', e.scalar(-0.5), e.scalar(0.8)]),
  }),
  Concat: () => ({ inputs: { a: randn([2, 3], 1), b: randn([2, 2], 2) }, wrt: ['a', 'b'], build: (e) => e.op('Concat', ['a', 'b'], { axis: 1 }) }),
  Conv: () => ({
    inputs: { x: randn([1, 2, 5, 5], 1), w: randn([3, 2, 3, 3], 2), b: randn([3], 3) },
    wrt: ['x', 'w', 'b'],
    build: (e) => e.op('Conv', ['x', 'w', 'b'], { pads: [1, 1, 1, 1], strides: [2, 2] }),
  }),
  ConvTranspose: () => ({
    inputs: { x: randn([1, 2, 3, 3], 1), w: randn([2, 3, 3, 3], 2), b: randn([3], 3) },
    wrt: ['x', 'w', 'b'],
    build: (e) => e.op('ConvTranspose', ['x', 'w', 'b'], { strides: [2, 2] }),
  }),
  DepthToSpace: () => unary('DepthToSpace', randn([1, 4, 2, 3], 1), { blocksize: 2 }),
  Div: () => binary('Div', randn([2, 3], 1), nonZero([3], 2)),
  Dropout: () => ({ inputs: { x: randn([3, 4], 1) }, wrt: ['x'], build: (e) => e.opN('Dropout', ['x', e.scalar(0.5)], {}, 2)[0]! }),
  Elu: () => unary('Elu', nonZero([3, 4], 1), { alpha: 0.7 }),
  Erf: () => unary('Erf', randn([3, 4], 1)),
  Exp: () => unary('Exp', randn([3, 4], 1)),
  Expand: () => ({ inputs: { x: randn([3, 1], 1) }, wrt: ['x'], build: (e) => e.op('Expand', ['x', e.ints([2, 3, 4])]) }),
  Flatten: () => unary('Flatten', randn([2, 3, 4], 1), { axis: 1 }),
  Gather: () => ({ inputs: { x: randn([5, 3], 1) }, wrt: ['x'], build: (e) => e.op('Gather', ['x', e.constTensor(i64([3], [3, 0, 3]))], { axis: 0 }) }),
  GatherElements: () => ({
    inputs: { x: randn([3, 4], 1) },
    wrt: ['x'],
    build: (e) => e.op('GatherElements', ['x', e.constTensor(i64([3, 2], [0, 3, 1, 1, 2, 0]))], { axis: 1 }),
  }),
  Gelu: () => ({ opset: 20, ...unary('Gelu', randn([3, 4], 1), { approximate: 'tanh' }) }),
  Gemm: () => ({
    inputs: { a: randn([3, 4], 1), b: randn([5, 4], 2), c: randn([5], 3) },
    wrt: ['a', 'b', 'c'],
    build: (e) => e.op('Gemm', ['a', 'b', 'c'], { transB: 1, alpha: 0.7, beta: 1.3 }),
  }),
  GlobalAveragePool: () => unary('GlobalAveragePool', randn([2, 3, 4, 4], 1)),
  GlobalMaxPool: () => unary('GlobalMaxPool', spaced([2, 3, 3, 3], 1)),
  // its backward (−λ·dy) is not the derivative of its forward (identity) by design: z − (1+λ)·StopGradient(x) has the
  // forward value −λ·x, whose true derivative is what the rule must produce (see grl.test.ts)
  GradReverse: () => ({
    inputs: { x: randn([3, 4], 1), lam: Tensor.scalar(0.7) },
    wrt: ['x'],
    build: (e) => e.sub(gradReverse(e, 'x', 'lam'), e.mul(e.add(e.scalar(1), 'lam'), stopGradient(e, 'x'))),
  }),
  HardSigmoid: () => unary('HardSigmoid', awayFrom(randn([4, 5], 1, { lo: -4, hi: 4 }), [-2.5, 2.5]), { alpha: 0.2, beta: 0.5 }),
  HardSwish: () => unary('HardSwish', awayFrom(randn([4, 5], 1, { lo: -5, hi: 5 }), [-3, 3])),
  Identity: () => ({ inputs: { x: randn([3, 4], 1) }, wrt: ['x'], build: (e) => e.mul(e.op('Identity', ['x']), 'x') }),
  InstanceNormalization: () => ({
    inputs: { x: randn([2, 3, 5], 1), scale: randn([3], 2), B: randn([3], 3) },
    wrt: ['x', 'scale', 'B'],
    build: (e) => e.op('InstanceNormalization', ['x', 'scale', 'B']),
  }),
  LayerNormalization: () => ({
    inputs: { x: randn([2, 3, 4], 1), s: randn([4], 2), b: randn([4], 3) },
    wrt: ['x', 's', 'b'],
    build: (e) => e.op('LayerNormalization', ['x', 's', 'b']),
  }),
  LeakyRelu: () => unary('LeakyRelu', nonZero([3, 4], 1), { alpha: 0.1 }),
  Log: () => unary('Log', positive([3, 4], 1)),
  LogSoftmax: () => unary('LogSoftmax', randn([3, 4], 1), { axis: -1 }),
  MatMul: () => ({ inputs: { a: randn([2, 3, 4], 1), b: randn([4, 2], 2) }, wrt: ['a', 'b'], build: (e) => e.op('MatMul', ['a', 'b']) }),
  Max: () => binary('Max', spaced([2, 3], 1), spaced([3], 2, 0.05)),
  MaxPool: () => unary('MaxPool', spaced([1, 2, 4, 4], 1), { kernel_shape: [2, 2], strides: [2, 2] }),
  Min: () => binary('Min', spaced([2, 3], 1), spaced([3], 2, 0.05)),
  Mul: () => binary('Mul', randn([2, 3], 1), randn([3], 2)),
  Neg: () => ({ inputs: { x: randn([3, 4], 1) }, wrt: ['x'], build: (e) => e.mul(e.op('Neg', ['x']), 'x') }),
  PRelu: () => ({ inputs: { x: nonZero([2, 3, 4], 1), slope: randn([3, 1], 2) }, wrt: ['x', 'slope'], build: (e) => e.op('PRelu', ['x', 'slope']) }),
  Pad: () => ({ inputs: { x: randn([2, 3], 1) }, wrt: ['x'], build: (e) => e.op('Pad', ['x', e.ints([1, 0, 0, 2])]) }),
  Pow: () => binary('Pow', positive([2, 3], 1), randn([3], 2)),
  Reciprocal: () => unary('Reciprocal', positive([3, 4], 1)),
  ReduceMax: () => ({ inputs: { x: spaced([3, 4], 1) }, wrt: ['x'], build: (e) => e.reduce('ReduceMax', 'x', [1], false) }),
  ReduceMean: () => ({ inputs: { x: randn([3, 4], 1) }, wrt: ['x'], build: (e) => e.reduceMean('x', [0], false) }),
  ReduceSum: () => ({ inputs: { x: randn([3, 4], 1) }, wrt: ['x'], build: (e) => e.mul(e.reduceSum('x', [1], true), 'x') }),
  ReduceSumSquare: () => ({ inputs: { x: randn([3, 4], 1) }, wrt: ['x'], build: (e) => e.reduce('ReduceSumSquare', 'x', [1], true) }),
  Relu: () => unary('Relu', nonZero([3, 4], 1)),
  Reshape: () => ({
    inputs: { x: randn([2, 6], 1) },
    wrt: ['x'],
    build: (e) => e.mul(e.op('Reshape', ['x', e.ints([3, 4])]), e.op('Reshape', ['x', e.ints([3, 4])])),
  }),
  Selu: () => unary('Selu', nonZero([3, 4], 1)),
  Sigmoid: () => unary('Sigmoid', randn([3, 4], 1)),
  Slice: () => ({
    inputs: { x: randn([4, 5], 1) },
    wrt: ['x'],
    build: (e) => e.op('Slice', ['x', e.ints([1, 0]), e.ints([3, 5]), e.ints([0, 1]), e.ints([1, 2])]),
  }),
  Softmax: () => unary('Softmax', randn([3, 4], 1), { axis: -1 }),
  Softplus: () => unary('Softplus', randn([3, 4], 1)),
  Softsign: () => unary('Softsign', randn([3, 4], 1)),
  SpaceToDepth: () => unary('SpaceToDepth', randn([1, 2, 4, 6], 1), { blocksize: 2 }),
  Split: () => ({ inputs: { x: randn([4, 6], 1) }, wrt: ['x'], build: (e) => e.opN('Split', ['x', e.ints([2, 4])], { axis: 1 }, 2) }),
  Sqrt: () => unary('Sqrt', positive([3, 4], 1)),
  Squeeze: () => ({ inputs: { x: randn([2, 1, 3], 1) }, wrt: ['x'], build: (e) => e.mul(e.squeeze('x', [1]), e.squeeze('x', [1])) }),
  Sub: () => binary('Sub', randn([2, 3], 1), randn([3], 2)),
  Sum: () => ({ inputs: { a: randn([2, 3], 1), b: randn([3], 2), c: randn([2, 3], 3) }, wrt: ['a', 'b', 'c'], build: (e) => e.op('Sum', ['a', 'b', 'c']) }),
  Tanh: () => unary('Tanh', randn([3, 4], 1)),
  Tile: () => ({ inputs: { x: randn([2, 3], 1) }, wrt: ['x'], build: (e) => e.op('Tile', ['x', e.ints([2, 1])]) }),
  Transpose: () => ({ inputs: { x: randn([2, 3, 4], 1) }, wrt: ['x'], build: (e) => e.mul(e.transpose('x', [2, 0, 1]), e.transpose('x', [2, 0, 1])) }),
  Unsqueeze: () => ({ inputs: { x: randn([2, 3], 1) }, wrt: ['x'], build: (e) => e.mul(e.unsqueeze('x', [1]), e.unsqueeze('x', [1])) }),
  Where: () => ({
    inputs: { a: randn([2, 3], 1), b: randn([3], 2) },
    wrt: ['a', 'b'],
    build: (e) => e.op('Where', [e.constTensor(new Tensor('bool', [2, 3], Uint8Array.of(1, 0, 0, 1, 1, 0)), 'cond'), 'a', 'b']),
  }),
};

test('every op with a gradient rule has an entry in the table, and every entry is a differentiable op', () => {
  const ops = differentiableOps();
  assert.ok(ops.length > 50, `only ${ops.length} differentiable ops registered`);
  const missing = ops.filter((op) => !(op in GRAD_OPS));
  assert.deepEqual(missing, [], 'ops with a gradient rule but no entry in GRAD_OPS (test/ops/all-ops.test.ts): add one');
  const stale = Object.keys(GRAD_OPS).filter((op) => !ops.includes(op));
  assert.deepEqual(stale, [], 'entries in GRAD_OPS for ops without a gradient rule: remove them');
});

for (const op of differentiableOps())
  test(`gradient of ${op} matches finite differences (strict)`, async () => {
    const spec = GRAD_OPS[op];
    assert.ok(spec, `${op} has a gradient rule but no entry in GRAD_OPS`);
    await expectGrad(op, spec(), op);
  });
