import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mlp, paramNames } from '../../src/nn/index.js';
import { sgd } from '../../src/optim/index.js';
import { createSession, ort } from '../../src/runtime/session.js';
import { compileTrainStep } from '../../src/step/compile.js';
import { compileEvalStep } from '../../src/step/eval-graph.js';
import { StepRunner } from '../../src/step/runner.js';
import { Rng, Tensor } from '../../src/tensor.js';

test('StepRunner keeps the state in its pre-allocated buffers without copying it back, and matches a plain session.run loop step for step', async () => {
  const model = mlp([6], 3, { inFeatures: 5 }).build({ inputShape: ['N', 5], seed: 1 });
  const step = compileTrainStep({ model, trainable: paramNames(model), optimizer: sgd({ lr: 0.1, momentum: 0.9, weightDecay: 0.01 }) });
  const runner = await StepRunner.create(step, undefined, { threads: 1 });
  const session = await createSession(step.model, { threads: 1 });
  const rng = new Rng(3);
  const state: Record<string, ort.Tensor> = {};
  for (const c of step.carried) state[c.input] = new ort.Tensor('float32', (c.init.data as Float32Array).slice(), [...c.init.dims]);
  for (let t = 0; t < 4; t++) {
    const x = Tensor.f32(
      [4, 5],
      Array.from({ length: 20 }, () => rng.normal()),
    );
    const y = Tensor.i64(
      [4],
      Array.from({ length: 4 }, () => rng.int(3)),
    );
    const lr = 0.1 / (t + 1);
    const r = await runner.train({ x, y }, [lr]);
    // the reference: outputs onnxruntime returns (fresh buffers), fed back by name
    const feeds: Record<string, ort.Tensor> = {
      ...state,
      [step.dataInput]: new ort.Tensor('float32', x.data as Float32Array, [4, 5]),
      [step.targetInput]: new ort.Tensor('int64', y.data as BigInt64Array, [4]),
      [step.lrInputs[0]!]: new ort.Tensor('float32', Float32Array.of(lr), []),
    };
    const out = await session.run(feeds);
    assert.equal(r.loss, (out[step.lossOutput]!.data as Float32Array)[0]);
    for (const c of step.carried) state[c.input] = out[c.output]!;
    for (const [k, v] of runner.state()) assert.deepEqual([...(v.data as Float32Array)], [...(state[k]!.data as Float32Array)], `step ${t + 1}: ${k}`);
  }
  await runner.release();
  await session.release();
});

test('StepRunner keeps one session open at a time (train, evaluate, train …) and gives bit-identical losses, state and evaluations to one holding both', async () => {
  const model = mlp([6], 3, { inFeatures: 5 }).build({ inputShape: ['N', 5], seed: 1 });
  const step = compileTrainStep({ model, trainable: paramNames(model), optimizer: sgd({ lr: 0.1, momentum: 0.9 }) });
  const ev = compileEvalStep(model, step);
  const one = await StepRunner.create(step, ev, { threads: 1 });
  const both = await StepRunner.create(step, ev, { threads: 1, oneSession: false });
  assert.deepEqual(one.openSessions, { train: true, eval: false });
  assert.deepEqual(both.openSessions, { train: true, eval: true });
  const rng = new Rng(5);
  const batch = () => ({
    x: Tensor.f32(
      [4, 5],
      Array.from({ length: 20 }, () => rng.normal()),
    ),
    y: Tensor.i64(
      [4],
      Array.from({ length: 4 }, () => rng.int(3)),
    ),
  });
  for (let epoch = 0; epoch < 3; epoch++) {
    for (let t = 0; t < 2; t++) {
      const b = batch();
      const [a, c] = [await one.train(b, [0.05]), await both.train(b, [0.05])];
      assert.equal(a.loss, c.loss, `epoch ${epoch + 1}, step ${t + 1}`);
      assert.deepEqual(one.openSessions, { train: true, eval: false });
    }
    const b = batch();
    const [a, c] = [await one.evaluate(b), await both.evaluate(b)];
    assert.deepEqual(one.openSessions, { train: false, eval: true }, 'evaluate closed the training session');
    assert.equal(a.loss, c.loss);
    assert.deepEqual([...(a.output.data as Float32Array)], [...(c.output.data as Float32Array)]);
  }
  for (const [k, v] of one.state()) assert.deepEqual([...(v.data as Float32Array)], [...(both.state().get(k)!.data as Float32Array)], k);
  await one.release();
  await both.release();
  assert.deepEqual(one.openSessions, { train: false, eval: false });
  await assert.rejects(one.train(batch(), [0.05]), /was released; create a new one/);
});
