/**
 * Tiny Keras models built with tfjs, saved through an in-memory IOHandler, imported and run in onnxruntime:
 * outputs must match tfjs's own predictions. Each layer type the importer supports appears at least once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { importTfjsLayers } from '../../src/import/tfjs-layers.js';
import { type Artifacts, loadFromMemory, maxAbsDiff, randomData, randomizeWeights, runImported, saveToMemory, tf } from './helpers.js';

const TOL = 1e-4;

/** Imports `model`, runs both on the same random batch and returns the max abs difference per output. */
async function compare(model: tf.LayersModel, batch: number, seed: number, opts: { outputs?: 'keras' | 'classifier' } = { outputs: 'keras' }) {
  randomizeWeights(model, seed);
  const a = await saveToMemory(model);
  return compareArtifacts(a, model, batch, seed, opts);
}

async function compareArtifacts(
  a: Artifacts,
  ref: tf.LayersModel,
  batch: number,
  seed: number,
  opts: { outputs?: 'keras' | 'classifier' } = { outputs: 'keras' },
) {
  const imported = importTfjsLayers({ ...a, source: 'test model' }, opts);
  const shape = [batch, ...(ref.inputs[0]!.shape.slice(1) as number[])];
  const x = randomData(
    shape.reduce((p, d) => p * d, 1),
    seed + 1,
    -1,
    1,
  );
  const want = ref.predict(tf.tensor(x, shape));
  const wants = (Array.isArray(want) ? want : [want]) as tf.Tensor[];
  const got = await runImported(imported, x, shape);
  const outs = imported.graph.outputs.map((o) => o.name);
  // a softmax classifier is imported with outputs logits, probabilities(, features): tfjs's output is "probabilities"
  const compared = outs[0] === 'logits' ? ['probabilities'] : outs;
  const diffs = wants.map((w, i) => {
    const g = got[compared[i]!]!;
    assert.deepEqual([...g.dims], w.shape, `output ${compared[i]} shape`);
    return maxAbsDiff(g.data as Float32Array, w.dataSync());
  });
  if (process.env.GRAFT_TEST_VERBOSE)
    console.log(
      'diffs',
      diffs,
      'ref magnitude',
      wants.map((w) => Math.max(...Array.from(w.dataSync(), Math.abs))),
    );
  return { imported, diffs, outs };
}

test('Conv2D (SAME stride 2 on even and odd sizes, dilation, VALID), BN, ReLU6, padding, cropping, reshape and flatten match tfjs', async () => {
  const m = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [14, 13, 3], filters: 6, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu6' }),
      tf.layers.batchNormalization({ epsilon: 1e-3 }),
      tf.layers.reLU({ maxValue: 6 }),
      tf.layers.zeroPadding2d({
        padding: [
          [1, 2],
          [0, 1],
        ],
      }),
      tf.layers.conv2d({ filters: 8, kernelSize: [2, 3], dilationRate: 2, padding: 'valid', activation: 'tanh' }),
      tf.layers.conv2d({ filters: 8, kernelSize: 4, strides: 2, padding: 'same', useBias: false }),
      tf.layers.cropping2D({
        cropping: [
          [0, 1],
          [1, 0],
        ],
      }),
      tf.layers.reshape({ targetShape: [1, 3, 8] }),
      tf.layers.conv2d({ filters: 5, kernelSize: 1, activation: 'sigmoid' }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 4 }),
    ],
  });
  const { diffs, imported } = await compare(m, 3, 1);
  assert.ok(diffs[0]! <= TOL, `max abs diff ${diffs[0]}`);
  // the only layout change is at the input; a Transpose before Flatten keeps Dense's weights valid
  assert.deepEqual(imported.graph.inputs[0]!.shape, ['N', 3, 14, 13]);
});

test('DepthwiseConv2D (multiplier 2), SeparableConv2D, max/average pooling (SAME excludes padding) and global pooling match tfjs', async () => {
  const input = tf.input({ shape: [11, 8, 4] });
  let x = tf.layers.depthwiseConv2d({ kernelSize: 3, strides: 2, depthMultiplier: 2, padding: 'same', activation: 'relu' }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.separableConv2d({ filters: 6, kernelSize: 3, depthMultiplier: 2, padding: 'same', activation: 'swish' }).apply(x) as tf.SymbolicTensor;
  const mp = tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same' }).apply(x) as tf.SymbolicTensor;
  const ap = tf.layers.averagePooling2d({ poolSize: [2, 3], strides: 1, padding: 'same' }).apply(mp) as tf.SymbolicTensor;
  const ap2 = tf.layers.averagePooling2d({ poolSize: 2, padding: 'valid' }).apply(ap) as tf.SymbolicTensor;
  const g1 = tf.layers.globalAveragePooling2d({}).apply(ap) as tf.SymbolicTensor;
  const g2 = tf.layers.globalMaxPooling2d({}).apply(ap2) as tf.SymbolicTensor;
  const out = tf.layers.concatenate().apply([g1, g2]) as tf.SymbolicTensor;
  const { diffs } = await compare(tf.model({ inputs: input, outputs: [out, ap2] }), 2, 2);
  for (const d of diffs) assert.ok(d <= TOL, `max abs diff ${diffs}`);
});

test('dense stacks with every activation, LayerNormalization, LeakyReLU/PReLU/ELU/Softmax layers, Permute, Rescaling and Dropout match tfjs', async () => {
  const acts = ['relu', 'relu6', 'sigmoid', 'tanh', 'swish', 'elu', 'selu', 'softplus', 'softsign', 'hardSigmoid', 'mish', 'gelu', 'gelu_new', 'linear'];
  const layers: tf.layers.Layer[] = [tf.layers.rescaling({ inputShape: [6], scale: 0.5, offset: -0.25 })];
  for (const a of acts) layers.push(tf.layers.dense({ units: 6, activation: a as never }));
  layers.push(
    tf.layers.layerNormalization({}),
    tf.layers.leakyReLU({ alpha: 0.2 }),
    tf.layers.dense({ units: 6 }),
    tf.layers.prelu({}),
    tf.layers.elu({}),
    tf.layers.dropout({ rate: 0.3 }),
    tf.layers.reshape({ targetShape: [2, 3] }),
    tf.layers.permute({ dims: [2, 1] }),
    tf.layers.dense({ units: 4 }),
    tf.layers.softmax({ axis: -1 }),
    tf.layers.batchNormalization({ axis: -1 }),
  );
  const { diffs, imported } = await compare(tf.sequential({ layers }), 5, 3);
  assert.ok(diffs[0]! <= TOL, `max abs diff ${diffs[0]}`);
  assert.ok(
    imported.graph.nodes.some((n) => n.op === 'Dropout'),
    'Dropout kept for fine-tuning',
  );
});

test('Functional model with Add, Concatenate, Multiply, Average, Maximum, Minimum and a shared layer matches tfjs', async () => {
  const input = tf.input({ shape: [6, 6, 3] });
  const conv = (f: number, k: number) => tf.layers.conv2d({ filters: f, kernelSize: k, padding: 'same' });
  const a = conv(4, 3).apply(input) as tf.SymbolicTensor;
  const b = conv(4, 1).apply(input) as tf.SymbolicTensor;
  const shared = conv(4, 3);
  const sa = shared.apply(a) as tf.SymbolicTensor;
  const sb = shared.apply(b) as tf.SymbolicTensor; // second call of a shared layer (node index 1)
  const merged = [tf.layers.add(), tf.layers.multiply(), tf.layers.average(), tf.layers.maximum(), tf.layers.minimum()].map(
    (l) => l.apply([sa, sb]) as tf.SymbolicTensor,
  );
  const cat = tf.layers.concatenate({ axis: -1 }).apply([...merged, input]) as tf.SymbolicTensor;
  const cat1 = tf.layers.concatenate({ axis: 1 }).apply([cat, cat]) as tf.SymbolicTensor;
  const bn = tf.layers.batchNormalization({ axis: 3, center: false }).apply(cat1) as tf.SymbolicTensor;
  const pooled = tf.layers.globalAveragePooling2d({}).apply(bn) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 3, activation: 'softmax' }).apply(pooled) as tf.SymbolicTensor;
  const { diffs, outs, imported } = await compare(tf.model({ inputs: input, outputs: out }), 2, 4, {});
  assert.deepEqual(outs, ['logits', 'probabilities', 'features']);
  assert.ok(diffs[0]! <= TOL, `probabilities max abs diff ${diffs[0]}`);
  assert.equal(imported.metadata['graft.cut'], imported.graph.nodes.find((n) => n.outputs[0] === 'features')!.inputs[0]);
});

test('a Functional model nested in a Sequential (as Teachable Machine exports) matches tfjs', async () => {
  const inner = tf.input({ shape: [8, 8, 3] });
  const c1 = tf.layers.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }).apply(inner) as tf.SymbolicTensor;
  const c2 = tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same' }).apply(c1) as tf.SymbolicTensor;
  const sum = tf.layers.add().apply([c1, c2]) as tf.SymbolicTensor;
  const feat = tf.layers.globalAveragePooling2d({}).apply(sum) as tf.SymbolicTensor;
  const backbone = tf.model({ inputs: inner, outputs: feat, name: 'backbone' });
  const head = tf.sequential({
    layers: [tf.layers.dense({ inputShape: [4], units: 5, activation: 'relu' }), tf.layers.dense({ units: 2, activation: 'softmax' })],
  });
  const m = tf.sequential({ layers: [backbone, head] });
  const { diffs, imported } = await compare(m, 3, 5, {});
  assert.ok(diffs[0]! <= TOL, `probabilities max abs diff ${diffs[0]}`);
  const inits = [...imported.graph.initializers.keys()];
  assert.ok(
    inits.some((k) => /^backbone\.conv2d_\w+\.kernel$/.test(k)),
    `nested weights are named backbone.<layer>.<weight>: ${inits}`,
  );
  assert.ok(imported.metadata['graft.cut']?.startsWith('backbone/'), `cut ${imported.metadata['graft.cut']}`);
});

test('uint8, uint16 and float16 quantized weights are dequantized like tfjs does', async () => {
  const { quantize } = await import('./helpers.js');
  const m = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [7, 7, 2], filters: 3, kernelSize: 3, padding: 'same', activation: 'relu' }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 3 }),
    ],
  });
  randomizeWeights(m, 6);
  const a = await saveToMemory(m);
  for (const dtype of ['uint8', 'uint16', 'float16'] as const) {
    const q = quantize(a, dtype);
    const ref = await loadFromMemory(q);
    const { diffs } = await compareArtifacts(q, ref, 2, 7);
    assert.ok(diffs[0]! <= TOL, `${dtype}: max abs diff ${diffs[0]}`);
    // and the quantization really changed the weights (the test can fail)
    const { diffs: vsFloat } = await compareArtifacts(q, m, 2, 7);
    if (dtype !== 'float16') assert.ok(vsFloat[0]! > 1e-6, `${dtype} quantization has an effect`);
  }
});

test('hard_swish (not in tfjs) equals x·relu6(x+3)/6 of the linear pre-activation', async () => {
  const m = tf.sequential({ layers: [tf.layers.dense({ inputShape: [5], units: 7, activation: 'linear' })] });
  randomizeWeights(m, 8);
  const a = await saveToMemory(m);
  const topo = JSON.parse(JSON.stringify(a.modelTopology).replace('"activation":"linear"', '"activation":"hard_swish"'));
  const x = randomData(4 * 5, 9, -6, 6);
  const pre = (m.predict(tf.tensor(x, [4, 5])) as tf.Tensor).dataSync();
  const want = Array.from(pre, (v) => (v * Math.min(Math.max(v + 3, 0), 6)) / 6);
  const { runImported: run } = await import('./helpers.js');
  const got = await run(importTfjsLayers({ ...a, modelTopology: topo }, { outputs: 'keras' }), x, [4, 5]);
  assert.ok(maxAbsDiff(Object.values(got)[0]!.data as Float32Array, want) <= 1e-5);
});
