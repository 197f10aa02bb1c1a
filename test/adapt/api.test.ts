/** The library entry point's guards, the cached-features path and the joint step's structure. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { adapt, compileAdaptStep, LAMBDA_INPUT, parseMethod, snd, unlabelled, unlabelledArrays } from '../../src/adapt/index.js';
import { paramNames } from '../../src/ir/params.js';
import { mlp } from '../../src/nn/index.js';
import { sgd } from '../../src/optim/sgd.js';
import { ArraySource } from '../../src/step/batches.js';
import { Network } from '../../src/train/network.js';
import { blobs } from './toy.js';

const source = blobs(256, 1, 0);
const target = blobs(256, 2, 30);
const net = () => mlp([16, 8], 2, { batchNorm: true, inFeatures: 2 }).build({ seed: 0 });
const quick = { epochs: 1, batchSize: 32, evalEvery: 1e9, select: 'last' as const };

test('the training path refuses target labels: a labelled target is an error, labelled data goes to targetEval', async () => {
  await assert.rejects(
    adapt({ model: net(), source, target, method: 'mcc', ...quick }),
    /carries labels.*never trains on target labels.*unlabelled\(target\).*targetEval/s,
  );
  // wrapped, the same data trains; its labels are never read (the wrapper hands out −1)
  const y = new BigInt64Array(4);
  await unlabelled(target).fill([0, 1, 2, 3], new Float32Array(8), y, { epoch: 0, seed: 0 });
  assert.deepEqual([...y], [-1n, -1n, -1n, -1n]);
  const r = await adapt({ model: net(), source, target: unlabelled(target), targetEval: target, method: 'mcc', ...quick });
  // the reported target accuracy is the returned model's, measured independently on the labelled target
  const independent = await new Network(r.model).evaluate(target);
  assert.equal(independent.n, 256);
  assert.ok(Math.abs(r.selected.target_acc! - independent.acc) < 1e-9, `reported ${r.selected.target_acc}, measured ${independent.acc}`);
});

test('bad input is a clear error before any training', async () => {
  const empty = unlabelledArrays(new Float32Array(0), [2]);
  await assert.rejects(adapt({ model: net(), source, target: empty, method: 'mcc', ...quick }), /target has no images/);
  const wide = unlabelledArrays(new Float32Array(30), [3]);
  await assert.rejects(adapt({ model: net(), source, target: wide, method: 'mcc', ...quick }), /samples of shape \[2\] but the target gives \[3\]/);
  const noBN = mlp([8], 2, { inFeatures: 2 }).build({ seed: 0 });
  await assert.rejects(adapt({ model: noBN, source, target: unlabelled(target), method: 'adabn', ...quick }), /no BatchNormalization layer.*another method/);
  await assert.rejects(adapt({ model: net(), source, target: unlabelled(target), method: 'mcc', ...quick, batchSize: 1 }), /batch sizes must be integers ≥ 2/);
  assert.throws(() => parseMethod('dan++'), /unknown adaptation method "dan\+\+".*source-only, adabn, coral/);
});

test('frozen backbone + bottleneck: trains the head on cached features; aligning frozen features is refused', async () => {
  const pre = new Network(net());
  const frozen = pre.freeze().replaceHead(mlp([8], 2), { seed: 3 });
  const before = frozen.model.graph.initializers.get('0.weight')!.clone();
  const r = await adapt({ model: frozen.model, trainable: frozen.headParameters, source, target: unlabelled(target), method: 'dann', ...quick });
  assert.equal(r.featureCache, true);
  assert.deepEqual([...(r.model.graph.initializers.get('0.weight')!.data as Float32Array)], [...(before.data as Float32Array)]);
  const head = frozen.headParameters[0]!;
  assert.notDeepEqual(
    [...(r.model.graph.initializers.get(head)!.data as Float32Array)],
    [...(frozen.model.graph.initializers.get(head)!.data as Float32Array)],
  );
  // a plain linear head on frozen features: CORAL has nothing trainable before the features
  const linearHead = new Network(net()).freeze().replaceHead(mlp([], 2), { seed: 3 });
  await assert.rejects(
    adapt({ model: linearHead.model, trainable: linearHead.headParameters, source, target: unlabelled(target), method: 'coral', ...quick }),
    /coral aligns the features .* nothing trainable comes before them.*bottleneck/,
  );
});

test('the joint step: one data input [n + m, ...], n source labels, λ fed by the host schedule', () => {
  const model = net();
  const step = compileAdaptStep({
    model,
    trainable: paramNames(model),
    optimizer: sgd({ lr: 0.1 }),
    method: { name: 'dann' },
    sourceBatch: 8,
    targetBatch: 6,
    totalSteps: 10,
  });
  const inputs = new Map(step.model.graph.inputs.map((v) => [v.name, v.shape]));
  assert.deepEqual(inputs.get(step.dataInput), [14, 2]);
  assert.deepEqual(inputs.get(step.targetInput), [8]);
  assert.deepEqual(inputs.get(LAMBDA_INPUT), []);
  assert.ok(step.methodParams.length === 4 && step.trainable.length === paramNames(model).length + 4);
  assert.equal(step.scalarValues(1)[LAMBDA_INPUT], 0);
  assert.ok(Math.abs(step.scalarValues(6)[LAMBDA_INPUT]! - (2 / (1 + Math.exp(-5)) - 1)) < 1e-12);
  assert.ok(step.model.graph.nodes.some((n) => n.op === 'GradReverse'));
  const fix = compileAdaptStep({
    model,
    trainable: paramNames(model),
    optimizer: sgd({ lr: 0.1 }),
    method: { name: 'fixmatch' },
    sourceBatch: 8,
    targetBatch: 6,
    totalSteps: 10,
  });
  assert.deepEqual(fix.batch, { source: 8, target: 6, targetViews: 2, rows: 20 });
  const so = compileAdaptStep({
    model,
    trainable: paramNames(model),
    optimizer: sgd({ lr: 0.1 }),
    method: { name: 'source-only' },
    sourceBatch: 8,
    totalSteps: 10,
  });
  assert.equal(so.batch.rows, 8);
});

test('SND: confident, well-separated predictions score lower than one undecided cluster; it is bounded by log(n − 1)', () => {
  const n = 40;
  const sharp = new Float32Array(n * 4);
  for (let i = 0; i < n; i++) sharp[i * 4 + (i % 4)] = 1;
  const flat = new Float32Array(n * 4).fill(0.25);
  assert.ok(snd(sharp, n, 4) < snd(flat, n, 4));
  assert.ok(Math.abs(snd(flat, n, 4) - Math.log(n - 1)) < 1e-6);
  assert.ok(new ArraySource(new Float32Array(2), [0], [2]).length === 1);
});

test("MCC's detachWeights reaches the step: the entropy weights go through a StopGradient, and the run trains differently", async () => {
  const model = net();
  const compile = (detachWeights?: boolean) =>
    compileAdaptStep({
      model,
      trainable: paramNames(model),
      optimizer: sgd({ lr: 0.1 }),
      method: { name: 'mcc', detachWeights },
      sourceBatch: 8,
      totalSteps: 10,
    }).model.graph.nodes.filter((n) => n.op === 'StopGradient').length;
  assert.equal(compile(true), compile() + 1);
  const run = async (detachWeights?: boolean) =>
    (
      await adapt({ model: net(), source, target: unlabelled(target), method: { name: 'mcc', weight: 30, detachWeights }, ...quick })
    ).model.graph.initializers.get('0.weight')!.data as Float32Array;
  const [a, b] = [await run(), await run(true)];
  assert.ok(a.some((v, i) => v !== b[i]));
});
