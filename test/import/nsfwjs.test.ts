/**
 * nsfwjs's bundled Keras models (ImageNet-initialised MobileNetV2 and InceptionV3 backbones, uint8-quantized,
 * shipped as JS-wrapped base64 shards), imported and run in onnxruntime, against @tensorflow/tfjs (cpu backend)
 * on the same random inputs: the 1280/2048-d features (`flatten_1`) and the class probabilities.
 *
 * tfjs's pure-JS cpu backend needs ~45 s for one 299×299 InceptionV3 image, so by default InceptionV3 is
 * checked at 139×139 (the same weights and layers; only the input size and the final 8×8 average pool, then
 * 3×3, change). Set GRAFT_SLOW_TESTS=1 to also compare it at its real 299×299.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { inspectModel } from '../../src/cli/commands/inspect.js';
import { importNsfwjs, importUnwrapped, loadNsfwjsModel, NSFWJS_CLASSES } from '../../src/import/index.js';
import type { UnwrappedTfjsModel } from '../../src/import/nsfwjs.js';
import { findCut } from '../../src/ir/surgery.js';
import { mlp } from '../../src/nn/index.js';
import { saveModel } from '../../src/onnx/io.js';
import { Network } from '../../src/train/network.js';
import { artifactsOf, loadFromMemory, maxAbsDiff, randomData, runImported, tf } from './helpers.js';

const TOL = 1e-4;

async function compareWithTfjs(m: UnwrappedTfjsModel, size: number, batch: number, seed: number) {
  const imported = importUnwrapped(m);
  const ref = await loadFromMemory(artifactsOf(m));
  const both = tf.model({ inputs: ref.inputs, outputs: [ref.getLayer('flatten_1').output as tf.SymbolicTensor, ref.outputs[0]!] });
  const shape = [batch, size, size, 3];
  const x = randomData(batch * size * size * 3, seed); // RGB in [0, 1], as nsfwjs feeds it
  const [f, p] = both.predict(tf.tensor(x, shape)) as tf.Tensor[];
  const got = await runImported(imported, x, shape);
  const features = maxAbsDiff(got.features!.data as Float32Array, f!.dataSync());
  const probabilities = maxAbsDiff(got.probabilities!.data as Float32Array, p!.dataSync());
  const scale = Math.max(...Array.from(f!.dataSync(), Math.abs));
  if (process.env.GRAFT_TEST_VERBOSE) console.log(`size ${size}: features max|diff| ${features} (max |f| ${scale}), probabilities ${probabilities}`);
  return { imported, features, probabilities, featureDims: got.features!.dims, scale };
}

test('nsfwjs MobileNetV2 matches tfjs on features (flatten_1, 1280-d) and probabilities', async () => {
  const r = await compareWithTfjs(loadNsfwjsModel('MobileNetV2'), 224, 2, 11);
  assert.deepEqual([...r.featureDims], [2, 1280]);
  assert.ok(r.scale > 0.1, 'features are not trivially small');
  assert.ok(r.features <= TOL, `features max abs diff ${r.features}`);
  assert.ok(r.probabilities <= TOL, `probabilities max abs diff ${r.probabilities}`);
  assert.equal(r.imported.metadata['graft.cut'], 'flatten_1');
});

test('nsfwjs InceptionV3 (at 139×139) matches tfjs on features (2048-d) and probabilities', async () => {
  const m = loadNsfwjsModel('InceptionV3');
  const topo = JSON.stringify(m.json.modelTopology)
    .replace('"batch_input_shape":[null,299,299,3]', '"batch_input_shape":[null,139,139,3]')
    .replace(/("name":"average_pooling2d_10"[^}]*"pool_size":)\[8,8\](,[^}]*"strides":)\[8,8\]/, '$1[3,3]$2[3,3]');
  assert.ok(topo.includes('[null,139,139,3]') && topo.includes('"pool_size":[3,3],"padding":"valid","strides":[3,3]'), 'patched the topology');
  const r = await compareWithTfjs({ ...m, json: { ...m.json, modelTopology: JSON.parse(topo) } }, 139, 1, 12);
  assert.deepEqual([...r.featureDims], [1, 2048]);
  assert.ok(r.features <= TOL, `features max abs diff ${r.features}`);
  assert.ok(r.probabilities <= TOL, `probabilities max abs diff ${r.probabilities}`);
});

test('importNsfwjs records nsfwjs preprocessing (RGB / 255, stretch, no mean/std) and class names', () => {
  const m = importNsfwjs('MobileNetV2');
  const pre = JSON.parse(m.metadata['graft.preprocess']!);
  assert.deepEqual(pre.size, [224, 224]);
  assert.equal(pre.scale, 255);
  assert.equal(pre.resize, 'stretch');
  assert.deepEqual(pre.mean, [0, 0, 0]);
  assert.deepEqual(pre.std, [1, 1, 1]);
  assert.equal(pre.layout, 'NCHW');
  assert.deepEqual(JSON.parse(m.metadata['graft.labels']!), [...NSFWJS_CLASSES]);
  assert.deepEqual(m.graph.inputs[0]!.shape, ['N', 3, 224, 224]);
  assert.deepEqual(
    m.graph.outputs.map((o) => [o.name, o.shape]),
    [
      ['logits', ['N', 5]],
      ['probabilities', ['N', 5]],
      ['features', ['N', 1280]],
    ],
  );
});

test('one feature cut for inspect, import and train: nsfwjs MobileNetV2 cuts at the 1280-d flatten_1, before the NSFW head', async () => {
  // the NSFW head is flatten_1 (1280) → Dense(128, relu) → Dropout → Dense(5); "input of the last Dense" alone says dropout_3
  const imported = importNsfwjs('MobileNetV2');
  assert.equal(findCut(imported).value, 'dropout_3', 'the classifier-input rule alone would cut inside the NSFW head');

  const net = Network.load('nsfwjs:MobileNetV2');
  assert.equal(net.cut, 'flatten_1', 'Network.load (what train and lr-find build on)');
  const report = await inspectModel('nsfwjs:MobileNetV2');
  assert.ok(report.cut && !('error' in report.cut), JSON.stringify(report.cut));
  assert.equal(report.cut.value, 'flatten_1', 'graft inspect nsfwjs:MobileNetV2');
  assert.deepEqual(report.cut.shape, ['N', 1280]);
  assert.match(report.cut.rule, /recorded/);

  // the same on the imported model saved as .onnx (what graft import writes and graft inspect reads)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-nsfwjs-cut-'));
  try {
    const file = path.join(dir, 'mobilenetv2.onnx');
    saveModel(imported, file);
    const fromFile = await inspectModel(file);
    assert.ok(fromFile.cut && !('error' in fromFile.cut));
    assert.equal(fromFile.cut.value, Network.load(file).cut);
    assert.equal(fromFile.cut.value, 'flatten_1');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }

  // train grafts its head there: the new head reads the 1280-d features
  net.freeze().replaceHead(mlp([], 3), { seed: 0 });
  assert.equal(net.cut, 'flatten_1');
  const gemm = net.model.graph.nodes.find((n) => n.inputs[0] === 'flatten_1' && (n.op === 'Gemm' || n.op === 'MatMul'));
  assert.ok(gemm, 'the new head reads flatten_1');
  assert.ok(!net.model.graph.has('dropout_3'), 'the NSFW head is gone');
});
