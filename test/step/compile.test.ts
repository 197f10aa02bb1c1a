import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Emitter } from '../../src/ir/emit.js';
import { Graph } from '../../src/ir/graph.js';
import { Model } from '../../src/ir/model.js';
import { registerStandardOps } from '../../src/ops/index.js';
import { adamw, sgd } from '../../src/optim/index.js';
import { ArraySource } from '../../src/step/batches.js';
import { compileTrainStep } from '../../src/step/compile.js';
import { compileEvalStep } from '../../src/step/eval-graph.js';
import { NonFiniteLossError, StepRunner } from '../../src/step/runner.js';
import { Rng, Tensor } from '../../src/tensor.js';
import { fit } from '../../src/train/fit.js';

registerStandardOps();

/** x[N,4] → Gemm(W[3,4]ᵀ, b) → logits [N,3]; optionally a frozen first layer. */
function linearModel(seed = 1, frozenFirst = false): Model {
  const rng = new Rng(seed);
  const g = new Graph();
  g.inputs.push({ name: 'input', dtype: 'float32', shape: ['N', 4] });
  const e = new Emitter(g, 17);
  const w = (dims: number[]) =>
    Tensor.f32(
      dims,
      Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => rng.normal() * 0.5),
    );
  let x = 'input';
  if (frozenFirst) {
    g.addInitializer('f.weight', w([4, 4]));
    x = e.op('Relu', [e.op('Gemm', [x, 'f.weight'], { transB: 1 })]);
  }
  g.addInitializer('fc.weight', w([3, 4]));
  g.addInitializer('fc.bias', w([3]));
  const y = e.op('Gemm', [x, 'fc.weight', 'fc.bias'], { transB: 1 });
  g.addNode('Identity', [y], ['logits']);
  g.outputs.push({ name: 'logits', dtype: 'float32', shape: ['N', 3] });
  return new Model(g, 17);
}

function blobs(n: number, seed: number): ArraySource {
  const rng = new Rng(seed);
  const x = new Float32Array(n * 4);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % 3;
    for (let j = 0; j < 4; j++) x[i * 4 + j] = rng.normal() * 0.5 + (j === y[i] ? 2 : 0);
  }
  return new ArraySource(x, y, [4], 3);
}

test('one SGD step equals p − lr·∇ computed by hand (mean cross-entropy of a linear model)', async () => {
  const model = linearModel();
  const step = compileTrainStep({ model, trainable: ['fc.weight', 'fc.bias'], optimizer: sgd({ lr: 0.1 }) });
  const runner = await StepRunner.create(step);
  const data = blobs(6, 3);
  const x = Tensor.f32([6, 4], data.x);
  const y = new Tensor('int64', [6], BigInt64Array.from(Array.from(data.y as Int32Array, BigInt)));
  const W = model.graph.initializers.get('fc.weight')!.data as Float32Array;
  const b = model.graph.initializers.get('fc.bias')!.data as Float32Array;
  // hand gradient of mean softmax CE
  const gW = new Float64Array(12);
  const gb = new Float64Array(3);
  for (let i = 0; i < 6; i++) {
    const z = [0, 1, 2].map((k) => b[k]! + [0, 1, 2, 3].reduce((s, j) => s + W[k * 4 + j]! * data.x[i * 4 + j]!, 0));
    const m = Math.max(...z);
    const ez = z.map((v) => Math.exp(v - m));
    const s = ez.reduce((a, c) => a + c, 0);
    for (let k = 0; k < 3; k++) {
      const d = (ez[k]! / s - (k === (data.y as Int32Array)[i] ? 1 : 0)) / 6;
      gb[k]! += d;
      for (let j = 0; j < 4; j++) gW[k * 4 + j]! += d * data.x[i * 4 + j]!;
    }
  }
  await runner.train({ x, y }, [0.1]);
  const st = runner.state();
  const W1 = st.get('fc.weight')!.data as Float32Array;
  const b1 = st.get('fc.bias')!.data as Float32Array;
  for (let i = 0; i < 12; i++) assert.ok(Math.abs(W1[i]! - (W[i]! - 0.1 * gW[i]!)) < 1e-6, `W[${i}]`);
  for (let i = 0; i < 3; i++) assert.ok(Math.abs(b1[i]! - (b[i]! - 0.1 * gb[i]!)) < 1e-6, `b[${i}]`);
});

test('frozen layers are neither updated nor differentiated', async () => {
  const model = linearModel(2, true);
  const step = compileTrainStep({ model, trainable: ['fc.weight', 'fc.bias'], optimizer: sgd({ lr: 0.1, momentum: 0.9 }) });
  // The frozen Gemm+Relu prefix must not be on the backward path: as many nodes are differentiated
  // as for the same head without the prefix.
  const bare = compileTrainStep({ model: linearModel(2, false), trainable: ['fc.weight', 'fc.bias'], optimizer: sgd({ lr: 0.1, momentum: 0.9 }) });
  assert.equal(step.differentiatedNodes, bare.differentiatedNodes);
  const frozenGemmOut = model.graph.nodes.find((n) => n.op === 'Relu')!.inputs[0]!;
  assert.ok(!step.model.graph.nodes.some((n) => n.name.startsWith('grad/') && n.inputs.includes('f.weight')), 'no gradient node reads the frozen weight');
  // the frozen Gemm's backward would read its data input (for dW) and its output feeds only the frozen Relu
  const gradReads = new Set(step.model.graph.nodes.filter((n) => n.name.startsWith('grad/')).flatMap((n) => n.inputs));
  for (const v of ['input', frozenGemmOut]) assert.ok(!gradReads.has(v), `a gradient node reads "${v}" from the frozen prefix`);
  assert.ok(!step.model.graph.inputs.some((v) => v.name === 'f.weight'), 'frozen weight stays an initializer');
  const runner = await StepRunner.create(step, compileEvalStep(model, step));
  const r = await fit(runner, blobs(60, 4), { epochs: 5, batchSize: 12, lr: 0.1, seed: 1, val: blobs(30, 5) });
  assert.ok(r.history.at(-1)!.train_loss! < r.history[0]!.train_loss!, 'loss decreases');
  assert.ok(r.history.at(-1)!.val_acc! > 0.6, `val acc ${r.history.at(-1)!.val_acc}`);
});

test('NaN loss stops with the step number and leaves the last good state', async () => {
  const model = linearModel();
  const step = compileTrainStep({ model, trainable: ['fc.weight', 'fc.bias'], optimizer: adamw({ lr: 0.01 }) });
  const runner = await StepRunner.create(step);
  const data = blobs(4, 1);
  const y = new Tensor('int64', [4], BigInt64Array.from(Array.from(data.y as Int32Array, BigInt)));
  await runner.train({ x: Tensor.f32([4, 4], data.x), y }, [0.01]);
  const before = runner.state();
  const bad = Tensor.f32([4, 4], data.x);
  (bad.data as Float32Array)[3] = Number.NaN;
  await assert.rejects(runner.train({ x: bad, y }, [0.01]), (e: unknown) => e instanceof NonFiniteLossError && e.step === 2 && /step 2/.test(e.message));
  const after = runner.state();
  for (const [k, v] of before) assert.deepEqual(after.get(k)!.data, v.data, `${k} unchanged`);
  assert.equal(runner.stepCount, 1);
});

test('an op without a gradient rule inside the trainable part is named in the error', async () => {
  const model = linearModel();
  const g = model.graph;
  // insert a Round (no gradient) between the Gemm and the output
  const gemm = g.nodes.find((n) => n.op === 'Gemm')!;
  const id = g.nodes.find((n) => n.op === 'Identity')!;
  g.addNode('Round', [gemm.outputs[0]!], ['rounded'], {}, 'my_round');
  id.inputs[0] = 'rounded';
  g.topoSort();
  assert.throws(
    () => compileTrainStep({ model, trainable: ['fc.weight'], optimizer: sgd({ lr: 0.1 }) }),
    /No gradient rule for op Round \(node "my_round"\).*Freeze/,
  );
});

test('mismatched feed shapes give a clear error', async () => {
  const model = linearModel();
  const step = compileTrainStep({ model, trainable: ['fc.weight', 'fc.bias'], optimizer: sgd({ lr: 0.1 }) });
  const runner = await StepRunner.create(step);
  const y = new Tensor('int64', [2], new BigInt64Array(2));
  await assert.rejects(
    runner.train({ x: Tensor.f32([2, 5]), y }, [0.1]),
    /Model input "input" was fed shape \[2, 5\] by the training step, but the model expects \[N, 4\]/,
  );
});

test('kill mid-run then resume ends with the same weights and metrics as an uninterrupted run', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-resume-'));
  const data = blobs(48, 9);
  const run = async (opts: { maxSteps?: number; resume?: boolean; ck?: string }) => {
    const model = linearModel(5);
    const step = compileTrainStep({ model, trainable: ['fc.weight', 'fc.bias'], optimizer: sgd({ lr: 0.05, momentum: 0.9 }) });
    const runner = await StepRunner.create(step);
    const r = await fit(runner, data, {
      epochs: 3,
      batchSize: 8,
      lr: 0.05,
      seed: 3,
      checkpointDir: opts.ck,
      checkpointEvery: 2,
      resume: opts.resume,
      maxSteps: opts.maxSteps,
    });
    return { r, state: runner.state() };
  };
  const full = await run({});
  await run({ maxSteps: 9, ck: dir }); // "killed" after step 9 (mid epoch 2); last checkpoint at step 8
  const resumed = await run({ resume: true, ck: dir });
  for (const [k, v] of full.state) assert.deepEqual(resumed.state.get(k)!.data, v.data, `${k} identical`);
  assert.deepEqual(resumed.r.history, full.r.history);
  fs.rmSync(dir, { recursive: true, force: true });
});
