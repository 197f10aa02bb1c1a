import assert from 'node:assert/strict';
import { test } from 'node:test';
import { randn } from '../../src/autodiff/gradcheck.js';
import { Emitter } from '../../src/ir/emit.js';
import { type AttrValue, Graph } from '../../src/ir/graph.js';
import { DEFAULT_OPSET, Model } from '../../src/ir/model.js';
import { encodeModel } from '../../src/onnx/io.js';
import { registerStandardOps } from '../../src/ops/index.js';
import { nchwcBlock } from '../../src/runtime/nchwc.js';
import { NCHWC_DOMAIN, nchwcDepthwise } from '../../src/runtime/nchwc-depthwise.js';
import { createSession, lowered, runHost } from '../../src/runtime/session.js';
import type { Tensor } from '../../src/tensor.js';

import { convStep } from './conv-step.js';

registerStandardOps();

test('onnxruntime reports its NCHWc block on x64 (16 with AVX-512, 8 with AVX2)', async () => {
  const block = await nchwcBlock();
  if (process.arch === 'x64') assert.ok(block === 8 || block === 16, `block ${block}`);
  else assert.ok(block === null || block % 4 === 0);
});

test('depthwise Conv, its dX and its dW on the NCHWc kernel equal the standard Convs (forward, stride 1 and 2, dilated)', async () => {
  const block = (await nchwcBlock()) ?? 0;
  assert.ok(block > 1, 'this onnxruntime build has no NCHWc kernels to test');
  const C = 2 * block;
  const cases: [number[], number[], Record<string, AttrValue>, number][] = [
    // [x, w, attrs, depthwise Convs rewritten: forward, stride-1 dX (a Conv; stride 2 is a ConvTranspose), dW, and
    // where the image height is stride · output height, one small Conv per seam-crossing tap row of the dW (ops/conv.ts)]
    [[3, C, 9, 10], [C, 1, 3, 3], { group: C, pads: [1, 1, 1, 1] }, 3 + 2],
    [[1, C, 9, 10], [C, 1, 3, 3], { group: C, pads: [1, 1, 1, 1] }, 3 + 2],
    [[3, C, 12, 11], [C, 1, 3, 3], { group: C, strides: [2, 2], pads: [0, 0, 1, 1] }, 2 + 1],
    [[2, C, 9, 8], [C, 1, 3, 2], { group: C, dilations: [2, 2], strides: [2, 1], pads: [2, 0, 1, 1] }, 2],
    [[2, C, 7, 7], [C, 1, 5, 5], { group: C, pads: [2, 2, 2, 2] }, 3 + 4],
  ];
  for (const [x, w, attrs, expected] of cases) {
    const model = convStep(x, w, attrs);
    const [N] = x as [number];
    const yShape = [N, ...(model.graph.inputs[3]!.shape!.slice(1) as number[])];
    const feeds = { x: randn(x, 1), w: randn(w, 2), b: randn([C], 3), r: randn(yShape, 4) };
    // the standard graph, as bytes (createSession rewrites only Models)
    const plain = await runHost(await createSession(encodeModel(lowered(model)), { threads: 2 }), feeds);
    const copy = lowered(model).clone();
    assert.equal(nchwcDepthwise(copy, block), expected, `${JSON.stringify(attrs)}: depthwise Convs rewritten`);
    assert.ok(copy.graph.nodes.some((n) => n.domain === NCHWC_DOMAIN));
    const fast = await runHost(await createSession(model, { threads: 2 }), feeds);
    assert.ok(!model.graph.nodes.some((n) => n.domain === NCHWC_DOMAIN), 'the caller’s model stays standard ONNX');
    for (const [i, name] of model.graph.outputs.map((o) => o.name).entries()) {
      const [a, b] = [plain[name]!, fast[name]!] as [Tensor, Tensor];
      assert.deepEqual(b.dims, a.dims);
      const scale = Math.max(...(a.data as Float32Array).map(Math.abs));
      const worst = Math.max(...(a.data as Float32Array).map((v, j) => Math.abs(v - (b.data as Float32Array)[j]!)));
      assert.ok(worst <= 1e-5 * scale, `${JSON.stringify(attrs)} output ${i}: NCHWc differs from the standard Conv by ${worst} (scale ${scale})`);
    }
  }
});

test('no rewrite for a constant weight, a channel count off the block, or a dense Conv', async () => {
  const block = 16;
  const build = (C: number, w: 'input' | 'const', group: number) => {
    const g = new Graph();
    g.inputs.push({ name: 'x', dtype: 'float32', shape: ['N', C, 8, 8] });
    const e = new Emitter(g, DEFAULT_OPSET);
    const ws = [group === 1 ? C : C, group === 1 ? C : 1, 3, 3];
    if (w === 'input') g.inputs.push({ name: 'w', dtype: 'float32', shape: ws });
    const wName = w === 'input' ? 'w' : e.constTensor(randn(ws, 1));
    g.outputs = [{ name: e.op('Conv', ['x', wName], { group, pads: [1, 1, 1, 1] }), dtype: 'float32' }];
    return new Model(g, DEFAULT_OPSET);
  };
  assert.equal(nchwcDepthwise(build(32, 'const', 32), block), 0);
  assert.equal(nchwcDepthwise(build(24, 'input', 24), block), 0);
  assert.equal(nchwcDepthwise(build(32, 'input', 1), block), 0);
  assert.equal(nchwcDepthwise(build(32, 'input', 32), block), 1);
});
