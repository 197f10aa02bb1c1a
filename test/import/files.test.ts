/**
 * Importing from files: model.json + sharded .bin weights (quantized), `graft import` with its sidecar,
 * loadAnyModel dispatch, fine-tuning an imported model with Network, and the errors for broken inputs.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runImport } from '../../src/cli/commands/import.js';
import { importTfjsLayers, loadAnyModel } from '../../src/import/index.js';
import { mlp } from '../../src/nn/index.js';
import { sgd } from '../../src/optim/index.js';
import { ArraySource } from '../../src/step/batches.js';
import { Network } from '../../src/train/network.js';
import { type Artifacts, loadFromMemory, maxAbsDiff, quantize, randomData, randomizeWeights, runImported, saveToMemory, tf, writeModelDir } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-import-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const bin = fileURLToPath(new URL('../../bin/graft.js', import.meta.url));

function graft(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    env: { ...process.env, GRAFT_FROM_SOURCE: '1', GRAFT_DEBUG: '', NODE_OPTIONS: '' },
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A small image classifier (8×8 RGB → 3 classes) with random weights, saved in memory. */
async function classifier(seed: number): Promise<{ model: tf.LayersModel; artifacts: Artifacts }> {
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [8, 8, 3], filters: 4, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }),
      tf.layers.batchNormalization({}),
      tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same' }),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({ units: 6, activation: 'relu' }),
      tf.layers.dropout({ rate: 0.2 }),
      tf.layers.dense({ units: 3, activation: 'softmax' }),
    ],
  });
  randomizeWeights(model, seed);
  return { model, artifacts: await saveToMemory(model) };
}

test('a uint8-quantized model.json with several .bin shards imports and matches tfjs', async () => {
  const { artifacts } = await classifier(1);
  const q = quantize(artifacts, 'uint8');
  const file = writeModelDir(q, path.join(tmp, 'q8'), 50); // 50-byte shards: many files per group
  assert.ok(fs.readdirSync(path.dirname(file)).filter((f) => f.endsWith('.bin')).length > 3);
  const ref = await loadFromMemory(q);
  const x = randomData(2 * 8 * 8 * 3, 2);
  const want = (ref.predict(tf.tensor(x, [2, 8, 8, 3])) as tf.Tensor).dataSync();
  for (const m of [importTfjsLayers(file), loadAnyModel(file), loadAnyModel(path.dirname(file))]) {
    const got = await runImported(m, x, [2, 8, 8, 3]);
    assert.ok(maxAbsDiff(got.probabilities!.data as Float32Array, want) <= 1e-5);
  }
});

test('graft import writes the ONNX model and a sidecar that Network.load uses; the imported model fine-tunes', async () => {
  const { artifacts } = await classifier(3);
  const file = writeModelDir(artifacts, path.join(tmp, 'cls'));
  const r = graft(['import', file, '--mean', '0.5', '--std', '0.25', '--labels', 'cat,dog,cow', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.out, path.join(tmp, 'cls', 'model.graft.onnx'), 'does not overwrite model.json with the sidecar');
  const sidecar = JSON.parse(fs.readFileSync(path.join(tmp, 'cls', 'model.graft.json'), 'utf8'));
  assert.deepEqual(sidecar.labels, ['cat', 'dog', 'cow']);
  assert.deepEqual(sidecar.preprocess.size, [8, 8]);
  assert.deepEqual(sidecar.preprocess.mean, [0.5, 0.5, 0.5]);
  assert.deepEqual(sidecar.preprocess.std, [0.25, 0.25, 0.25]);
  assert.equal(sidecar.preprocess.scale, 255);
  assert.match(sidecar.cut, /global_average_pooling2d/);
  const net = Network.load(report.out);
  assert.deepEqual(net.labels, ['cat', 'dog', 'cow']);
  assert.equal(net.cut, sidecar.cut);
  // fine-tune: new head on the imported backbone, then the last stages unfrozen
  const n = 48;
  const x = randomData(n * 3 * 8 * 8, 4);
  const y = Int32Array.from({ length: n }, (_, i) => i % 2);
  for (let i = 0; i < n; i++) if (y[i]) for (let p = 0; p < 64; p++) x[i * 192 + p] += 2; // class 1: bright red channel
  const data = new ArraySource(x, y, [3, 8, 8], 2);
  net.freeze().replaceHead(mlp([8], 2, { inFeatures: 4 }), { seed: 1 });
  const r1 = await net.fit(data, { epochs: 15, batchSize: 16, optimizer: sgd({ lr: 0.1, momentum: 0.9 }), seed: 0 });
  net.unfreeze({ lastStages: 3 });
  const r2 = await net.fit(data, { epochs: 3, batchSize: 16, optimizer: sgd({ lr: 0.02, momentum: 0.9 }), seed: 0 });
  const [first, last] = [r1.history[0]!.train_loss!, r2.history.at(-1)!.train_loss!];
  assert.ok(last < first, `loss fell: ${first} → ${last}`);
  assert.ok(r2.history.at(-1)!.train_acc! >= 0.9, `train accuracy ${r2.history.at(-1)!.train_acc}`);
});

test('graft import refuses to overwrite its input and reports bad flags', async () => {
  const dir = path.join(tmp, 'cls');
  await assert.rejects(
    runImport(path.join(dir, 'model.json'), { out: path.join(dir, 'model.onnx') }),
    /would overwrite the input .*model\.json.*Pass another --out/,
  );
  const { main } = await import('../../src/cli/index.js');
  const write = process.stderr.write;
  let err = '';
  process.stderr.write = ((s: string) => {
    err += s;
    return true;
  }) as typeof process.stderr.write;
  try {
    assert.equal(await main(['node', 'graft', 'import', path.join(dir, 'model.json'), '--mean', 'a,b']), 1);
  } finally {
    process.stderr.write = write;
    process.exitCode = 0;
  }
  assert.match(err, /--mean takes numbers/);
});

test('a missing shard names the file and says to keep shards beside model.json', async () => {
  const { artifacts } = await classifier(5);
  const file = writeModelDir(artifacts, path.join(tmp, 'missing'), 200);
  fs.rmSync(path.join(tmp, 'missing', 'group1-shard2of5.bin'));
  assert.throws(() => importTfjsLayers(file), /group1-shard2of5\.bin.*cannot be read.*no such file.*beside model\.json/s);
});

test('a truncated shard is a size mismatch naming the file and both byte counts', async () => {
  const { artifacts } = await classifier(6);
  const file = writeModelDir(artifacts, path.join(tmp, 'short'), 200);
  const shard = path.join(tmp, 'short', 'group1-shard2of5.bin');
  fs.writeFileSync(shard, fs.readFileSync(shard).subarray(0, 150));
  assert.throws(
    () => importTfjsLayers(file),
    (e: Error) => /needs \d+ bytes/.test(e.message) && /50 missing/.test(e.message) && /group1-shard2of5\.bin is probably truncated/.test(e.message),
  );
});

test('an unknown layer class is one error naming the class and the layer', async () => {
  const { artifacts } = await classifier(7);
  const topo = JSON.parse(JSON.stringify(artifacts.modelTopology).replace('"class_name":"DepthwiseConv2D"', '"class_name":"FancyConv2D"'));
  assert.throws(
    () => importTfjsLayers({ ...artifacts, modelTopology: topo, source: 'fancy.json' }),
    /^Error: fancy\.json: layer FancyConv2D "depthwise_conv2d_\w+" is not supported by graft's importer\. Supported: .*Conv2D.*Replace the layer/,
  );
});

test('loadAnyModel opens .onnx files and rejects JSON that is not a TensorFlow.js model', () => {
  const onnx = path.join(tmp, 'cls', 'model.graft.onnx');
  assert.equal(loadAnyModel(onnx).graph.outputs[0]!.name, 'logits');
  const junk = path.join(tmp, 'junk.json');
  fs.writeFileSync(junk, '{"hello": 1}');
  assert.throws(() => loadAnyModel(junk), /junk\.json is JSON but not a TensorFlow\.js model\.json/);
});
