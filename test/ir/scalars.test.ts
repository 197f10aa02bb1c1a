import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Emitter } from '../../src/ir/emit.js';
import { Graph } from '../../src/ir/graph.js';
import { DEFAULT_OPSET } from '../../src/ir/model.js';
import { scalarsOfRank } from '../../src/ir/scalars.js';
import { avgPool2d, batchNorm2d, conv2d, flatten, globalAvgPool, linear, paramNames, relu6, sequential } from '../../src/nn/index.js';
import { registerStandardOps } from '../../src/ops/index.js';
import { sgd } from '../../src/optim/index.js';
import { lowered } from '../../src/runtime/session.js';
import { compileTrainStep } from '../../src/step/compile.js';

registerStandardOps();

const ELEMENTWISE = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Sum', 'Mean', 'Equal', 'Less', 'Greater', 'Where']);

/**
 * Every elementwise node of `g` where a one-value operand of lower rank meets a tensor of rank ≥ 3: the form onnxruntime
 * 1.31 broadcasts on its slow per-span path when the tensor's inner dims are small (src/ir/scalars.ts).
 */
function rankZeroBroadcasts(g: Graph): string[] {
  const found: string[] = [];
  for (const n of g.nodes) {
    if (!ELEMENTWISE.has(n.op)) continue;
    const shapes = n.inputs.map((i) => g.info(i)?.shape);
    const top = Math.max(...shapes.map((s) => s?.length ?? 0));
    if (top < 3) continue;
    for (const [k, s] of shapes.entries())
      if (s && s.length < top && s.every((d) => d === 1)) found.push(`${n.op} ${n.name}: input ${k} [${s}] against rank ${top}`);
  }
  return found;
}

test('scalarsOfRank: [1, …, 1] from rank 3 up, the plain scalar below, each made once', () => {
  const g = new Graph();
  g.inputs.push({ name: 's', dtype: 'float32', shape: [] });
  const e = new Emitter(g, DEFAULT_OPSET);
  const k = scalarsOfRank(e);
  assert.deepEqual(g.initializers.get(k.constant(0.5, 4))?.dims, [1, 1, 1, 1]);
  assert.deepEqual(g.initializers.get(k.constant(0.5, 2))?.dims, []);
  assert.equal(k.constant(0.5, 4), k.constant(0.5, 4));
  assert.notEqual(k.constant(0.5, 4), k.constant(0.5, 3));
  assert.equal(k.value('s', 2), 's');
  assert.deepEqual(e.shape(k.value('s', 4)), [1, 1, 1, 1]);
  assert.equal(k.value('s', 4), k.value('s', 4));
});

// BatchNormTrain (its gradient and its lowering: the count, ε) and the pools' gradients (1/count over a [N, C, 1, 1]
// dy) are where a training step met rank-0 scalars; each of these steps had 5–6 such nodes before
for (const [name, pool] of [
  ['AveragePool over the whole map', avgPool2d(4)],
  ['GlobalAveragePool', globalAvgPool()],
] as const)
  for (const batch of ['N', 2] as const)
    test(`a Conv-BN-ReLU6-${name} training step (batch ${batch}) has no rank-0 scalar against a rank ≥ 3 tensor`, () => {
      const model = sequential(conv2d(3, 8, 3, { padding: 1 }), batchNorm2d(8), relu6(), pool, flatten(), linear(8, 4)).build({
        inputShape: [batch, 3, 4, 4],
        seed: 0,
      });
      const step = compileTrainStep({ model, trainable: paramNames(model), optimizer: sgd({ lr: 0.1, momentum: 0.9, weightDecay: 1e-4 }) });
      const g = lowered(step.model).graph;
      assert.ok(
        g.nodes.some((n) => n.op === 'BatchNormalization'),
        'the step has the lowered training-mode BN',
      );
      assert.deepEqual(rankZeroBroadcasts(g), []);
    });
