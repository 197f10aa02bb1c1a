import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Graph } from '../../src/ir/graph.js';
import { Model, withInitializers } from '../../src/ir/model.js';
import { Tensor } from '../../src/tensor.js';

test('withInitializers folds values into a copy, only under names the model has', () => {
  const g = new Graph();
  g.initializers.set('w', Tensor.f32([2], [1, 2]));
  g.initializers.set('b', Tensor.f32([1], [0]));
  const m = new Model(g);
  const w2 = Tensor.f32([2], [5, 6]);
  const out = withInitializers(
    m,
    new Map([
      ['w', w2],
      ['w.momentum', Tensor.f32([2], [9, 9])],
    ]),
  );
  assert.notEqual(out, m);
  assert.equal(out.graph.initializers.get('w'), w2);
  assert.deepEqual([...out.graph.initializers.keys()].sort(), ['b', 'w']);
  assert.deepEqual([...(m.graph.initializers.get('w')!.data as Float32Array)], [1, 2], 'the original is untouched');
});
