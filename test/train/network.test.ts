import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { batchNorm2d, conv2d, flatten, globalAvgPool, linear, mlp, relu, sequential } from '../../src/nn/index.js';
import { sgd } from '../../src/optim/index.js';
import { ArraySource } from '../../src/step/batches.js';
import { loadCheckpoint, saveCheckpoint } from '../../src/step/checkpoint.js';
import { Rng, Tensor } from '../../src/tensor.js';
import { Network } from '../../src/train/network.js';

/** Two classes of 8×8 one-channel images: class 1 has a bright top half. */
function images(n: number, seed: number): ArraySource {
  const rng = new Rng(seed);
  const x = new Float32Array(n * 64);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % 2;
    for (let p = 0; p < 64; p++) x[i * 64 + p] = rng.normal() * 0.3 + (y[i] && p < 32 ? 1 : 0);
  }
  return new ArraySource(x, y, [1, 8, 8], 2);
}

function backbone() {
  return sequential(
    conv2d(1, 8, 3, { padding: 1 }),
    batchNorm2d(8),
    relu(),
    conv2d(8, 8, 3, { padding: 1 }),
    relu(),
    globalAvgPool(),
    flatten(),
    linear(8, 2),
  ).build({
    inputShape: ['N', 1, 8, 8],
    seed: 1,
  });
}

test('freeze → replaceHead → fit on cached features → unfreeze → fine-tune → save → reload gives the same predictions', async () => {
  const net = new Network(backbone(), { labels: ['a', 'b'] });
  const frozenBefore = new Map([...net.model.graph.initializers].map(([k, v]) => [k, v.clone()]));
  net.freeze().replaceHead(mlp([16], 2, { inFeatures: 8 }));
  assert.ok(net.headOnly(), 'frozen backbone + new head is head-only');
  const train = images(64, 1);
  const val = images(32, 2);
  const r1 = await net.fit(train, { epochs: 30, batchSize: 16, optimizer: sgd({ lr: 0.1, momentum: 0.9 }), val, seed: 0 });
  assert.ok(r1.history.at(-1)!.val_acc! >= 0.85, `head-only val acc ${r1.history.at(-1)!.val_acc}`);
  // the backbone did not move
  for (const [k, v] of frozenBefore)
    if (net.model.graph.initializers.has(k)) assert.deepEqual(net.model.graph.initializers.get(k)!.data, v.data, `${k} frozen`);
  net.unfreeze();
  const r2 = await net.fit(train, { epochs: 5, batchSize: 16, optimizer: sgd({ lr: 0.05, momentum: 0.9 }), val, groups: 'discriminative', seed: 0 });
  assert.ok(r2.history.at(-1)!.val_acc! >= 0.85);
  const ev = await net.evaluate(val);
  assert.ok(ev.acc >= 0.85);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-api-'));
  const file = path.join(dir, 'model.onnx');
  net.save(file, { metrics: { val_acc: ev.acc } });
  const sidecar = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  assert.deepEqual(sidecar.labels, ['a', 'b']);
  const mine = await net.predict(val);
  const s = await ort.InferenceSession.create(file); // a fresh session straight from disk
  const x = new ort.Tensor('float32', val.x.slice(), [32, 1, 8, 8]);
  const out = await s.run({ [s.inputNames[0]!]: x });
  assert.deepEqual(s.outputNames.sort(), ['features', 'logits', 'probabilities']);
  const p = out.probabilities!.data as Float32Array;
  for (let i = 0; i < p.length; i++) assert.ok(Math.abs(p[i]! - mine.probabilities[i]!) <= 1e-5, `prob ${i}`);
  assert.ok(!fs.readFileSync(file).includes('Dropout'), 'no dropout in the export');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a full disk while writing a checkpoint keeps the previous checkpoint', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-ck-'));
  const file = path.join(dir, 'last.ckpt');
  const a = new Map([['w', Tensor.f32([3], [1, 2, 3])]]);
  saveCheckpoint(file, { meta: { step: 1 }, tensors: a });
  const failing = {
    writeSync: () => {
      throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    },
  };
  assert.throws(
    () => saveCheckpoint(file, { meta: { step: 2 }, tensors: new Map([['w', Tensor.f32([3], [9, 9, 9])]]) }, { fs: failing }),
    /disk is full|ENOSPC/,
  );
  const back = loadCheckpoint(file);
  assert.equal(back.meta.step, 1);
  assert.deepEqual([...(back.tensors.get('w')!.data as Float32Array)], [1, 2, 3]);
  assert.deepEqual(fs.readdirSync(dir), ['last.ckpt'], 'no temp files left behind');
  // a truncated checkpoint is refused with a clear message
  fs.writeFileSync(file, fs.readFileSync(file).subarray(0, 30));
  assert.throws(() => loadCheckpoint(file), /not a valid graft checkpoint.*truncated/);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('replaceHead on a model whose old head has the same parameter names keeps the new head trainable', async () => {
  const { smallCNN } = await import('../../src/nn/index.js');
  const net = new Network(smallCNN({ classes: 3 }).build({ inputShape: ['N', 1, 28, 28], seed: 0 }));
  net.freeze().replaceHead(linear(128, 5), { seed: 1 });
  assert.deepEqual([...net.trainable].sort(), ['head.bias', 'head.weight']);
  assert.deepEqual(net.model.graph.initializers.get('head.weight')!.dims, [5, 128]);
  assert.ok(net.headOnly());
});

test('a saved model loads back as a Network that predicts the same and can train again', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-reload-'));
  const file = path.join(dir, 'm.onnx');
  const net = new Network(backbone(), { labels: ['a', 'b'] });
  net.freeze().replaceHead(linear(8, 2), { seed: 3 });
  await net.fit(images(32, 1), { epochs: 2, batchSize: 8, optimizer: sgd({ lr: 0.1 }), seed: 0 });
  net.save(file);
  const back = Network.load(file);
  assert.deepEqual(back.labels, ['a', 'b']);
  const data = images(16, 7);
  const a = await net.predict(data);
  const b = await back.predict(data);
  for (let i = 0; i < a.probabilities.length; i++) assert.ok(Math.abs(a.probabilities[i]! - b.probabilities[i]!) < 1e-6);
  back.freeze().replaceHead(linear(8, 3), { seed: 1 });
  await back.fit(images(30, 2), { epochs: 1, batchSize: 10, optimizer: sgd({ lr: 0.1 }), seed: 0 });
  back.save(path.join(dir, 'again.onnx'));
  fs.rmSync(dir, { recursive: true, force: true });
});

test('freezeBNStats keeps BatchNorm running statistics fixed while its scale and shift train; trainFrozenBN with it is refused', async () => {
  const stats = (net: Network) => {
    const g = net.model.graph;
    const bn = g.nodes.find((n) => n.op === 'BatchNormalization')!;
    return bn.inputs.slice(1).map((k) => Float32Array.from(g.initializers.get(k)!.data as Float32Array));
  };
  const train = images(64, 3);
  const opts = { epochs: 2, batchSize: 16, optimizer: sgd({ lr: 0.05, momentum: 0.9 }), seed: 0 };
  const frozen = new Network(backbone()).unfreeze();
  const [scale0, bias0, mean0, var0] = stats(frozen);
  await frozen.fit(train, { ...opts, freezeBNStats: true });
  const [scale1, bias1, mean1, var1] = stats(frozen);
  assert.deepEqual(mean1, mean0, 'running mean untouched');
  assert.deepEqual(var1, var0, 'running var untouched');
  assert.notDeepEqual(scale1, scale0, 'scale trained');
  assert.notDeepEqual(bias1, bias0, 'shift trained');
  // the default (PyTorch's train mode) does update them
  const normal = new Network(backbone()).unfreeze();
  await normal.fit(train, opts);
  assert.notDeepEqual(stats(normal)[2], mean0, 'running mean updated by default');
  await assert.rejects(new Network(backbone()).fit(train, { ...opts, freezeBNStats: true, trainFrozenBN: true }), /contradict each other/);
});

test('after a head-only fit, evaluate and predict of the validation data reuse its features: the images are not read again, and the numbers equal the whole network’s', async () => {
  const net = new Network(backbone(), { labels: ['a', 'b'] });
  net.freeze().replaceHead(linear(8, 2), { seed: 3 });
  const val = images(20, 2);
  await net.fit(images(32, 1), { epochs: 2, batchSize: 8, optimizer: sgd({ lr: 0.1 }), val, seed: 0 });
  const whole = new Network(net.model.clone()); // everything trainable: evaluates through the backbone
  const [ev, pr] = [await whole.evaluate(val, 8), await whole.predict(val, 8)];
  const fill = val.fill.bind(val);
  val.fill = () => {
    throw new Error('the validation images were read again');
  };
  try {
    const cached = await net.evaluate(val, 8);
    assert.ok(Math.abs(cached.loss - ev.loss) < 1e-5 && cached.acc === ev.acc, `${JSON.stringify(cached)} vs ${JSON.stringify(ev)}`);
    const p = await net.predict(val, 8);
    assert.equal(p.classes, 2);
    for (let i = 0; i < p.probabilities.length; i++) assert.ok(Math.abs(p.probabilities[i]! - pr.probabilities[i]!) < 1e-5);
  } finally {
    val.fill = fill;
  }
});

test('a loss that turns NaN before the first checkpoint does not name a last.ckpt that does not exist', async () => {
  const net = new Network(backbone(), { labels: ['a', 'b'] });
  const train = images(16, 1);
  train.x.fill(Number.NaN);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-nan-'));
  try {
    await assert.rejects(net.fit(train, { epochs: 1, batchSize: 8, optimizer: sgd({ lr: 0.1 }), seed: 0, checkpointDir: dir }), (e: Error) => {
      assert.match(e.message, /^Loss became NaN at step 1\..* Epoch 1, batch 1\. No checkpoint was written before it .* start again with --overwrite\.$/);
      assert.doesNotMatch(e.message, /last\.ckpt/);
      return true;
    });
    assert.ok(!fs.existsSync(path.join(dir, 'last.ckpt')));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('checkpoints carry a SHA-256: any flipped byte is refused; version 1 files (no checksum) are still read', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-ck-sum-'));
  try {
    const file = path.join(dir, 'x.ckpt');
    saveCheckpoint(file, { meta: { step: 7 }, tensors: new Map([['w', Tensor.f32([3], [1, 2, 3])]]) });
    const good = fs.readFileSync(file);
    assert.equal(good.toString('latin1', 0, 8), 'GRAFTCK2');
    for (const at of [12, 44 + 3, good.length - 1]) {
      const bad = Buffer.from(good);
      bad[at]! ^= 0x01;
      fs.writeFileSync(file, bad);
      assert.throws(
        () => loadCheckpoint(file),
        /x\.ckpt is not a valid graft checkpoint \(checksum mismatch: its bytes changed since it was written\)/,
        `byte ${at}`,
      );
    }
    // the same checkpoint in format 1: "GRAFTCK1" | u32 header length | header | data
    const hl = good.readUInt32LE(8);
    const v1 = Buffer.concat([Buffer.from('GRAFTCK1', 'latin1'), good.subarray(8, 12), good.subarray(44)]);
    assert.equal(v1.length, good.length - 32);
    assert.equal(hl, JSON.stringify(JSON.parse(v1.toString('utf8', 12, 12 + hl))).length);
    fs.writeFileSync(file, v1);
    const back = loadCheckpoint(file);
    assert.equal(back.meta.step, 7);
    assert.deepEqual([...(back.tensors.get('w')!.data as Float32Array)], [1, 2, 3]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('fit drops a calibration temperature loaded with the model: it was fitted for the old weights', async () => {
  const model = sequential(linear(4, 3)).build({ inputShape: ['N', 4], seed: 0 });
  const net = new Network(model, { temperature: 2.5 });
  const x = new Float32Array(16 * 4).map((_, i) => Math.sin(i));
  const data = new ArraySource(
    x,
    Int32Array.from({ length: 16 }, (_, i) => i % 3),
    [4],
    3,
  );
  assert.equal(net.temperature, 2.5);
  await net.fit(data, { epochs: 1, batchSize: 8, optimizer: sgd({ lr: 0.01 }) });
  assert.equal(net.temperature, undefined, 'the trained model is saved uncalibrated until a new temperature is fitted');
});
