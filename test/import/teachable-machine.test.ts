/**
 * A Teachable-Machine-style image model, built and saved with @tensorflow/tfjs the way Teachable Machine's
 * exporter does it, goes through graft as a user would: `graft import` (labels and preprocessing from
 * metadata.json), a check against tfjs's own predictions, a new head for a different number of classes
 * fine-tuned with `graft train` on generated PNGs, and `graft predict`.
 *
 * Teachable Machine (@teachablemachine/image) builds `tf.sequential([truncated, head])`, where `truncated` is
 * itself `tf.sequential([tf.model(mobilenet input → 'out_relu'), globalAveragePooling2d])` and `head` is
 * `tf.sequential([dense(100, relu), dense(classes, softmax, no bias)])`, and saves model.json + one
 * `weights.bin` + metadata.json. Here the MobileNet is a small random one at 64×64 so the test stays fast.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import sharp from 'sharp';
import { loadModel } from '../../src/onnx/io.js';
import { Rng } from '../../src/tensor.js';
import { Network } from '../../src/train/network.js';
import { type CliRun, runGraft } from '../cli-run.js';
import { maxAbsDiff, randomData, runImported, tf } from './helpers.js';

const SIZE = 64;
const LABELS = ['cat', 'dog', 'bird'];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-tm-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function graft(args: string[]): Promise<CliRun> {
  return runGraft(args, tmp, { GRAFT_THREADS: '2' });
}

/** One MobileNetV2-style inverted residual block: 1×1 expand, 3×3 depthwise, 1×1 project (BN after each, ReLU6 between). */
function block(x: tf.SymbolicTensor, name: string, o: { expand: number; out: number; stride: number }): tf.SymbolicTensor {
  const inC = x.shape[3] as number;
  const bn = (t: tf.SymbolicTensor, n: string) =>
    tf.layers.batchNormalization({ name: `${name}_${n}_BN`, epsilon: 1e-3, momentum: 0.999 }).apply(t) as tf.SymbolicTensor;
  const relu6 = (t: tf.SymbolicTensor, n: string) => tf.layers.reLU({ maxValue: 6, name: `${name}_${n}_relu` }).apply(t) as tf.SymbolicTensor;
  let h = tf.layers.conv2d({ name: `${name}_expand`, filters: inC * o.expand, kernelSize: 1, padding: 'same', useBias: false }).apply(x) as tf.SymbolicTensor;
  h = relu6(bn(h, 'expand'), 'expand');
  h = tf.layers.depthwiseConv2d({ name: `${name}_depthwise`, kernelSize: 3, strides: o.stride, padding: 'same', useBias: false }).apply(h) as tf.SymbolicTensor;
  h = relu6(bn(h, 'depthwise'), 'depthwise');
  h = tf.layers.conv2d({ name: `${name}_project`, filters: o.out, kernelSize: 1, padding: 'same', useBias: false }).apply(h) as tf.SymbolicTensor;
  h = bn(h, 'project');
  return o.stride === 1 && inC === o.out ? (tf.layers.add({ name: `${name}_add` }).apply([x, h]) as tf.SymbolicTensor) : h;
}

/** A truncated MobileNetV2-like functional model ending at `out_relu`, as Teachable Machine cuts its MobileNet. */
function mobilenet(): tf.LayersModel {
  const input = tf.input({ shape: [SIZE, SIZE, 3], name: 'input_1' });
  let x = tf.layers.conv2d({ name: 'Conv1', filters: 8, kernelSize: 3, strides: 2, padding: 'same', useBias: false }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'bn_Conv1', epsilon: 1e-3 }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.reLU({ maxValue: 6, name: 'Conv1_relu' }).apply(x) as tf.SymbolicTensor;
  x = block(x, 'block_1', { expand: 2, out: 8, stride: 1 });
  x = block(x, 'block_2', { expand: 3, out: 12, stride: 2 });
  x = block(x, 'block_3', { expand: 3, out: 12, stride: 1 });
  x = tf.layers.conv2d({ name: 'Conv_1', filters: 32, kernelSize: 1, useBias: false }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'Conv_1_bn', epsilon: 1e-3 }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.reLU({ maxValue: 6, name: 'out_relu' }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: x, name: 'model_1' });
}

/** Teachable Machine's joint model: sequential(sequential(mobilenet, GAP), sequential(dense 100 relu, dense softmax)). */
function teachableModel(): { joint: tf.Sequential; truncated: tf.Sequential; backbone: tf.LayersModel } {
  const backbone = mobilenet();
  const truncated = tf.sequential({
    name: 'sequential_1',
    layers: [backbone, tf.layers.globalAveragePooling2d({ name: 'global_average_pooling2d_GlobalAveragePooling2D1' })],
  });
  const head = tf.sequential({
    name: 'sequential_3',
    layers: [
      tf.layers.dense({ name: 'dense_Dense1', inputShape: [32], units: 100, activation: 'relu', kernelInitializer: 'varianceScaling', useBias: true }),
      tf.layers.dense({ name: 'dense_Dense2', units: LABELS.length, activation: 'softmax', kernelInitializer: 'varianceScaling', useBias: false }),
    ],
  });
  const joint = tf.sequential({ name: 'sequential_4' });
  joint.add(truncated);
  joint.add(head);
  return { joint, truncated, backbone };
}

/**
 * Seeded weights that behave like trained ones, so the features carry the input and the fine-tune has something
 * to learn: He-uniform kernels, γ ∈ [0.8, 1.2], β ∈ ±0.1, and BatchNorm moving statistics measured on a batch
 * of inputs (layer by layer, as training would leave them), each perturbed by a few percent so the import check
 * does not rely on exact normalisation.
 */
function pretrainedLike(joint: tf.Sequential, backbone: tf.LayersModel, seed: number): void {
  const rng = new Rng(seed);
  const uniform = (n: number, lo: number, hi: number) => Float32Array.from({ length: n }, () => lo + (hi - lo) * rng.next());
  joint.setWeights(
    joint.weights.map((w) => {
      const shape = w.shape as number[];
      const n = shape.reduce((a, b) => a * b, 1);
      const fanIn = /depthwise_kernel/.test(w.name) ? shape[0]! * shape[1]! : n / shape.at(-1)!;
      const limit = Math.sqrt(6 / fanIn);
      const [lo, hi] = /gamma/.test(w.name) ? [0.8, 1.2] : /moving_variance/.test(w.name) ? [1, 1] : /kernel/.test(w.name) ? [-limit, limit] : [-0.1, 0.1];
      return tf.tensor(uniform(n, lo, hi), shape);
    }),
  );
  const x = tf.tensor(randomData(16 * SIZE * SIZE * 3, seed + 1, -1, 1), [16, SIZE, SIZE, 3]);
  for (const layer of backbone.layers.filter((l) => l.getClassName() === 'BatchNormalization')) {
    const probe = tf.model({ inputs: backbone.inputs, outputs: layer.input as tf.SymbolicTensor });
    const { mean, variance } = tf.moments(probe.predict(x) as tf.Tensor, [0, 1, 2]);
    const c = mean.shape[0]!;
    const [gamma, beta] = layer.getWeights();
    const jitter = (t: tf.Tensor) => t.mul(tf.tensor(uniform(c, 0.95, 1.05)));
    layer.setWeights([gamma!, beta!, jitter(mean), jitter(variance)]);
  }
}

/** Saves like Teachable Machine's "Download my model": model.json + weights.bin (one shard) + metadata.json. */
async function saveTeachable(model: tf.LayersModel, dir: string): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      const data = a.weightData as ArrayBuffer | ArrayBuffer[];
      const parts = (Array.isArray(data) ? data : [data]).map((d) => new Uint8Array(d));
      fs.writeFileSync(path.join(dir, 'weights.bin'), Buffer.concat(parts));
      const json = {
        modelTopology: a.modelTopology,
        format: 'layers-model',
        generatedBy: `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
        convertedBy: null,
        weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs }],
      };
      fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  const metadata = {
    tfjsVersion: tf.version.tfjs,
    tmVersion: '2.4.10',
    packageVersion: '0.8.4',
    packageName: '@teachablemachine/image',
    timeStamp: '2024-05-01T10:00:00.000Z',
    userMetadata: {},
    modelName: 'tm-my-image-model',
    labels: LABELS,
    imageSize: SIZE,
  };
  fs.writeFileSync(path.join(dir, 'metadata.json'), JSON.stringify(metadata));
}

/** root/<class>/<i>.png: an orange disc ("sun") or a blue bar ("sea") on a noisy dark background: new classes for the fine-tune. */
async function makeImages(root: string, perClass: number): Promise<void> {
  let s = 11;
  const rnd = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  const colour: Record<string, number[]> = { sun: [235, 150, 40], sea: [40, 90, 230] };
  for (const cls of ['sun', 'sea']) {
    fs.mkdirSync(path.join(root, cls), { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const n = 48;
      const px = Buffer.alloc(n * n * 3);
      const cx = 18 + rnd() * 12;
      const cy = 18 + rnd() * 12;
      for (let y = 0; y < n; y++)
        for (let x = 0; x < n; x++) {
          const on = cls === 'sun' ? (x - cx) ** 2 + (y - cy) ** 2 < 120 : Math.abs(y - cy) < 5;
          for (let c = 0; c < 3; c++) px[(y * n + x) * 3 + c] = Math.max(0, Math.min(255, (on ? colour[cls]![c]! : 30) + (rnd() - 0.5) * 60));
        }
      await sharp(px, { raw: { width: n, height: n, channels: 3 } })
        .png()
        .toFile(path.join(root, cls, `${i}.png`));
    }
  }
}

test('a Teachable Machine export imports with its labels, matches tfjs, takes a new head and fine-tunes with graft train', async () => {
  const { joint, truncated, backbone } = teachableModel();
  pretrainedLike(joint, backbone, 21);
  const dir = path.join(tmp, 'tm');
  await saveTeachable(joint, dir);
  const images = path.join(tmp, 'shapes');
  const imagesReady = makeImages(images, 16);

  // 1. graft import, as a user would
  const imp = await graft(['--json', 'import', path.join(dir, 'model.json'), '--out', path.join(tmp, 'tm.onnx')]);
  assert.equal(imp.code, 0, imp.stderr);
  const report = JSON.parse(imp.stdout);
  assert.deepEqual(report.labels, LABELS, 'labels come from metadata.json');
  assert.deepEqual(report.inputs[0].shape, ['N', 3, SIZE, SIZE]);
  assert.deepEqual(
    report.outputs.map((o: { name: string }) => o.name),
    ['logits', 'probabilities', 'features'],
  );
  assert.match(report.cut, /global_average_pooling2d/);
  // Teachable Machine feeds centre-cropped squares scaled as pixel / 127 - 1
  assert.equal(report.preprocess.resize, 'crop');
  assert.equal(report.preprocess.cropFraction, 1);
  assert.equal(report.preprocess.scale, 127);
  assert.deepEqual(report.preprocess.mean, [1, 1, 1]);
  assert.deepEqual(report.preprocess.std, [1, 1, 1]);

  // 2. the ONNX model computes what tfjs computes (probabilities and the pooled features)
  const model = loadModel(path.join(tmp, 'tm.onnx'));
  const x = randomData(3 * SIZE * SIZE * 3, 22, -1, 1);
  const xt = tf.tensor(x, [3, SIZE, SIZE, 3]);
  const got = await runImported(model, x, [3, SIZE, SIZE, 3]);
  const dp = maxAbsDiff(got.probabilities!.data as Float32Array, (joint.predict(xt) as tf.Tensor).dataSync());
  const df = maxAbsDiff(got.features!.data as Float32Array, (truncated.predict(xt) as tf.Tensor).dataSync());
  assert.ok(dp <= 1e-4 && df <= 1e-4, `max abs diff: probabilities ${dp}, features ${df}`);
  const net = Network.load(path.join(tmp, 'tm.onnx'));
  assert.deepEqual(net.labels, LABELS);
  assert.ok(
    net.parameters.some((p) => /^sequential_1\.model_1\.block_2_depthwise\.depthwise_kernel$/.test(p)),
    `nested layer weights are named by their models: ${net.parameters.slice(0, 5)}`,
  );

  // 3. a new 2-class head, fine-tuned (head first, then the whole network) on generated images
  await imagesReady;
  const train = await graft([
    '--json',
    'train',
    '--backbone',
    path.join(tmp, 'tm.onnx'),
    '--data',
    images,
    '--head',
    'linear',
    '--mode',
    'fine-tune',
    '--freeze-epochs',
    '3',
    '--epochs',
    '5',
    '--batch-size',
    '8',
    '--lr',
    '0.1',
    '--val-split',
    '0.25',
    '--no-early-stopping',
    '--seed',
    '3',
    '--runs-dir',
    'runs',
    '--name',
    'tm',
  ]);
  assert.equal(train.code, 0, train.stderr);
  const summary = JSON.parse(train.stdout);
  assert.deepEqual(summary.classes, ['sea', 'sun']);
  const history = JSON.parse(fs.readFileSync(path.join(tmp, 'runs', 'tm', 'model.json'), 'utf8')).metrics.history as { phase: string; train_loss: number }[];
  assert.ok(
    history.some((h) => h.phase === 'full' || h.phase === 'fine-tune'),
    `the backbone was unfrozen: ${history.map((h) => h.phase)}`,
  );
  if (process.env.GRAFT_TEST_VERBOSE) console.log(history);
  assert.ok(history.at(-1)!.train_loss < history[0]!.train_loss, `loss fell: ${history.map((h) => h.train_loss.toFixed(3))}`);

  // 4. predict with the fine-tuned model
  const out = path.join(tmp, 'runs', 'tm', 'model.onnx');
  const pred = await graft(['--json', 'predict', out, path.join(images, 'sun'), path.join(images, 'sea')]);
  assert.equal(pred.code, 0, pred.stderr);
  const list = JSON.parse(pred.stdout).results as { file: string; top: { label: string }[] }[];
  assert.equal(list.length, 32);
  const correct = list.filter((r) => r.top[0]!.label === path.basename(path.dirname(r.file))).length;
  if (process.env.GRAFT_TEST_VERBOSE) console.log(`${correct}/32 correct`);
  assert.ok(correct >= 27, `${correct}/32 images classified correctly (chance: 16)`);
});
