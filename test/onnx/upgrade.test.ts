/**
 * Models of opsets 7–12 (the ONNX Model Zoo's) are read as opset 13: every op whose form changed is rewritten,
 * and onnxruntime gives the same outputs for the original file (run at its own opset) and graft's upgraded model.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { inferShapes } from '../../src/ir/emit.js';
import { Graph } from '../../src/ir/graph.js';
import { Model } from '../../src/ir/model.js';
import { decodeModel, encodeModel } from '../../src/onnx/io.js';
import { registerStandardOps } from '../../src/ops/index.js';
import { Tensor } from '../../src/tensor.js';
import { run } from './helpers.js';

const wave = (n: number, k: number, amp = 1) => Array.from({ length: n }, (_, i) => Math.sin(i * k + 0.3) * amp);

/** x[N,3,6,6] → Conv → BatchNormalization(spatial) → Clip(min,max attrs) → Pad(attrs) → Slice(attrs) → Dropout(ratio) → ReduceSum(axes) → Unsqueeze/Squeeze(axes) → Softmax(axis 1 of a rank-3 value, the old 2-D rule) → y. */
function opset7Model(): Model {
  const g = new Graph();
  g.inputs.push({ name: 'x', dtype: 'float32', shape: ['N', 3, 6, 6] });
  g.outputs.push({ name: 'y', dtype: 'float32', shape: ['N', 4, 6] });
  g.addInitializer('W', Tensor.f32([4, 3, 3, 3], wave(108, 0.7, 0.5)));
  g.addInitializer('bn.scale', Tensor.f32([4], [1, 0.5, 2, 1.5]));
  g.addInitializer('bn.bias', Tensor.f32([4], [0.1, -0.2, 0.3, 0]));
  g.addInitializer('bn.mean', Tensor.f32([4], [0.05, 0.1, -0.1, 0]));
  g.addInitializer('bn.var', Tensor.f32([4], [1, 0.5, 2, 0.8]));
  g.addNode('Conv', ['x', 'W'], ['c'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, 'conv');
  g.addNode('BatchNormalization', ['c', 'bn.scale', 'bn.bias', 'bn.mean', 'bn.var'], ['bn'], { epsilon: 1e-5, spatial: 1 }, 'bn');
  g.addNode('Clip', ['bn'], ['r'], { min: 0, max: 1.5 }, 'relu6');
  g.addNode('Pad', ['r'], ['p'], { pads: [0, 0, 1, 1, 0, 0, 1, 1], mode: 'constant', value: 0.5 }, 'pad');
  g.addNode('Slice', ['p'], ['sl'], { starts: [1, 0], ends: [7, 6], axes: [2, 3] }, 'slice');
  g.addNode('Dropout', ['sl'], ['d'], { ratio: 0.3 }, 'drop');
  g.addNode('ReduceSum', ['d'], ['rs'], { axes: [3], keepdims: 0 }, 'sum');
  g.addNode('Unsqueeze', ['rs'], ['u'], { axes: [1] }, 'unsq');
  g.addNode('Squeeze', ['u'], ['sq'], { axes: [1] }, 'sq');
  g.addNode('Softmax', ['sq'], ['y'], { axis: 1 }, 'softmax');
  return new Model(g, 7);
}

test('an opset-7 model reads as opset 13 and gives the outputs onnxruntime gives the original', async () => {
  const old = opset7Model();
  const x = Tensor.f32([2, 3, 6, 6], wave(216, 1.3, 2));
  const want = await run(old, x);
  const up = decodeModel(encodeModel(old), { modelPath: 'old.onnx' });
  assert.equal(up.opset, 13);
  const ops = up.graph.nodes.map((n) => n.op);
  assert.ok(ops.includes('Flatten') && ops.includes('Reshape'), 'Softmax keeps its old 2-D rule');
  for (const n of up.graph.nodes)
    assert.deepEqual(
      Object.keys(n.attrs).filter((k) => ['spatial', 'min', 'max', 'ratio', 'starts', 'axes', 'value'].includes(k)),
      [],
      `${n.op} has no pre-13 attribute left`,
    );
  const got = await run(up, x);
  assert.deepEqual(got.dims, want.dims);
  const a = Array.from(got.data as Float32Array);
  const b = Array.from(want.data as Float32Array);
  assert.ok(
    a.every((v, i) => Math.abs(v - b[i]!) < 1e-6),
    'same outputs',
  );
  // rows of the old rule: each sample's 24 values sum to 1 (the new rule would make each of 4×… rows sum to 1)
  assert.ok(Math.abs(a.slice(0, 24).reduce((s, v) => s + v, 0) - 1) < 1e-5);
  registerStandardOps();
  inferShapes(up.graph.clone(), up.opset); // graft's own shape rules read the upgraded graph
});

test('opset 12 (MobileNetV2-12 style: Clip with inputs, Squeeze with axes attribute) reads as 13; a Softmax on the last axis stays one op', async () => {
  const g = new Graph();
  g.inputs.push({ name: 'x', dtype: 'float32', shape: ['N', 5, 1, 1] });
  g.outputs.push({ name: 'y', dtype: 'float32', shape: ['N', 5] });
  g.addInitializer('lo', Tensor.f32([], [0]));
  g.addInitializer('hi', Tensor.f32([], [6]));
  g.addNode('Clip', ['x', 'lo', 'hi'], ['r'], {}, 'relu6');
  g.addNode('Squeeze', ['r'], ['s'], { axes: [2, 3] }, 'squeeze');
  g.valueInfo.set('s', { name: 's', dtype: 'float32', shape: ['N', 5] });
  g.addNode('Softmax', ['s'], ['y'], { axis: 1 }, 'softmax');
  const old = new Model(g, 12);
  const x = Tensor.f32([3, 5, 1, 1], wave(15, 0.9, 4));
  const want = await run(old, x);
  const up = decodeModel(encodeModel(old));
  assert.equal(up.opset, 13);
  assert.deepEqual(
    up.graph.nodes.map((n) => n.op),
    ['Clip', 'Squeeze', 'Softmax'],
  );
  assert.deepEqual(Array.from((await run(up, x)).data as Float32Array), Array.from(want.data as Float32Array));
});

test('BatchNormalization with spatial=0 has no opset-13 form and is named', () => {
  const m = opset7Model();
  m.graph.nodes.find((n) => n.op === 'BatchNormalization')!.attrs.spatial = 0;
  assert.throws(() => decodeModel(encodeModel(m), { modelPath: 'old.onnx' }), /old\.onnx: node "bn" is a BatchNormalization with spatial=0/);
});
