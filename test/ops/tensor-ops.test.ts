import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backward } from '../../src/autodiff/backward.js';
import { randn } from '../../src/autodiff/gradcheck.js';
import { Emitter } from '../../src/ir/emit.js';
import { Graph } from '../../src/ir/graph.js';
import { Model } from '../../src/ir/model.js';
import { createSession, runHost } from '../../src/runtime/session.js';
import { Rng, Tensor } from '../../src/tensor.js';
import { EVERY_RULE, expectGrad, expectShapesMatchOrt, randomShape } from '../helpers.js';

const BIG = Number.MAX_SAFE_INTEGER;

/** Reshape to a constant shape, so a value whose shape inference gave up becomes static again. */
const pin = (e: Emitter, x: string, dims: number[]) => e.op('Reshape', [x, e.ints(dims)]);

test('Concat: any number of inputs, positive and negative axis, random shapes', async () => {
  for (let k = 0; k < 4; k++) {
    const base = randomShape(3, 200 + k, 1, 4);
    const axis = k % 3;
    const shapes = [2, 1, 3].map((extra) => base.map((d, i) => (i === axis ? extra : d)));
    const inputs = Object.fromEntries(shapes.map((s, i) => [`x${i}`, randn(s, 210 + 3 * k + i)]));
    await expectGrad('Concat', {
      inputs,
      wrt: ['x0', 'x2'],
      build: (e) => e.op('Concat', ['x0', 'x1', 'x2'], { axis: k === 3 ? axis - 3 : axis }),
    });
  }
});

test('Concat gradient with a size only known at run time (Slice path)', async () => {
  await expectGrad('Concat', {
    inputs: { a: randn([2, 3], 1), b: randn([2, 4], 2) },
    wrt: ['a', 'b'],
    build: (e) => {
      const runtime = e.op('Concat', [e.op('Slice', [e.op('Shape', ['b']), e.ints([0]), e.ints([2])])], { axis: 0 });
      const b = e.op('Reshape', ['b', runtime]); // shape inference cannot see through this: [null, null]
      const y = e.op('Concat', ['a', b], { axis: 1 });
      assert.deepEqual(e.shape(y), [2, null]);
      return pin(e, y, [2, 7]);
    },
  });
});

test('Split: sizes as input (opset 13, 18), equal split (13), num_outputs with remainder (18)', async () => {
  const x = randn([3, 7, 2], 3);
  await expectGrad('Split', { opset: 13, inputs: { x }, wrt: ['x'], build: (e) => e.opN('Split', ['x', e.ints([2, 4, 1])], { axis: 1 }, 3) });
  await expectGrad('Split', { opset: 18, inputs: { x }, wrt: ['x'], build: (e) => e.opN('Split', ['x', e.ints([5, 2])], { axis: -2 }, 2) });
  await expectGrad('Split', { opset: 13, inputs: { x }, wrt: ['x'], build: (e) => e.opN('Split', ['x'], { axis: 0 }, 3) });
  await expectGrad('Split', { opset: 18, inputs: { x }, wrt: ['x'], build: (e) => e.opN('Split', ['x'], { axis: 1, num_outputs: 3 }, 3) });
});

test('Split gradient when only some outputs are used (zeros for the rest)', async () => {
  const x = randn([4, 6], 4);
  await expectGrad('Split', {
    inputs: { x },
    wrt: ['x'],
    build: (e) => {
      const [a, , c] = e.opN('Split', ['x', e.ints([1, 2, 3])], { axis: 1 }, 3);
      return [a!, c!];
    },
  });
});

test('Slice gradient: unit steps with negative, clamped and partial axes', async () => {
  const x = randn([4, 5, 6], 5);
  const cases: [number[], number[], number[] | null][] = [
    [
      [1, -4],
      [3, BIG],
      [0, 2],
    ], // x[1:3, :, -4:]
    [[-100], [100], [1]], // clamped to the whole axis
    [[0, 1, 2], [-1, -1, 5], null], // axes omitted
    [[-3], [-1], [-2]], // negative axis
  ];
  for (const [starts, ends, axes] of cases)
    await expectGrad('Slice', {
      inputs: { x },
      wrt: ['x'],
      build: (e) => e.op('Slice', ['x', e.ints(starts), e.ints(ends), ...(axes ? [e.ints(axes)] : [])]),
    });
});

test('Slice gradient: steps 2, 3, -1, -2 with clamping', async () => {
  const x = randn([5, 7, 3], 6);
  const cases: [number[], number[], number[], number[]][] = [
    [[0], [BIG], [1], [2]],
    [
      [1, 10],
      [5, -BIG],
      [0, 1],
      [3, -1],
    ], // reversed axis 1, clamped start
    [
      [-1, 6],
      [-6, 0],
      [0, 1],
      [-2, -2],
    ],
    [
      [0, 2, -1],
      [5, 7, -BIG],
      [0, 1, 2],
      [2, 1, -1],
    ],
  ];
  for (const [starts, ends, axes, steps] of cases)
    await expectGrad('Slice', {
      inputs: { x },
      wrt: ['x'],
      build: (e) => e.op('Slice', ['x', e.ints(starts), e.ints(ends), e.ints(axes), e.ints(steps)]),
    });
});

test('Slice shape inference matches onnxruntime on random parameters', async () => {
  const rng = new Rng(77);
  const x = randn([6, 5, 4], 7);
  const pick = (xs: number[]) => xs[rng.int(xs.length)]!;
  await expectShapesMatchOrt({ x }, (e) =>
    Array.from({ length: 40 }, () => {
      const axes = [0, 1, 2].filter(() => rng.next() < 0.7);
      if (axes.length === 0) axes.push(rng.int(3));
      const ends = axes.map(() => pick([-BIG, -7, -3, -1, 0, 1, 2, 4, 6, 9, BIG]));
      const starts = axes.map(() => pick([-9, -4, -1, 0, 1, 3, 5, 8]));
      const steps = axes.map(() => pick([-3, -2, -1, 1, 2, 3]));
      return e.op('Slice', ['x', e.ints(starts), e.ints(ends), e.ints(axes.map((a) => (rng.next() < 0.3 ? a - 3 : a))), e.ints(steps)]);
    }),
  );
});

test('Pad (constant) gradient: positive, negative (crop) and mixed pads, opset 13 and 18', async () => {
  const x = randn([3, 4, 5], 8);
  for (const opset of [13, 18]) {
    await expectGrad('Pad', { opset, inputs: { x }, wrt: ['x'], build: (e) => e.op('Pad', ['x', e.ints([0, 1, 2, 1, 0, 3])]) });
    await expectGrad('Pad', { opset, inputs: { x }, wrt: ['x'], build: (e) => e.op('Pad', ['x', e.ints([-1, 2, -2, 1, -1, 1])]) });
  }
  // opset 18: only some axes, given as an input
  await expectGrad('Pad', { opset: 18, inputs: { x }, wrt: ['x'], build: (e) => e.op('Pad', ['x', e.ints([2, -1, 1, 3]), '', e.ints([-1, 0])]) });
});

test('Pad gradient for the constant value and for pads known only at run time', async () => {
  const x = randn([2, 3], 9);
  await expectGrad('Pad', {
    inputs: { x, v: Tensor.f32([], [0.7]) },
    wrt: ['x', 'v'],
    build: (e) => e.op('Pad', ['x', e.ints([1, 0, 0, 2]), 'v']),
  });
  await expectGrad('Pad', {
    inputs: { x, pads: Tensor.i64([4], [1, -1, 2, 1]) },
    wrt: ['x'],
    build: (e) => pin(e, e.op('Pad', ['x', 'pads']), [5, 3]),
  });
});

test('Pad reflect/edge: shapes infer, the gradient is refused with a clear message', async () => {
  const x = randn([1, 2, 4, 4], 10);
  await expectShapesMatchOrt({ x }, (e) => ['reflect', 'edge'].map((mode) => e.op('Pad', ['x', e.ints([0, 0, 1, 2, 0, 0, 2, 1])], { mode })));
  await assert.rejects(
    expectGrad(EVERY_RULE, { inputs: { x: randn([2, 3], 1) }, wrt: ['x'], build: (e) => e.op('Pad', ['x', e.ints([1, 1, 1, 1])], { mode: 'reflect' }) }),
    /Pad mode "reflect" has no gradient rule.*Freeze/,
  );
});

test('Gather gradient: repeated and negative indices, every axis, ScatterElements (17) and OneHot-MatMul (13)', async () => {
  const data = randn([5, 4, 3], 11);
  const cases: [Tensor, number][] = [
    [Tensor.i64([2, 3], [0, 4, 4, -1, 2, 0]), 0],
    [Tensor.i64([4], [3, 1, 1, -4]), 1],
    [Tensor.i64([], [-2]), -1],
    [Tensor.i64([1, 2, 2], [2, 0, 1, 2]), 2],
  ];
  for (const opset of [13, 17, 21])
    for (const [idx, axis] of cases)
      await expectGrad('Gather', { opset, inputs: { data, idx }, wrt: ['data'], build: (e) => e.op('Gather', ['data', 'idx'], { axis }) });
});

test('GatherElements gradient (scatter-add of repeated indices)', async () => {
  await expectGrad('GatherElements', {
    inputs: { data: randn([3, 4], 12), idx: Tensor.i64([3, 5], [0, 1, 1, 3, -1, 2, 2, 2, 0, 1, 3, 0, 0, 0, 1]) },
    wrt: ['data'],
    build: (e) => e.op('GatherElements', ['data', 'idx'], { axis: 1 }),
  });
});

test('Tile gradient', async () => {
  await expectGrad('Tile', { inputs: { x: randn([2, 3, 1], 13) }, wrt: ['x'], build: (e) => e.op('Tile', ['x', e.ints([2, 1, 3])]) });
});

test('shape inference matches onnxruntime: Concat, Split, Pad, Gather, Tile, ArgMax', async () => {
  const x = randn([4, 6, 5], 14);
  const y = randn([4, 2, 5], 15);
  await expectShapesMatchOrt({ x, y }, (e) => [
    e.op('Concat', ['x', 'y', 'x'], { axis: -2 }),
    ...e.opN('Split', ['x', e.ints([1, 3, 2])], { axis: 1 }, 3),
    ...e.opN('Split', ['x'], { axis: 0 }, 2),
    e.op('Pad', ['x', e.ints([1, -2, 0, 0, 3, 2])]),
    e.op('Gather', ['x', e.ints([0, 3, 3])], { axis: 1 }),
    e.op('Gather', ['x', e.constTensor(Tensor.i64([], [-1]))], { axis: 2 }),
    e.op('Gather', ['x', e.constTensor(Tensor.i64([2, 2], [0, 1, 2, 3]))], { axis: 0 }),
    e.op('Tile', ['y', e.ints([1, 3, 2])]),
    e.op('ArgMax', ['x'], { axis: 1 }),
    e.op('ArgMin', ['x'], { axis: -1, keepdims: 0 }),
  ]);
  await expectShapesMatchOrt({ x }, (e) => [...e.opN('Split', ['x'], { axis: 2, num_outputs: 2 }, 2), e.op('Pad', ['x', e.ints([1, 1]), '', e.ints([1])])], 18);
});

test('shape inference matches onnxruntime: ConstantOfShape, Range, OneHot', async () => {
  const x = randn([3, 2], 16);
  await expectShapesMatchOrt({ x }, (e) => [
    e.op('ConstantOfShape', [e.op('Shape', ['x'])], { value: Tensor.f32([1], [2]) }),
    e.op('ConstantOfShape', [e.ints([2, 5])], { value: Tensor.i64([1], [1]) }),
    e.op('Range', [e.constTensor(Tensor.i64([], [2])), e.constTensor(Tensor.i64([], [11])), e.constTensor(Tensor.i64([], [3]))]),
    e.op('Range', [e.scalar(1), e.scalar(-2), e.scalar(-0.5)]),
    e.op('OneHot', [e.constTensor(Tensor.i64([2, 2], [0, 3, 1, -1])), e.ints([4]), e.constTensor(Tensor.f32([2], [0, 1]))]),
    e.op('OneHot', [e.constTensor(Tensor.i64([3], [0, 2, 1])), e.ints([5]), e.constTensor(Tensor.f32([2], [0, 1]))], { axis: 0 }),
  ]);
});

test('clear errors for bad Concat / Split / Slice parameters', () => {
  const g = new Graph();
  g.inputs.push({ name: 'a', dtype: 'float32', shape: [2, 3] }, { name: 'b', dtype: 'float32', shape: [3, 3] });
  const e = new Emitter(g, 17);
  assert.throws(() => e.op('Concat', ['a', 'b'], { axis: 1 }), /differ in dimension 0.*must match/);
  assert.throws(() => e.opN('Split', ['a', e.ints([1, 1])], { axis: 1 }, 2), /add up to 2.*size 3/);
  assert.throws(() => e.op('Slice', ['a', e.ints([0]), e.ints([1]), e.ints([0]), e.ints([0])]), /step of 0/);
});

test('Slice → ReduceMean → Concat chain at opset 13 (axes attribute) and 18 (axes input)', async () => {
  const x = randn([3, 5, 4], 17);
  for (const opset of [13, 18])
    await expectGrad(EVERY_RULE, {
      opset,
      inputs: { x },
      wrt: ['x'],
      build: (e) => {
        const s = e.op('Slice', ['x', e.ints([1, -1]), e.ints([4, -BIG]), e.ints([1, 2]), e.ints([1, -1])]);
        const [a, b] = e.opN('Split', ['x', e.ints([1, 4])], { axis: 1 }, 2);
        return e.op('Concat', [e.reduceMean(s, [1], true), b!, a!], { axis: 1 });
      },
    });
});

test('Slice x[1:] on a symbolic batch axis: gradient pads only the front', async () => {
  const g = new Graph();
  g.inputs.push({ name: 'x', dtype: 'float32', shape: ['N', 3] });
  const e = new Emitter(g, 17);
  const y = e.op('Slice', ['x', e.ints([1]), e.ints([BIG]), e.ints([0])]);
  assert.deepEqual(e.shape(y), [null, 3]);
  const loss = e.reduceSum(e.mul(y, y), 'all', false);
  const { grads } = backward(g, 17, loss, ['x']);
  g.outputs = [{ name: grads.get('x')!, dtype: 'float32' }];
  const x = randn([4, 3], 18);
  const dx = (await runHost(await createSession(new Model(g, 17)), { x }))[grads.get('x')!]!;
  const xd = x.data as Float32Array;
  for (const [i, v] of (dx.data as Float32Array).entries()) assert.ok(Math.abs(v - (i < 3 ? 0 : 2 * xd[i]!)) < 1e-5, `dx[${i}] = ${v}`);
});

test('ReduceSumSquare gradient, keepdims 0 and 1, opset 13 (axes attribute) and 18 (axes input)', async () => {
  const x = randn([3, 4, 5], 21);
  for (const opset of [13, 18])
    for (const keep of [true, false])
      await expectGrad('ReduceSumSquare', { opset, inputs: { x }, wrt: ['x'], build: (e) => e.reduce('ReduceSumSquare', 'x', [0, 2], keep) });
});
