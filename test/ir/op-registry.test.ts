/**
 * An op graft has no gradient rule for (Sin), or does not know at all (Hardmax), in a model loaded from an
 * ONNX file: the error names the op and the node and says how to get around it, instead of a later rule
 * failing with "shape unknown" (issue 12, item 13; issue 13, shape inference refusing an unregistered op).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ArraySource, flatten, Graph, globalAvgPool, linear, Model, Network, Rng, saveModel, sequential, sgd, Tensor } from '../../src/index.js';

/**
 * input [N,1,6,6] → Conv(f) → `op` → Conv(c2) → GlobalAveragePool → Flatten → Gemm(fc) → logits [N,3], saved as an
 * ONNX file and loaded back. c2's weight gradient needs the shape of its input, the output of `op`.
 */
function loadWith(op: string): Network {
  const rng = new Rng(3);
  const w = (dims: number[]) =>
    Tensor.f32(
      dims,
      Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => rng.normal() * 0.5),
    );
  const g = new Graph();
  g.inputs.push({ name: 'input', dtype: 'float32', shape: ['N', 1, 6, 6] });
  g.addInitializer('f.weight', w([2, 1, 3, 3]));
  g.addInitializer('c2.weight', w([3, 2, 3, 3]));
  g.addInitializer('fc.weight', w([3, 3]));
  g.addInitializer('fc.bias', w([3]));
  const pads = { kernel_shape: [3, 3], pads: [1, 1, 1, 1] };
  g.addNode('Conv', ['input', 'f.weight'], ['h'], pads, 'f');
  g.addNode(op, ['h'], ['s'], {}, 'odd');
  g.addNode('Conv', ['s', 'c2.weight'], ['c'], pads, 'c2');
  g.addNode('GlobalAveragePool', ['c'], ['p'], {}, 'pool');
  g.addNode('Flatten', ['p'], ['flat'], {}, 'flatten');
  g.addNode('Gemm', ['flat', 'fc.weight', 'fc.bias'], ['logits'], { transB: 1 }, 'fc');
  g.outputs.push({ name: 'logits', dtype: 'float32', shape: ['N', 3] });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-unknown-op-'));
  const file = path.join(dir, 'model.onnx');
  saveModel(new Model(g, 17), file);
  return Network.load(file);
}

/** Three classes of 6×6 images: class k is brighter in rows 2k and 2k+1. */
function images(n: number, seed: number): ArraySource {
  const rng = new Rng(seed);
  const x = new Float32Array(n * 36);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % 3;
    for (let p = 0; p < 36; p++) x[i * 36 + p] = rng.normal() * 0.3 + (Math.floor(p / 12) === y[i] ? 1 : 0);
  }
  return new ArraySource(x, y, [1, 6, 6], 3);
}

const fitCfg = () => ({ optimizer: sgd({ lr: 0.1, momentum: 0.9 }), epochs: 3, batchSize: 10, seed: 1 });

test('Sin (no gradient rule) before the trainable head: the head trains through the frozen Sin', async () => {
  const net = loadWith('Sin').freeze(['f.']);
  const r = await net.fit(images(60, 1), fitCfg());
  assert.ok(r.history.at(-1)!.train_loss! < r.history[0]!.train_loss!, 'loss decreases');
});

test('Sin inside the trainable part: the error names the op and the node and says to freeze up to it', async () => {
  const net = loadWith('Sin');
  await assert.rejects(net.fit(images(60, 1), fitCfg()), (e: Error) => {
    assert.match(e.message, /No gradient rule for op Sin \(node "odd"\)/);
    assert.match(e.message, /Freeze the layers up to and including this node/);
    assert.doesNotMatch(e.message, /shape .*unknown/);
    return true;
  });
});

test('an op graft does not know at all (Hardmax) is refused by shape inference, naming the op, the node and the fix', async () => {
  const net = loadWith('Hardmax').freeze(['f.']);
  await assert.rejects(net.fit(images(60, 1), fitCfg()), (e: Error) => {
    assert.match(e.message, /node "odd" uses op Hardmax, which graft does not know/);
    assert.match(e.message, /graft train --cut <value>/);
    assert.match(e.message, /file an issue/);
    return true;
  });
});

test('the advice works: cutting before the unknown op, the new head replaces it; fit and evaluate run', async () => {
  const net = loadWith('Hardmax');
  net.freeze().replaceHead(sequential(globalAvgPool(), flatten(), linear(2, 3)), { cut: 'h' });
  const r = await net.fit(images(60, 1), fitCfg());
  assert.ok(r.history.at(-1)!.train_loss! < r.history[0]!.train_loss!, 'loss decreases');
  assert.equal((await net.evaluate(images(30, 2))).n, 30);
});

test('lowering graft ops keeps the graph in topological order: a value only a graft op reads stays before its lowering', async () => {
  const { Emitter } = await import('../../src/ir/emit.js');
  const { lowerGraftOps } = await import('../../src/ir/op-registry.js');
  const { emitBatchNormTrain } = await import('../../src/ops/bn-train.js');
  const { registerStandardOps } = await import('../../src/ops/index.js');
  registerStandardOps();
  const g = new Graph();
  g.inputs.push({ name: 'x', dtype: 'float32', shape: ['N', 2, 3, 3] });
  g.initializers.set('w', Tensor.f32([2, 2, 1, 1], [1, 0.5, -0.5, 1]));
  g.initializers.set('s', Tensor.f32([2], [1, 2]));
  g.initializers.set('b', Tensor.f32([2], [0, 1]));
  const e = new Emitter(g, 17, '');
  // the Conv's output is read only by the graft-domain BatchNormTrain, whose lowering reads it again
  const c = e.op('Conv', ['x', 'w']);
  const [y] = emitBatchNormTrain(e, c, 's', 'b', 1e-5, 'y');
  const leaf = e.op('Relu', [y!]);
  g.outputs.push({ name: leaf, dtype: 'float32', shape: ['N', 2, 3, 3] });
  lowerGraftOps(new Emitter(g, 17, 'lower/'));
  const seen = new Set(['x', 'w', 's', 'b', '']);
  for (const n of g.nodes) {
    for (const i of n.inputs) assert.ok(seen.has(i) || g.initializers.has(i), `${n.op} (${n.name}) reads ${i} before it is computed`);
    for (const o of n.outputs) seen.add(o);
  }
  assert.ok(!g.nodes.some((n) => n.domain === 'graft'), 'lowered');
  assert.equal(g.nodes.at(-1)!.outputs[0], leaf, 'the leaf stays last');
});
