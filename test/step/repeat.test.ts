import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mlp, paramNames } from '../../src/nn/index.js';
import { adam, adamw, type Optimizer, sgd } from '../../src/optim/index.js';
import { type CompiledStep, compileTrainStep } from '../../src/step/compile.js';
import { repeatStep } from '../../src/step/repeat.js';
import { type StepResult, StepRunner } from '../../src/step/runner.js';
import { Rng, Tensor } from '../../src/tensor.js';

const K = 4;
const B = 6;

/** A head with every kind of carried state and per-step input: BN statistics, dropout masks, optimizer state. */
function headStep(optimizer: Optimizer, opts: { clipNorm?: number; wide?: boolean } = {}): CompiledStep {
  // wide: a 64×4 first layer and a 40×64 second, large enough (≥ 1,024 elements) for SGD's one-Gemm step (optim/sgd.ts)
  const model = mlp(opts.wide ? [64, 40] : [7, 5], 3, { inFeatures: 4, dropout: 0.25, batchNorm: true }).build({ inputShape: ['N', 4], seed: 2 });
  return compileTrainStep({ model, trainable: paramNames(model), optimizer, clipNorm: opts.clipNorm });
}

/** `rounds` groups of K batches, stacked, and their per-step learning rates (a decaying schedule, two groups' worth). */
function data(rounds: number, seed: number) {
  const rng = new Rng(seed);
  return Array.from({ length: rounds }, (_, r) => ({
    x: Tensor.f32(
      [K, B, 4],
      Array.from({ length: K * B * 4 }, () => rng.normal()),
    ),
    y: Tensor.i64(
      [K, B],
      Array.from({ length: K * B }, () => rng.int(3)),
    ),
    lrs: Array.from({ length: K }, (_, j) => [0.05 / (1 + 0.3 * (r * K + j))]),
  }));
}

/** Step j of a stacked group as a batch of its own. */
function slice(t: Tensor, j: number): Tensor {
  const per = t.size / K;
  return new Tensor(t.dtype, t.dims.slice(1), t.data.slice(j * per, (j + 1) * per) as Float32Array);
}

const bits = (t: Tensor) => [...new Uint32Array((t.data as Float32Array).slice().buffer)];

async function compare(optimizer: () => Optimizer, opts: { clipNorm?: number; wide?: boolean } = {}): Promise<void> {
  const step = headStep(optimizer(), opts);
  const one = await StepRunner.create(step, undefined, { threads: 1 });
  const many = await StepRunner.create(headStep(optimizer(), opts), undefined, { threads: 1, stepsPerRun: K });
  assert.equal(many.stepsPerRun, K);
  for (const g of data(2, 5)) {
    const singles: StepResult[] = [];
    for (let j = 0; j < K; j++) singles.push(await one.train({ x: slice(g.x, j), y: slice(g.y, j) }, g.lrs[j]!, 7));
    const grouped = await many.trainSteps({ x: g.x, y: g.y }, g.lrs, 7);
    assert.ok(grouped, 'every loss is finite');
    assert.equal(many.stepCount, one.stepCount);
    for (let j = 0; j < K; j++) {
      assert.equal(Object.is(grouped[j]!.loss, singles[j]!.loss), true, `step ${j + 1}: loss ${grouped[j]!.loss} vs ${singles[j]!.loss}`);
      assert.deepEqual(grouped[j]!.metrics, singles[j]!.metrics);
      assert.equal(grouped[j]!.gradNorm, singles[j]!.gradNorm);
    }
    const a = one.state();
    const b = many.state();
    assert.ok([...a.keys()].some((k) => k.includes('running')) || a.size > paramNames(step.model).length, 'optimizer or BN state is carried');
    for (const [name, t] of a) assert.deepEqual(bits(b.get(name)!), bits(t), `${name} after step ${one.stepCount}`);
  }
  await one.release();
  await many.release();
}

test('K steps in one run equal K single-step runs bit for bit: SGD with momentum and weight decay, per-step LR, dropout, BN statistics', async () => {
  await compare(() => sgd({ lr: 0.05, momentum: 0.9, weightDecay: 0.01 }));
});

test('K steps in one run equal K single-step runs bit for bit: SGD on a head wide enough for the one-Gemm parameter step', async () => {
  await compare(() => sgd({ lr: 0.05, momentum: 0.9, weightDecay: 0.01 }), { wide: true });
});

test('K steps in one run equal K single-step runs bit for bit: Adam (per-step bias corrections) with gradient clipping', async () => {
  await compare(() => adam({ lr: 0.01 }), { clipNorm: 0.5 });
});

test('K steps in one run equal K single-step runs bit for bit: AdamW', async () => {
  await compare(() => adamw({ lr: 0.01, weightDecay: 0.05 }));
});

test('the unrolled graph chains the state: each copy reads the previous copy’s .next values, and only the last state comes out', () => {
  const step = headStep(sgd({ lr: 0.05, momentum: 0.9 }));
  const r = repeatStep(step, 3);
  const g = r.model.graph;
  const carriedIn = new Set(step.carried.map((c) => c.input));
  // the carried inputs are read by the first copy only: the later copies read the chain
  const readers = g.nodes.filter((n) => n.inputs.some((i) => carriedIn.has(i)));
  assert.ok(readers.length > 0);
  assert.ok(
    readers.every((n) => n.name.startsWith('s0/')),
    readers.map((n) => n.name).join(', '),
  );
  for (const c of step.carried)
    assert.ok(
      g.nodes.some((n) => n.name.startsWith('s1/') && n.inputs.includes(`s0/${c.output}`)),
      c.output,
    );
  assert.deepEqual(
    g.outputs.filter((o) => !o.name.startsWith('steps/')).map((o) => o.name),
    step.carried.map((c) => c.output),
  );
  for (const name of r.stackedInputs) assert.equal(g.inputs.find((v) => v.name === name)!.shape![0], 3);
  assert.ok(r.stackedInputs.includes(step.dataInput) && r.stackedInputs.includes(step.lrInputs[0]!));
});

test('a non-finite loss inside a K-step run leaves the state as before the run; rewind undoes a run', async () => {
  const runner = await StepRunner.create(headStep(sgd({ lr: 0.05, momentum: 0.9 })), undefined, { threads: 1, stepsPerRun: K });
  const [g, h] = data(2, 11);
  await runner.trainSteps({ x: g!.x, y: g!.y }, g!.lrs, 1);
  const before = runner.state();
  const bad = h!.x.data.slice() as Float32Array;
  bad[2 * B * 4] = Number.NaN; // step 3 of the group
  assert.equal(await runner.trainSteps({ x: new Tensor('float32', h!.x.dims, bad), y: h!.y }, h!.lrs, 1), undefined);
  assert.equal(runner.stepCount, K);
  for (const [name, t] of runner.state()) assert.deepEqual(bits(t), bits(before.get(name)!), name);
  await runner.trainSteps({ x: h!.x, y: h!.y }, h!.lrs, 1);
  assert.equal(runner.stepCount, 2 * K);
  runner.rewind();
  assert.equal(runner.stepCount, K);
  for (const [name, t] of runner.state()) assert.deepEqual(bits(t), bits(before.get(name)!), name);
  assert.throws(() => runner.rewind(), /only the last trainSteps/);
  await runner.release();
});
