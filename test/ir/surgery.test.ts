import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Graph } from '../../src/ir/graph.js';
import { Model } from '../../src/ir/model.js';
import { appendOps, extractSubgraph, findCut, renameValue, stages } from '../../src/ir/surgery.js';
import { conv2d, flatten, globalAvgPool, linear, mlp, paramCount, paramNames, paramPaths, relu, resnet18, sequential, smallCNN } from '../../src/nn/index.js';
import { replaceHead } from '../../src/nn/replace-head.js';
import { decodeModel, encodeModel } from '../../src/onnx/io.js';
import { createSession, runHost } from '../../src/runtime/session.js';
import { Rng, Tensor } from '../../src/tensor.js';

function rand(dims: number[], seed = 1): Tensor {
  const r = new Rng(seed);
  const t = Tensor.f32(dims);
  for (let i = 0; i < t.size; i++) (t.data as Float32Array)[i] = r.normal();
  return t;
}

async function runAll(model: Model, x: Tensor): Promise<Record<string, Tensor>> {
  const s = await createSession(model, { threads: 1 });
  return runHost(s, { [model.graph.inputs[0]!.name]: x });
}

function maxDiff(a: Tensor, b: Tensor): number {
  assert.deepEqual(a.dims, b.dims);
  let m = 0;
  for (let i = 0; i < a.size; i++) m = Math.max(m, Math.abs((a.data as Float32Array)[i]! - (b.data as Float32Array)[i]!));
  return m;
}

const smallResnet = () => resnet18({ classes: 10, width: 8, inChannels: 3 }).build({ inputShape: ['N', 3, 32, 32], seed: 1 });

test('findCut finds the pooled 512-d features of resnet18', () => {
  const m = resnet18().build();
  const cut = findCut(m);
  assert.equal(cut.node.op, 'Gemm');
  assert.equal(cut.node.inputs[1], 'fc.weight');
  const producer = m.graph.nodes.find((n) => n.outputs.includes(cut.value))!;
  assert.equal(producer.op, 'Flatten');
  assert.equal(cut.dims?.[1], 512, `cut dims ${JSON.stringify(cut.dims)}`);
  // smallCNN: the cut is the backbone output (after BatchNorm1d + ReLU), not the Flatten before backbone.9
  const s = smallCNN().build();
  const sc = findCut(s);
  assert.equal(sc.node.inputs[1], 'head.weight');
  assert.equal(
    m.graph.nodes.find((n) => n.outputs.includes(sc.value)),
    undefined,
  );
  assert.equal(s.graph.nodes.find((n) => n.outputs.includes(sc.value))!.op, 'Relu');
});

test('extractSubgraph computes exactly the intermediate value of the full model', async () => {
  const m = smallResnet();
  const cut = findCut(m).value;
  const full = m.clone();
  full.graph.outputs.push({ name: cut, dtype: 'float32' });
  const x = rand([3, 3, 32, 32], 7);
  const ref = (await runAll(full, x))[cut]!;
  const feat = extractSubgraph(m, cut, { outputName: 'features' });
  assert.equal(feat.graph.outputs.length, 1);
  assert.equal(feat.graph.outputs[0]!.name, 'features');
  assert.ok(!feat.graph.initializers.has('fc.weight'), 'the classifier is pruned');
  assert.ok(!feat.graph.nodes.some((n) => n.op === 'Gemm'));
  const got = (await runAll(feat, x)).features!;
  assert.deepEqual(got.dims, [3, 64]);
  assert.ok(maxDiff(got, ref) <= 1e-6);
  // by node name, keeping the value's own name; an intermediate inside layer2
  const node = m.graph.nodes.find((n) => n.name.startsWith('layer2.0/Relu'))!;
  const sub = extractSubgraph(m, node.name);
  assert.equal(sub.graph.outputs[0]!.name, node.outputs[0]);
  assert.ok(!paramNames(sub).some((p) => p.startsWith('layer3')));
  full.graph.outputs.push({ name: node.outputs[0]!, dtype: 'float32' });
  const both = await runAll(full, x);
  assert.ok(maxDiff((await runAll(sub, x))[node.outputs[0]!]!, both[node.outputs[0]!]!) <= 1e-6);
  assert.throws(() => extractSubgraph(m, 'no_such_value'), /no value or node named "no_such_value"/);
  assert.throws(() => extractSubgraph(m, 'fc.weight'), /initializer/);
});

test('replaceHead grafts an MLP head and leaves the backbone untouched', async () => {
  const m = resnet18({ classes: 1000 }).build({ seed: 2 });
  const before = new Map([...m.graph.initializers].map(([k, t]) => [k, (t.data as Float32Array).slice()]));
  const g = replaceHead(m, mlp([256, 256], 10), { seed: 3 });
  assert.equal(g.graph.outputs.length, 1);
  assert.equal(g.graph.outputs[0]!.name, 'logits');
  assert.ok(!g.graph.initializers.has('fc.weight'), 'the old classifier is gone');
  assert.deepEqual(JSON.parse(g.metadata['graft.head_params']!), [
    'head.0.weight',
    'head.0.bias',
    'head.2.weight',
    'head.2.bias',
    'head.4.weight',
    'head.4.bias',
  ]);
  assert.deepEqual(g.graph.initializers.get('head.0.weight')!.dims, [256, 512]);
  assert.equal(paramCount(g), 11_689_512 - 513_000 + (512 * 256 + 256 + 256 * 256 + 256 + 2570));
  for (const [k, t] of g.graph.initializers) {
    if (k.startsWith('head.') || !before.has(k)) continue;
    assert.deepEqual(t.data, before.get(k), `backbone weight ${k} unchanged`);
  }
  // the original model is not modified
  assert.ok(m.graph.initializers.has('fc.weight'));
  assert.equal(m.graph.outputs[0]!.name, 'logits');
  assert.deepEqual((await runAll(g, rand([2, 3, 224, 224]))).logits!.dims, [2, 10]);

  // head applied to the same features: logits = head(extracted features)
  const sm = smallResnet();
  const sg = replaceHead(sm, linear(64, 4), { seed: 1, prefix: 'fc', outputName: 'out' });
  assert.deepEqual(paramNames(sg).slice(-2), ['fc.weight', 'fc.bias']);
  const x = rand([2, 3, 32, 32], 4);
  const feats = (await runAll(extractSubgraph(sm, findCut(sm).value, { outputName: 'f' }), x)).f!;
  const out = (await runAll(sg, x)).out!;
  const W = sg.graph.initializers.get('fc.weight')!.data as Float32Array;
  const B = sg.graph.initializers.get('fc.bias')!.data as Float32Array;
  for (let n = 0; n < 2; n++)
    for (let o = 0; o < 4; o++) {
      let s = B[o]!;
      for (let i = 0; i < 64; i++) s += (feats.data as Float32Array)[n * 64 + i]! * W[o * 64 + i]!;
      assert.ok(Math.abs((out.data as Float32Array)[n * 4 + o]! - s) < 1e-4);
    }
  // same seed, same head
  const again = replaceHead(sm, linear(64, 4), { seed: 1, prefix: 'fc', outputName: 'out' });
  assert.deepEqual(again.graph.initializers.get('fc.weight')!.data, W);
});

test('replaceHead and findCut fail clearly when there is no classifier or the head does not fit', () => {
  const convOnly = sequential(conv2d(3, 4, 3), relu(), globalAvgPool(), flatten()).build({ inputShape: ['N', 3, 8, 8] });
  assert.throws(() => findCut(convOnly), /no Gemm or MatMul.*\{ cut:/s);
  assert.throws(() => replaceHead(convOnly, linear(4, 2)), /name the cut yourself/i);
  // naming the cut works
  const flat = convOnly.graph.nodes.find((n) => n.op === 'Flatten')!;
  const ok = replaceHead(convOnly, linear(4, 2), { cut: flat.name });
  assert.deepEqual(ok.graph.outputs[0]!.shape?.[1], 2);
  const m = smallCNN().build();
  assert.throws(() => replaceHead(m, linear(64, 10)), /in_features is 64.*128 features/s);
  assert.throws(() => replaceHead(m, linear(128, 10), { prefix: 'backbone.0' }), /already exists.*prefix/s);
});

test('stages group parameters by module prefix', () => {
  const r = resnet18().build();
  const st = stages(r);
  assert.deepEqual(
    st.map((s) => s.name),
    ['conv1/bn1', 'layer1', 'layer2', 'layer3', 'layer4', 'fc'],
  );
  assert.equal(
    st.reduce((a, s) => a + s.count, 0),
    11_689_512,
  );
  assert.equal(st[0]!.count, 64 * 3 * 49 + 128);
  assert.ok(st[1]!.buffers.includes('layer1.0.bn1.running_mean'));
  const s = stages(smallCNN().build());
  assert.deepEqual(
    s.map((x) => x.name),
    ['backbone.0/backbone.1', 'backbone.4/backbone.5', 'backbone.9/backbone.10', 'head'],
  );
  assert.deepEqual(
    stages(mlp([8, 8], 2, { inFeatures: 4 }).build()).map((x) => x.name),
    ['0', '2', '4'],
  );
});

test('anonymous exporter weights get module paths from node scopes', () => {
  const g = new Graph();
  g.inputs.push({ name: 'x', dtype: 'float32', shape: ['N', 3, 8, 8] });
  g.addInitializer('onnx::Conv_193', Tensor.f32([4, 3, 3, 3]));
  g.addInitializer('onnx::Conv_194', Tensor.f32([4]));
  g.addInitializer('fc.weight', Tensor.f32([2, 4]));
  g.addNode('Conv', ['x', 'onnx::Conv_193', 'onnx::Conv_194'], ['c'], { kernel_shape: [3, 3] }, '/layer1/layer1.0/conv1/Conv');
  g.addNode('GlobalAveragePool', ['c'], ['p'], {}, '/avgpool/GlobalAveragePool');
  g.addNode('Flatten', ['p'], ['f'], {}, '/Flatten');
  g.addNode('Gemm', ['f', 'fc.weight'], ['y'], { transB: 1 }, '/fc/Gemm');
  g.outputs.push({ name: 'y', dtype: 'float32' });
  const m = new Model(g);
  const paths = paramPaths(m);
  assert.equal(paths.get('onnx::Conv_193'), 'layer1.0.conv1.weight');
  assert.equal(paths.get('onnx::Conv_194'), 'layer1.0.conv1.bias');
  assert.deepEqual(
    stages(m).map((s) => s.name),
    ['layer1', 'fc'],
  );
  assert.equal(findCut(m).value, 'f');
});

test('findCut handles Linear on sequences (MatMul + Add) and round-trips through ONNX bytes', async () => {
  const m = sequential(linear(8, 6), relu(), linear(6, 3)).build({ inputShape: ['N', 4, 8] });
  const cut = findCut(m);
  assert.equal(cut.node.op, 'MatMul');
  assert.deepEqual(cut.dims, ['N', 4, 6]);
  const g = replaceHead(m, linear(null, 5), { seed: 0 });
  assert.deepEqual(g.graph.outputs[0]!.shape, ['N', 4, 5]);
  const back = decodeModel(encodeModel(g));
  assert.deepEqual(paramNames(back), paramNames(g));
  assert.deepEqual((await runAll(back, rand([2, 4, 8]))).logits!.dims, [2, 4, 5]);
});

test('appendOps and renameValue', async () => {
  const m = mlp([8], 3, { inFeatures: 4 }).build();
  const p = appendOps(m, (e, x) => e.op('Softmax', [x], { axis: 1 }), { outputName: 'probs' });
  const probs = (await runAll(p, rand([2, 4]))).probs!;
  const d = probs.data as Float32Array;
  assert.ok(Math.abs(d[0]! + d[1]! + d[2]! - 1) < 1e-6);
  const same = appendOps(m, (e, x) => e.op('Softmax', [x], { axis: 1 }));
  assert.equal(same.graph.outputs[0]!.name, 'logits');
  await runAll(same, rand([2, 4]));
  const r = renameValue(m, 'logits', 'scores');
  assert.equal(r.graph.outputs[0]!.name, 'scores');
  assert.throws(() => renameValue(m, 'logits', 'input'), /already used/);
});

test('models exported by PyTorch with de-duplicated initializers load with one parameter per tensor', async () => {
  const { loadAnyModel } = await import('../../src/import/index.js');
  const { saveModel } = await import('../../src/onnx/io.js');
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const built = sequential(conv2d(2, 3, 3, { padding: 1 }), relu(), conv2d(3, 3, 3, { padding: 1 }), globalAvgPool(), flatten(), linear(3, 2)).build({
    inputShape: ['N', 2, 5, 5],
    seed: 1,
  });
  const g = built.graph;
  const [, w2] = [...g.initializers.keys()].filter((k) => g.initializers.get(k)!.dims.length === 4);
  // the exporter keeps one copy of a tensor equal to another and reads it through Identity under the copy's name
  const shared = 'onnx::shared_w';
  g.initializers.set(shared, g.initializers.get(w2!)!);
  g.initializers.delete(w2!);
  g.addNode('Identity', [shared], [w2!], {}, 'Identity_dedup');
  g.nodes.unshift(g.nodes.pop()!);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-untie-'));
  const file = path.join(dir, 'm.onnx');
  saveModel(built, file);
  const loaded = loadAnyModel(file);
  assert.ok(!loaded.graph.nodes.some((n) => n.op === 'Identity'), 'Identity copies are gone');
  assert.ok(loaded.graph.initializers.has(w2!), `the copy is an initializer named ${w2}`);
  assert.ok(!loaded.graph.initializers.has(shared), 'the now unused shared tensor is pruned');
  assert.ok(paramNames(loaded).includes(w2!));
  const x = rand([2, 2, 5, 5], 3);
  const a = await runAll(built, x);
  const b = await runAll(loaded, x);
  const out = built.graph.outputs[0]!.name;
  assert.ok(maxDiff(a[out]!, b[out]!) === 0, 'same outputs');
  fs.rmSync(dir, { recursive: true, force: true });
});
