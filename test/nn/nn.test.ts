import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Dim } from '../../src/ir/graph.js';
import type { Model } from '../../src/ir/model.js';
import {
  adaptiveAvgPool2d,
  avgPool2d,
  batchNorm1d,
  batchNorm2d,
  bufferNames,
  conv2d,
  dropout,
  flatten,
  gelu,
  globalAvgPool,
  identity,
  leakyRelu,
  lenet5,
  linear,
  type Module,
  maxPool2d,
  mlp,
  paramCount,
  paramNames,
  relu,
  relu6,
  resnet18,
  sequential,
  sigmoid,
  smallCNN,
  tanh,
} from '../../src/nn/index.js';
import { createSession, runHost } from '../../src/runtime/session.js';
import { Rng, Tensor } from '../../src/tensor.js';

function rand(dims: number[], seed = 1): Tensor {
  const r = new Rng(seed);
  const t = Tensor.f32(dims);
  for (let i = 0; i < t.size; i++) (t.data as Float32Array)[i] = r.normal();
  return t;
}

async function run(model: Model, x: Tensor): Promise<Tensor> {
  const s = await createSession(model, { threads: 1 });
  const out = await runHost(s, { [model.graph.inputs[0]!.name]: x });
  return out[model.graph.outputs[0]!.name]!;
}

function stats(t: Tensor): { mean: number; std: number; maxAbs: number } {
  const d = t.data as Float32Array;
  let s = 0;
  let s2 = 0;
  let m = 0;
  for (const v of d) {
    s += v;
    s2 += v * v;
    m = Math.max(m, Math.abs(v));
  }
  const mean = s / d.length;
  return { mean, std: Math.sqrt(s2 / d.length - mean * mean), maxAbs: m };
}

test('every module builds and runs in onnxruntime with the expected output shape', async () => {
  const cases: [string, Module, Dim[], number[]][] = [
    ['linear', linear(8, 5), ['N', 8], [3, 5]],
    ['linear no bias', linear(8, 5, { bias: false }), ['N', 8], [3, 5]],
    ['linear rank 3 (MatMul)', linear(8, 5), ['N', 4, 8], [3, 4, 5]],
    ['linear lazy', linear(null, 5), ['N', 8], [3, 5]],
    ['conv', conv2d(3, 4, 3), ['N', 3, 9, 9], [3, 4, 7, 7]],
    ['conv stride/pad', conv2d(3, 4, 3, { stride: 2, padding: 1 }), ['N', 3, 9, 9], [3, 4, 5, 5]],
    ['conv dilation', conv2d(3, 4, 3, { dilation: 2, bias: false }), ['N', 3, 9, 9], [3, 4, 5, 5]],
    ['conv groups', conv2d(4, 8, [3, 1], { groups: 2, padding: [1, 0] }), ['N', 4, 6, 6], [3, 8, 6, 6]],
    ['bn2d', batchNorm2d(3), ['N', 3, 5, 5], [3, 3, 5, 5]],
    ['bn1d', batchNorm1d(6), ['N', 6], [3, 6]],
    ['relu', relu(), ['N', 6], [3, 6]],
    ['relu6', relu6(), ['N', 6], [3, 6]],
    ['leakyRelu', leakyRelu(0.2), ['N', 6], [3, 6]],
    ['sigmoid', sigmoid(), ['N', 6], [3, 6]],
    ['tanh', tanh(), ['N', 6], [3, 6]],
    ['gelu', gelu(), ['N', 6], [3, 6]],
    ['gelu tanh', gelu('tanh'), ['N', 6], [3, 6]],
    ['dropout', dropout(0.3), ['N', 6], [3, 6]],
    ['maxPool', maxPool2d(2), ['N', 2, 9, 9], [3, 2, 4, 4]],
    ['maxPool 3/2/1', maxPool2d(3, { stride: 2, padding: 1 }), ['N', 2, 8, 8], [3, 2, 4, 4]],
    ['avgPool', avgPool2d(3, { stride: 1, padding: 1 }), ['N', 2, 8, 8], [3, 2, 8, 8]],
    ['adaptiveAvgPool 1', adaptiveAvgPool2d(1), ['N', 2, 8, 8], [3, 2, 1, 1]],
    ['adaptiveAvgPool 2', adaptiveAvgPool2d(2), [3, 2, 8, 8], [3, 2, 2, 2]],
    ['globalAvgPool', globalAvgPool(), ['N', 2, 5, 5], [3, 2, 1, 1]],
    ['flatten', flatten(), ['N', 2, 3, 4], [3, 24]],
    ['flatten(2)', flatten(2), ['N', 2, 3, 4], [3, 2, 12]],
    ['identity', identity(), ['N', 6], [3, 6]],
    ['mlp', mlp([16, 16], 4, { activation: 'gelu', dropout: 0.1, batchNorm: true, inFeatures: 8 }), ['N', 8], [3, 4]],
    ['mlp tanh lazy', mlp([16], 4, { activation: 'tanh' }), ['N', 8], [3, 4]],
    ['sequential', sequential(conv2d(1, 4, 3, { padding: 1 }), batchNorm2d(4), relu(), maxPool2d(2), flatten(), linear(64, 10)), ['N', 1, 8, 8], [3, 10]],
  ];
  for (const [name, mod, inShape, expected] of cases) {
    const model = mod.build({ inputShape: inShape, seed: 3 });
    const dims = inShape.map((d) => (typeof d === 'number' ? d : 3));
    const y = await run(model, rand(dims));
    assert.deepEqual(y.dims, expected, `${name}: output dims`);
    const declared = model.graph.outputs[0]!.shape?.map((d) => (d === 'N' ? 3 : d));
    assert.deepEqual(declared, expected, `${name}: inferred output shape ${JSON.stringify(model.graph.outputs[0]!.shape)}`);
    assert.ok((y.data as Float32Array).every(Number.isFinite), `${name}: finite output`);
  }
});

test('architectures: output shapes, state_dict names and PyTorch parameter counts', async () => {
  const r = resnet18().build();
  assert.equal(paramCount(r), 11_689_512, 'torchvision resnet18 has 11,689,512 parameters');
  const names = paramNames(r);
  assert.equal(names.length, 62);
  assert.equal(names[0], 'conv1.weight');
  assert.deepEqual(names.slice(-2), ['fc.weight', 'fc.bias']);
  for (const n of ['bn1.weight', 'layer1.0.conv1.weight', 'layer1.1.bn2.bias', 'layer2.0.downsample.0.weight', 'layer4.1.conv2.weight'])
    assert.ok(names.includes(n), n);
  assert.ok(!names.includes('layer1.0.downsample.0.weight'), 'layer1 has no downsample');
  assert.equal(bufferNames(r).length, 40);
  assert.ok(bufferNames(r).includes('layer3.0.downsample.1.running_var'));
  assert.deepEqual(r.graph.initializers.get('fc.weight')!.dims, [1000, 512]);
  assert.deepEqual(r.graph.initializers.get('layer2.0.downsample.0.weight')!.dims, [128, 64, 1, 1]);
  assert.deepEqual((await run(r, rand([1, 3, 224, 224]))).dims, [1, 1000]);

  const small = resnet18({ classes: 7, width: 8, inChannels: 1 }).build({ inputShape: ['N', 1, 32, 32] });
  assert.deepEqual((await run(small, rand([2, 1, 32, 32]))).dims, [2, 7]);

  const s = smallCNN().build();
  const expected = 1 * 32 * 9 + 32 + 64 + (32 * 64 * 9 + 64) + 128 + (3136 * 128 + 128) + 256 + (128 * 10 + 10);
  assert.equal(paramCount(s), expected);
  assert.deepEqual(paramNames(s).slice(0, 2), ['backbone.0.weight', 'backbone.0.bias']);
  assert.deepEqual(paramNames(s).slice(-2), ['head.weight', 'head.bias']);
  assert.ok(bufferNames(s).includes('backbone.10.running_mean'));
  assert.deepEqual((await run(s, rand([4, 1, 28, 28]))).dims, [4, 10]);

  const l = lenet5().build();
  assert.equal(paramCount(l), 61_706);
  assert.deepEqual((await run(l, rand([2, 1, 28, 28]))).dims, [2, 10]);

  const head = mlp([256, 256], 10, { inFeatures: 512 }).build();
  assert.deepEqual(paramNames(head), ['0.weight', '0.bias', '2.weight', '2.bias', '4.weight', '4.bias']);
  assert.equal(paramCount(head), 512 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10);
  const gemms = head.graph.nodes.filter((n) => n.op === 'Gemm');
  assert.equal(gemms.length, 3);
  assert.ok(gemms.every((n) => n.attrs.transB === 1));
  assert.deepEqual(head.graph.initializers.get('0.weight')!.dims, [256, 512]);
  assert.equal(head.opset, 17);
  assert.deepEqual(head.graph.inputs[0], { name: 'input', dtype: 'float32', shape: ['N', 512] });
  assert.equal(head.graph.outputs[0]!.name, 'logits');
  assert.deepEqual(head.graph.outputs[0]!.shape, ['N', 10]);
});

test('initialization follows PyTorch defaults and is reproducible from the seed', () => {
  const lin = linear(1000, 500).build({ inputShape: ['N', 1000], seed: 5 });
  const conv = conv2d(64, 128, 3).build({ inputShape: ['N', 64, 8, 8], seed: 5 });
  const m = batchNorm2d(16).build({ inputShape: ['N', 16, 4, 4] });
  const check = (model: Model, name: string, bound: number) => {
    const s = stats(model.graph.initializers.get(name)!);
    const std = bound / Math.sqrt(3);
    assert.ok(Math.abs(s.std - std) < 0.1 * std, `${name}: std ${s.std} vs ${std}`);
    assert.ok(Math.abs(s.mean) < 0.1 * std, `${name}: mean ${s.mean}`);
    assert.ok(s.maxAbs <= bound && s.maxAbs > 0.95 * bound, `${name}: max ${s.maxAbs} vs bound ${bound}`);
  };
  check(lin, 'weight', 1 / Math.sqrt(1000));
  check(lin, 'bias', 1 / Math.sqrt(1000));
  check(conv, 'weight', 1 / Math.sqrt(64 * 9));
  check(conv, 'bias', 1 / Math.sqrt(64 * 9));
  const bn = (k: string) => [...(m.graph.initializers.get(k)!.data as Float32Array)];
  assert.ok(bn('weight').every((v) => v === 1) && bn('running_var').every((v) => v === 1));
  assert.ok(bn('bias').every((v) => v === 0) && bn('running_mean').every((v) => v === 0));

  // torchvision ResNet convs: kaiming_normal_(mode='fan_out', relu)
  const r = resnet18({ classes: 10 }).build();
  const w = stats(r.graph.initializers.get('layer4.0.conv1.weight')!);
  const std = Math.sqrt(2 / (512 * 9));
  assert.ok(Math.abs(w.std - std) < 0.05 * std, `resnet conv std ${w.std} vs ${std}`);

  const a = linear(20, 30).build({ inputShape: ['N', 20], seed: 1 });
  const b = linear(20, 30).build({ inputShape: ['N', 20], seed: 1 });
  const c = linear(20, 30).build({ inputShape: ['N', 20], seed: 2 });
  const data = (x: Model) => [...(x.graph.initializers.get('weight')!.data as Float32Array)];
  assert.deepEqual(data(a), data(b));
  assert.notDeepEqual(data(a), data(c));
});

test('a tiny conv + bn + linear net matches a hand computation', async () => {
  const net = sequential(conv2d(1, 2, 2), batchNorm2d(2, { eps: 0 }), relu(), flatten(), linear(8, 1));
  const m = net.build({ inputShape: [1, 1, 3, 3] });
  const set = (k: string, v: number[]) => m.graph.initializers.set(k, Tensor.f32(m.graph.initializers.get(k)!.dims, v));
  set('0.weight', [1, 0, 0, -1, 0.5, 0.5, 0.5, 0.5]);
  set('0.bias', [0.1, -0.2]);
  set('1.weight', [2, 0.5]);
  set('1.bias', [1, -1]);
  set('1.running_mean', [0.5, 1]);
  set('1.running_var', [4, 0.25]);
  set('4.weight', [1, -1, 2, 0.5, 1, 1, -2, 3]);
  set('4.bias', [0.25]);
  const x = [1, 2, 3, 4, 5, 6, 7, 8, 9];
  const X = (i: number, j: number) => x[i * 3 + j]!;
  const feats: number[] = [];
  const W = [
    [1, 0, 0, -1],
    [0.5, 0.5, 0.5, 0.5],
  ];
  const b = [0.1, -0.2];
  const [g, beta, mu, v] = [
    [2, 0.5],
    [1, -1],
    [0.5, 1],
    [4, 0.25],
  ];
  for (let c = 0; c < 2; c++)
    for (let i = 0; i < 2; i++)
      for (let j = 0; j < 2; j++) {
        const w = W[c]!;
        const conv = w[0]! * X(i, j) + w[1]! * X(i, j + 1) + w[2]! * X(i + 1, j) + w[3]! * X(i + 1, j + 1) + b[c]!;
        const bn = (g![c]! * (conv - mu![c]!)) / Math.sqrt(v![c]!) + beta![c]!;
        feats.push(Math.max(0, bn));
      }
  const lw = [1, -1, 2, 0.5, 1, 1, -2, 3];
  const expected = feats.reduce((s, f, i) => s + f * lw[i]!, 0.25);
  const y = await run(m, Tensor.f32([1, 1, 3, 3], x));
  assert.ok(Math.abs((y.data as Float32Array)[0]! - expected) < 1e-4, `got ${y.data[0]}, expected ${expected}`);
});

test('activations compute what PyTorch computes', async () => {
  const xs = [-3, -1, -0.5, 0, 0.5, 1, 3, 7];
  const erf = (z: number) => {
    // Abramowitz–Stegun 7.1.26 (|error| < 1.5e-7)
    const t = 1 / (1 + 0.3275911 * Math.abs(z));
    const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-z * z);
    return Math.sign(z) * y;
  };
  const cases: [Module, (v: number) => number][] = [
    [relu6(), (v) => Math.min(6, Math.max(0, v))],
    [leakyRelu(0.1), (v) => (v < 0 ? 0.1 * v : v)],
    [gelu(), (v) => 0.5 * v * (1 + erf(v / Math.SQRT2))],
    [gelu('tanh'), (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)))],
    [sigmoid(), (v) => 1 / (1 + Math.exp(-v))],
  ];
  for (const [mod, f] of cases) {
    const y = await run(mod.build({ inputShape: [xs.length] }), Tensor.f32([xs.length], xs));
    xs.forEach((v, i) => {
      assert.ok(Math.abs((y.data as Float32Array)[i]! - f(v)) < 1e-5, `${mod.kind}(${v})`);
    });
  }
  const gelu20 = gelu().build({ inputShape: ['N'], opset: 20 });
  assert.ok(gelu20.graph.nodes.some((n) => n.op === 'Gelu'));
  assert.ok(
    !gelu()
      .build({ inputShape: ['N'] })
      .graph.nodes.some((n) => n.op === 'Gelu'),
    'opset 17 uses the Erf formula',
  );
});

test('mistakes give errors that name the layer and the fix', () => {
  assert.throws(
    () => sequential(linear(8, 4), relu(), linear(5, 2)).build({ inputShape: ['N', 8] }),
    (e: Error) => /Linear "2"/.test(e.message) && /in_features is 5/.test(e.message) && /has 4 features/.test(e.message),
  );
  assert.throws(() => conv2d(3, 8, 3).build({ inputShape: ['N', 1, 8, 8] }), /Conv2d \(top-level module\).*in_channels is 3.*1 channels/);
  assert.throws(() => batchNorm2d(4).build({ inputShape: ['N', 4] }), /BatchNorm2d.*4-D/);
  assert.throws(() => linear(3, 2).build(), /no input shape/);
  assert.throws(() => conv2d(3, 4, 3, { groups: 2 }), /divisible by groups=2/);
  assert.throws(() => sequential({ a: relu(), 'b.c': relu() }), /contain no '\.'/);
  assert.throws(() => dropout(1), /\[0, 1\)/);
  assert.match(smallCNN().toString(), /\(9\): Linear\(in_features=3136, out_features=128, bias=True\)/);
});
