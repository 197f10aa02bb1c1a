import assert from 'node:assert/strict';
import { test } from 'node:test';
import { randn } from '../../src/autodiff/gradcheck.js';
import { Emitter } from '../../src/ir/emit.js';
import { Graph } from '../../src/ir/graph.js';
import { expectGrad, expectShapesMatchOrt, randomShape } from '../helpers.js';

const OPSETS = [13, 18, 21];

test('Reshape gradient with 0, -1 and Shape(x) targets', async () => {
  const x = randn([2, 3, 4], 1);
  const w = randn([6, 4], 2);
  for (const opset of OPSETS) {
    await expectGrad('Reshape', { opset, inputs: { x }, wrt: ['x'], build: (e) => e.op('Reshape', ['x', e.ints([0, -1])]) });
    await expectGrad('Reshape', { opset, inputs: { x, w }, wrt: ['x'], build: (e) => e.mul(e.op('Reshape', ['x', e.op('Shape', ['w'])]), 'w') });
  }
});

test('Flatten gradient on every axis', async () => {
  const x = randn(randomShape(4, 3, 2, 3), 3);
  for (const axis of [0, 1, 2, -1]) await expectGrad('Flatten', { inputs: { x }, wrt: ['x'], build: (e) => e.op('Flatten', ['x'], { axis }) });
});

test('Squeeze / Unsqueeze gradients with axes as input (opset 13, 18, 21)', async () => {
  const x = randn([3, 1, 4, 1], 4);
  for (const opset of OPSETS) {
    await expectGrad('Squeeze', { opset, inputs: { x }, wrt: ['x'], build: (e) => e.squeeze('x', [-1]) });
    await expectGrad('Squeeze', { opset, inputs: { x }, wrt: ['x'], build: (e) => e.op('Squeeze', ['x']) });
    await expectGrad('Unsqueeze', { opset, inputs: { x }, wrt: ['x'], build: (e) => e.unsqueeze('x', [0, -1, 3]) });
  }
});

test('Transpose gradient with explicit and default permutation', async () => {
  const x = randn([2, 3, 4, 5], 5);
  for (const perm of [[0, 2, 3, 1], [3, 0, 1, 2], undefined])
    await expectGrad('Transpose', { inputs: { x }, wrt: ['x'], build: (e) => e.op('Transpose', ['x'], perm ? { perm } : {}) });
});

test('Identity gradient', async () => {
  await expectGrad('Identity', { inputs: { x: randn([3, 2], 6) }, wrt: ['x'], build: (e) => e.mul(e.op('Identity', ['x']), e.op('Identity', ['x'])) });
});

test('Cast gradient returns to the input float type (float32 → float64 → float32)', async () => {
  const x = randn([4, 3], 7);
  await expectGrad('Cast', {
    inputs: { x },
    wrt: ['x'],
    build: (e) => {
      const d = e.op('Cast', ['x'], { to: 11 });
      return e.op('Cast', [e.op('Mul', [d, d])], { to: 1 });
    },
  });
});

test('shape-op shape inference matches onnxruntime', async () => {
  const x = randn([2, 1, 3, 4], 8);
  for (const opset of [13, 21])
    await expectShapesMatchOrt(
      { x },
      (e) => [
        e.op('Reshape', ['x', e.ints([0, 0, -1])]),
        e.op('Reshape', ['x', e.ints([-1, 4])]),
        e.op('Flatten', ['x'], { axis: 0 }),
        e.op('Flatten', ['x'], { axis: -2 }),
        e.squeeze('x', [1]),
        e.op('Squeeze', ['x']),
        e.unsqueeze('x', [-1, 0]),
        e.op('Transpose', ['x'], { perm: [3, 1, 0, 2] }),
        e.op('Transpose', ['x']),
        e.op('Shape', ['x']),
        ...(opset >= 15 ? [e.op('Shape', ['x'], { start: -3, end: -1 })] : []),
        e.op('Cast', ['x'], { to: 7 }),
      ],
      opset,
    );
});

test('Squeeze with axes known only at run time leaves the rank unknown instead of guessing', () => {
  const g = new Graph();
  g.inputs.push({ name: 'x', dtype: 'float32', shape: [1, 3, 1] }, { name: 'axes', dtype: 'int64', shape: [1] });
  const y = new Emitter(g, 17).op('Squeeze', ['x', 'axes']);
  assert.equal(g.info(y)?.shape, undefined);
});

test('SpaceToDepth / DepthToSpace (DCR) gradients, and CRD refused', async () => {
  const x = randn([2, 3, 4, 6], 7);
  await expectGrad('SpaceToDepth', { inputs: { x }, wrt: ['x'], build: (e) => e.op('SpaceToDepth', ['x'], { blocksize: 2 }) });
  const z = randn([2, 8, 2, 3], 8);
  await expectGrad('DepthToSpace', { inputs: { z }, wrt: ['z'], build: (e) => e.op('DepthToSpace', ['z'], { blocksize: 2, mode: 'DCR' }) });
  await assert.rejects(
    expectGrad('DepthToSpace', { inputs: { z }, wrt: ['z'], build: (e) => e.op('DepthToSpace', ['z'], { blocksize: 2, mode: 'CRD' }) }),
    /CRD mode/,
  );
});
