import assert from 'node:assert/strict';
import { test } from 'node:test';
import { randn } from '../../src/autodiff/gradcheck.js';
import { Emitter } from '../../src/ir/emit.js';
import { type AttrValue, Graph } from '../../src/ir/graph.js';
import { DEFAULT_OPSET, Model } from '../../src/ir/model.js';
import { encodeModel } from '../../src/onnx/io.js';
import { registerStandardOps } from '../../src/ops/index.js';
import { nchwcBlock } from '../../src/runtime/nchwc.js';
import { nchwcDense } from '../../src/runtime/nchwc-dense.js';
import { NCHWC_DOMAIN } from '../../src/runtime/nchwc-depthwise.js';
import { createSession, lowered, runHost, sessionBytes } from '../../src/runtime/session.js';
import type { Tensor } from '../../src/tensor.js';

import { convStep } from './conv-step.js';

registerStandardOps();

test('dense Convs and their stride-1 dX on the NCHWc kernel equal the standard Convs (stem, 3×3, 1×1, stride 2, padded)', async () => {
  const block = (await nchwcBlock()) ?? 0;
  assert.ok(block > 1, 'this onnxruntime build has no NCHWc kernels to test');
  const [C, K] = [2 * block, 3 * block];
  const cases: [number[], number[], Record<string, AttrValue>, number, number[]?][] = [
    // [x, w, attrs, Convs rewritten (forward, stride-1 dX: a Conv; stride 2 is a ConvTranspose; dW is a MatMul), v]
    [[3, C, 9, 10], [K, C, 3, 3], { pads: [1, 1, 1, 1] }, 2],
    [[2, C, 8, 8], [K, C, 1, 1], {}, 2],
    [[2, C, 12, 11], [K, C, 3, 3], { strides: [2, 2], pads: [1, 0, 1, 1] }, 1],
    [[2, C, 9, 8], [K, C, 3, 2], { pads: [2, 0, 1, 1] }, 2],
    // the stem: 3 input channels stay NCHW (OIHWBo weight); its dX has 3 output channels, off the block: standard
    [[2, 3, 20, 18], [K, 3, 7, 7], { strides: [2, 2], pads: [3, 3, 3, 3] }, 1],
    // 3 output channels: the forward stays standard; its dX (3 input channels, an NCHW input) is rewritten
    [[2, C, 8, 9], [3, C, 3, 3], { pads: [1, 1, 1, 1] }, 1],
    // a block input read by a 3×3 and a 3×3 stride-2 Conv: both rewritten, one ReorderInput shared
    [[2, C, 10, 10], [C, C, 3, 3], { pads: [1, 1, 1, 1] }, 3, [K, C, 3, 3]],
  ];
  for (const [x, w, attrs, expected, v] of cases) {
    const model = convStep(x, w, attrs, v);
    const N = x[0]!;
    const feeds: Record<string, Tensor> = { x: randn(x, 1), w: randn(w, 2), b: randn([w[0]!], 3) };
    feeds.r = randn([N, ...(model.graph.inputs[3]!.shape!.slice(1) as number[])], 4);
    if (v) Object.assign(feeds, { v: randn(v, 5), q: randn([N, ...(model.graph.inputs[5]!.shape!.slice(1) as number[])], 6) });
    const plain = await runHost(await createSession(encodeModel(lowered(model)), { threads: 2 }), feeds);
    const copy = lowered(model).clone();
    assert.equal(nchwcDense(copy, block, { pointwise: true }), expected, `${JSON.stringify(attrs)}: dense Convs rewritten`);
    if (v) assert.equal(copy.graph.nodes.filter((n) => n.op === 'ReorderInput' && n.inputs[0] === 'x').length, 1, 'x reordered once for both Convs');
    const fast = await runHost(await createSession(encodeModel(copy), { threads: 2 }), feeds);
    for (const [i, name] of model.graph.outputs.map((o) => o.name).entries()) {
      const [a, b] = [plain[name]!, fast[name]!] as [Tensor, Tensor];
      assert.deepEqual(b.dims, a.dims);
      const scale = Math.max(...(a.data as Float32Array).map(Math.abs));
      const worst = Math.max(...(a.data as Float32Array).map((u, j) => Math.abs(u - (b.data as Float32Array)[j]!)));
      // float32 sums in another order: relative to the output's largest magnitude
      assert.ok(worst <= 1e-5 * scale, `${JSON.stringify(attrs)} output ${i}: NCHWc differs from the standard Conv by ${worst} (scale ${scale})`);
    }
  }
});

test('no dense rewrite for a constant weight, channels off the block, a grouped or a depthwise Conv', () => {
  const block = 16;
  const build = (C: number, K: number, w: 'input' | 'const', group = 1) => {
    const g = new Graph();
    g.inputs.push({ name: 'x', dtype: 'float32', shape: ['N', C, 8, 8] });
    const e = new Emitter(g, DEFAULT_OPSET);
    const ws = [K, C / group, 3, 3];
    if (w === 'input') g.inputs.push({ name: 'w', dtype: 'float32', shape: ws });
    const wName = w === 'input' ? 'w' : e.constTensor(randn(ws, 1));
    g.outputs = [{ name: e.op('Conv', ['x', wName], { group, pads: [1, 1, 1, 1] }), dtype: 'float32' }];
    return new Model(g, DEFAULT_OPSET);
  };
  assert.equal(nchwcDense(build(32, 32, 'const'), block), 0);
  assert.equal(nchwcDense(build(24, 32, 'input'), block), 0, 'input channels neither below nor a multiple of the block');
  assert.equal(nchwcDense(build(32, 24, 'input'), block), 0, 'output channels off the block');
  assert.equal(nchwcDense(build(32, 32, 'input', 2), block), 0, 'grouped');
  assert.equal(nchwcDense(build(32, 32, 'input', 32), block), 0, 'depthwise (runtime/nchwc-depthwise.ts)');
  assert.equal(nchwcDense(build(32, 32, 'input'), block), 1);
  assert.equal(nchwcDense(build(3, 32, 'input'), block), 1);
  const pointwise = (opts?: { pointwise: boolean }) => {
    const g = new Graph();
    g.inputs.push({ name: 'x', dtype: 'float32', shape: ['N', 32, 8, 8] }, { name: 'w', dtype: 'float32', shape: [32, 32, 1, 1] });
    g.outputs = [{ name: new Emitter(g, DEFAULT_OPSET).op('Conv', ['x', 'w']), dtype: 'float32' }];
    return nchwcDense(new Model(g, DEFAULT_OPSET), block, opts);
  };
  assert.equal(pointwise(), 0, '1×1 Convs stay standard by default');
  assert.equal(pointwise({ pointwise: true }), 1);
});

test('CPU sessions get the dense rewrite; GRAFT_ORT_NCHWC_DENSE=0 leaves dense Convs standard', async () => {
  assert.ok(((await nchwcBlock()) ?? 0) > 1, 'this onnxruntime build has no NCHWc kernels to test');
  const model = convStep([2, 32, 8, 8], [32, 32, 3, 3], { pads: [1, 1, 1, 1] });
  const has = (bytes: Uint8Array) => Buffer.from(bytes).includes('ReorderOutput');
  assert.ok(has(await sessionBytes(model)));
  assert.ok(!model.graph.nodes.some((n) => n.domain === NCHWC_DOMAIN), 'the caller’s model stays standard ONNX');
  const before = process.env.GRAFT_ORT_NCHWC_DENSE;
  process.env.GRAFT_ORT_NCHWC_DENSE = '0';
  try {
    assert.ok(!has(await sessionBytes(model)));
  } finally {
    if (before === undefined) delete process.env.GRAFT_ORT_NCHWC_DENSE;
    else process.env.GRAFT_ORT_NCHWC_DENSE = before;
  }
});
