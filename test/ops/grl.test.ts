import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backward } from '../../src/autodiff/backward.js';
import { gradCheck, randn } from '../../src/autodiff/gradcheck.js';
import { Emitter } from '../../src/ir/emit.js';
import { Graph } from '../../src/ir/graph.js';
import { DEFAULT_OPSET, Model } from '../../src/ir/model.js';
import { gradReverse, stopGradient } from '../../src/ops/grl.js';
import { createSession, runHost } from '../../src/runtime/session.js';
import { Tensor } from '../../src/tensor.js';
import { EVERY_RULE, expectGrad } from '../helpers.js';

/**
 * A gradient reversal layer's backward is not the derivative of its forward (identity) by design, so the
 * check differentiates z − (1+λ)·StopGradient(h), z = GradReverse(h, λ): its forward value is −λ·h, whose true
 * derivative −λ·h' is exactly what the GradReverse rule must produce (StopGradient contributes nothing).
 */
function mirrored(lambda: number) {
  return {
    inputs: { x: randn([3, 5], 11), lam: Tensor.scalar(lambda) },
    wrt: ['x'],
    build: (e: Emitter) => {
      const h = e.op('Tanh', [e.mul('x', e.scalar(0.8))]);
      const z = gradReverse(e, h, 'lam');
      const c = e.add(e.scalar(1), 'lam');
      return e.op('Exp', [e.mul(e.sub(z, e.mul(c, stopGradient(e, h))), e.scalar(0.5))]);
    },
  };
}

test('GradReverse: backward is −λ·dy (finite differences of the mirrored forward), λ read at run time', async () => {
  await expectGrad('GradReverse', mirrored(0.7));
  await expectGrad(EVERY_RULE, mirrored(2.5));
  // λ = 0: the whole gradient is zero, which stays zero when a rule is scaled, so this one is not checked strictly
  const zero = await gradCheck(mirrored(0));
  assert.ok(zero.ok && zero.checked > 0, `λ = 0: ${JSON.stringify(zero.worst)}`);
});

test('GradReverse flips the sign of the gradient; StopGradient cuts it; both run as Identity', async () => {
  const g = new Graph();
  g.inputs.push({ name: 'x', dtype: 'float32', shape: [4] }, { name: 'lam', dtype: 'float32', shape: [] });
  const e = new Emitter(g, DEFAULT_OPSET);
  const y = gradReverse(e, e.mul('x', 'x'), 'lam');
  const s = stopGradient(e, 'x');
  const loss = e.reduceSum(e.add(y, s), 'all', false);
  g.outputs = [{ name: loss, dtype: 'float32', shape: [] }];
  const { grads } = backward(g, DEFAULT_OPSET, loss, ['x']);
  g.outputs.push({ name: grads.get('x')!, dtype: 'float32', shape: [4] });
  const session = await createSession(new Model(g, DEFAULT_OPSET));
  const x = Tensor.f32([4], [1, -2, 3, 0.5]);
  const r = await runHost(session, { x, lam: Tensor.scalar(0.25) });
  assert.ok(Math.abs((r[loss]!.data as Float32Array)[0]! - (1 + 4 + 9 + 0.25 + 1 - 2 + 3 + 0.5)) < 1e-5);
  assert.deepEqual([...(r[grads.get('x')!]!.data as Float32Array)], [-0.5, 1, -1.5, -0.25]);
});

test('StopGradient: the loss does not depend on a value only reached through it', () => {
  const g = new Graph();
  g.inputs.push({ name: 'x', dtype: 'float32', shape: [3] });
  const e = new Emitter(g, DEFAULT_OPSET);
  const loss = e.reduceSum(stopGradient(e, e.mul('x', 'x')), 'all', false);
  const { grads } = backward(g, DEFAULT_OPSET, loss, ['x']);
  assert.equal(grads.size, 0);
});

test('gradReverse rejects a λ that is not a float32 scalar', () => {
  const g = new Graph();
  g.inputs.push({ name: 'x', dtype: 'float32', shape: [3] }, { name: 'lam', dtype: 'float32', shape: [3] });
  const e = new Emitter(g, DEFAULT_OPSET);
  assert.throws(() => gradReverse(e, 'x', 'lam'), /must be a float32 scalar/);
});
