import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backward } from '../../src/autodiff/backward.js';
import { randn } from '../../src/autodiff/gradcheck.js';
import { Emitter } from '../../src/ir/emit.js';
import { type AttrValue, Graph } from '../../src/ir/graph.js';
import { DEFAULT_OPSET, Model } from '../../src/ir/model.js';
import { opDef } from '../../src/ir/op-registry.js';
import { registerStandardOps } from '../../src/ops/index.js';
import { createSession, runHost } from '../../src/runtime/session.js';
import type { Tensor } from '../../src/tensor.js';
import { expectGrad } from '../helpers.js';

registerStandardOps();

type Attrs = Record<string, AttrValue>;

/** Checks dX, dW and (when `bias`) dB of one Conv configuration. */
async function checkConv(what: string, x: number[], w: number[], attrs: Attrs, bias = true) {
  const inputs = { x: randn(x, 1), w: randn(w, 2), ...(bias ? { b: randn([w[0]!], 3) } : {}) };
  await expectGrad('Conv', { inputs, wrt: Object.keys(inputs), samples: 32, build: (e) => e.op('Conv', Object.keys(inputs), attrs) }, what);
}

test('Conv 2-D: plain, strided (even and odd sizes), padded, dilated, no bias', async () => {
  await checkConv('3x3 pad 1', [2, 3, 5, 6], [4, 3, 3, 3], { pads: [1, 1, 1, 1] });
  await checkConv('stride 2 even', [2, 3, 6, 8], [4, 3, 3, 3], { strides: [2, 2], pads: [1, 1, 1, 1] });
  await checkConv('stride 2 odd (output_padding)', [2, 3, 7, 5], [4, 3, 3, 3], { strides: [2, 2], pads: [1, 1, 1, 1] });
  await checkConv('stride 3 no pad (x crop)', [2, 2, 8, 9], [3, 2, 2, 2], { strides: [3, 3] });
  await checkConv('asymmetric pads', [2, 3, 6, 7], [2, 3, 3, 2], { pads: [0, 2, 1, 0], strides: [1, 2] });
  await checkConv('dilated', [2, 3, 9, 8], [2, 3, 3, 2], { dilations: [2, 3], strides: [2, 3], pads: [0, 1, 2, 0] });
  await checkConv('no bias', [2, 3, 6, 6], [4, 3, 3, 3], { strides: [2, 1], pads: [1, 1, 1, 1] }, false);
  await checkConv('kernel_shape attribute', [1, 2, 5, 5], [3, 2, 3, 3], { kernel_shape: [3, 3] });
});

test('Conv 2-D: grouped, depthwise, depthwise with multiplier', async () => {
  await checkConv('group 2', [2, 4, 6, 7], [6, 2, 3, 3], { group: 2, pads: [1, 0, 1, 2], strides: [2, 1] });
  await checkConv('group 3 strided', [2, 6, 7, 7], [3, 2, 3, 3], { group: 3, pads: [1, 1, 1, 1], strides: [2, 2] });
  await checkConv('depthwise', [2, 4, 6, 7], [4, 1, 3, 3], { group: 4, pads: [1, 1, 1, 1] });
  await checkConv('depthwise stride 2', [3, 4, 7, 6], [4, 1, 3, 3], { group: 4, pads: [1, 1, 1, 1], strides: [2, 2] });
  await checkConv('depthwise ×2 multiplier', [2, 3, 6, 5], [6, 1, 3, 3], { group: 3, pads: [1, 1, 1, 1], strides: [2, 1] });
  await checkConv('stride 1 dilated, asymmetric pads (dX as a flipped-kernel Conv)', [2, 3, 9, 8], [2, 3, 3, 2], { dilations: [2, 3], pads: [1, 2, 3, 0] });
  await checkConv('depthwise ×2 multiplier stride 1 (grouped flipped-kernel Conv)', [2, 3, 6, 5], [6, 1, 3, 3], { group: 3, pads: [1, 1, 1, 1] });
  await checkConv('stride 1, pad larger than the kernel span (falls back to ConvTranspose)', [2, 2, 5, 5], [3, 2, 2, 2], { pads: [2, 1, 2, 1] });
  await checkConv('depthwise stride 3 (unused tail)', [2, 3, 8, 7], [3, 1, 3, 3], { group: 3, strides: [3, 3] });
  await checkConv('depthwise dilated, asymmetric pads', [2, 3, 9, 8], [3, 1, 3, 2], { group: 3, dilations: [2, 2], strides: [2, 1], pads: [2, 0, 1, 1] });
});

test('Conv 2-D: 1×1 kernels (GEMM path), plain, strided and grouped', async () => {
  await checkConv('1x1', [2, 3, 4, 5], [4, 3, 1, 1], {});
  await checkConv('1x1 stride 2 even', [2, 3, 6, 8], [4, 3, 1, 1], { strides: [2, 2] });
  await checkConv('1x1 stride 2 odd', [2, 3, 7, 5], [4, 3, 1, 1], { strides: [2, 2] });
  await checkConv('1x1 group 2', [2, 4, 5, 3], [6, 2, 1, 1], { group: 2, strides: [1, 2] });
  await checkConv('1x1 padded (conv path)', [2, 3, 4, 4], [2, 3, 1, 1], { pads: [1, 0, 0, 1] });
});

test('Conv dW branches: one GEMM when channels outnumber pixels, per-image MatMul otherwise', async () => {
  await checkConv('GEMM branch 3x3', [2, 8, 3, 3], [16, 8, 3, 3], { pads: [1, 1, 1, 1] });
  await checkConv('GEMM branch 3x3 group 2', [2, 8, 3, 3], [32, 4, 3, 3], { group: 2, pads: [1, 1, 1, 1] });
  // the batch-as-depth unfold: strided, dilated, asymmetric pads, a non-square kernel
  await checkConv('GEMM branch 3x3 stride 2', [3, 8, 5, 4], [16, 8, 3, 3], { strides: [2, 2], pads: [1, 1, 1, 1] });
  await checkConv('GEMM branch dilated, asymmetric pads', [2, 6, 5, 6], [24, 6, 2, 3], { dilations: [2, 1], strides: [1, 2], pads: [1, 0, 0, 2] });
  await checkConv('GEMM branch 1x1 strided', [2, 16, 3, 4], [16, 16, 1, 1], { strides: [2, 2] });
  await checkConv('GEMM branch 1x1 group 4', [2, 16, 2, 2], [32, 4, 1, 1], { group: 4 });
  await checkConv('1x1 depthwise', [2, 3, 4, 3], [3, 1, 1, 1], { group: 3 });
  await checkConv('1x1 depthwise ×2 multiplier', [2, 3, 4, 3], [6, 1, 1, 1], { group: 3 });
});

test('Conv 2-D: auto_pad SAME_UPPER, SAME_LOWER, VALID', async () => {
  await checkConv('SAME_UPPER s1', [2, 3, 5, 6], [4, 3, 3, 2], { auto_pad: 'SAME_UPPER' });
  await checkConv('SAME_UPPER s2 odd', [2, 3, 7, 6], [4, 3, 3, 3], { auto_pad: 'SAME_UPPER', strides: [2, 2] });
  await checkConv('SAME_LOWER s2', [2, 3, 6, 7], [4, 3, 2, 3], { auto_pad: 'SAME_LOWER', strides: [2, 2] });
  await checkConv('VALID s2', [2, 3, 7, 8], [4, 3, 3, 3], { auto_pad: 'VALID', strides: [2, 2] });
});

test('Conv 1-D and 3-D', async () => {
  await checkConv('1-D strided padded', [2, 3, 11], [4, 3, 3], { strides: [2], pads: [1, 2] });
  await checkConv('1-D grouped dilated', [2, 4, 12], [4, 2, 3], { group: 2, dilations: [2], pads: [2, 2] });
  await checkConv('3-D', [1, 2, 4, 5, 4], [3, 2, 2, 3, 2], { strides: [2, 1, 2], pads: [0, 1, 1, 1, 1, 0] });
});

/** Checks dX, dW, dB of one ConvTranspose configuration. */
async function checkConvT(what: string, x: number[], w: number[], attrs: Attrs) {
  const inputs = { x: randn(x, 4), w: randn(w, 5), b: randn([w[1]! * Number(attrs.group ?? 1)], 6) };
  await expectGrad('ConvTranspose', { inputs, wrt: ['x', 'w', 'b'], samples: 32, build: (e) => e.op('ConvTranspose', ['x', 'w', 'b'], attrs) }, what);
}

test('ConvTranspose: strided, padded, output_padding, grouped, output_shape, auto_pad', async () => {
  await checkConvT('stride 2', [2, 3, 4, 5], [3, 2, 3, 3], { strides: [2, 2] });
  await checkConvT('pads + output_padding', [2, 3, 4, 4], [3, 2, 3, 3], { strides: [2, 2], pads: [1, 1, 1, 1], output_padding: [1, 0] });
  await checkConvT('group 2 dilated', [2, 4, 4, 3], [4, 3, 2, 3], { group: 2, dilations: [2, 1], strides: [1, 2], pads: [1, 0, 0, 1] });
  await checkConvT('depthwise', [2, 3, 4, 5], [3, 1, 3, 3], { group: 3, strides: [2, 2], pads: [1, 1, 1, 1], output_padding: [1, 0] });
  await checkConvT('output_shape', [1, 2, 5, 4], [2, 2, 4, 3], { strides: [2, 2], output_shape: [11, 8] });
  await checkConvT('SAME_UPPER', [1, 2, 5, 4], [2, 3, 4, 3], { strides: [2, 2], auto_pad: 'SAME_UPPER' });
  await checkConvT('SAME_LOWER', [1, 2, 5, 4], [2, 3, 3, 4], { strides: [1, 2], auto_pad: 'SAME_LOWER' });
  await checkConvT('1-D', [2, 3, 6], [3, 2, 4], { strides: [3], pads: [1, 0] });
});

test('the Conv rule builds only what needs[] asks for', () => {
  const emitted = (needs: boolean[]) => {
    const g = new Graph();
    g.inputs.push({ name: 'x', dtype: 'float32', shape: [2, 3, 8, 8] }, { name: 'w', dtype: 'float32', shape: [4, 3, 3, 3] });
    g.inputs.push({ name: 'b', dtype: 'float32', shape: [4] }, { name: 'dy', dtype: 'float32', shape: [2, 4, 8, 8] });
    const e = new Emitter(g, DEFAULT_OPSET);
    e.op('Conv', ['x', 'w', 'b'], { pads: [1, 1, 1, 1] });
    const grads = opDef('Conv')!.grad!(e, g.nodes[0]!, ['dy'], needs);
    assert.deepEqual(
      grads.map((v) => v !== null),
      needs,
    );
    grads.forEach((v, i) => {
      if (v) assert.deepEqual(g.info(v)?.shape, g.info(['x', 'w', 'b'][i]!)?.shape);
    });
    return g.nodes.slice(1).map((n) => n.op);
  };
  // stride 1: dX is a Conv with the flipped, channel-swapped kernel
  assert.deepEqual(emitted([true, false, false]), ['Slice', 'Transpose', 'Conv']);
  assert.deepEqual(emitted([false, false, true]), ['ReduceSum']);
  assert.ok(!emitted([false, true, false]).includes('ConvTranspose'));
  assert.ok(!emitted([false, true, false]).includes('Slice'), 'no flipped kernel when dX is not needed');
});

/** Runs one node in onnxruntime and compares each output's shape with graft's inferred shape. */
async function compareShapes(op: string, x: number[], w: number[], attrs: Attrs) {
  const g = new Graph();
  g.inputs.push({ name: 'x', dtype: 'float32', shape: x });
  const feeds = { x: randn(x, 1), w: randn(w, 2) };
  g.inputs.push({ name: 'w', dtype: 'float32', shape: w });
  const e = new Emitter(g, 19);
  const outs = e.opN(op, ['x', 'w'], attrs);
  g.outputs = outs.map((o) => ({ name: o, dtype: g.info(o)!.dtype }));
  const r = await runHost(await createSession(new Model(g, 19), { threads: 1 }), feeds);
  for (const o of outs) assert.deepEqual(g.info(o)?.shape, [...r[o]!.dims], `${op} ${JSON.stringify(attrs)}: inferred vs onnxruntime`);
}

test('inferred Conv/ConvTranspose shapes match onnxruntime', async () => {
  const conv: [number[], number[], Attrs][] = [
    [[1, 3, 7, 8], [4, 3, 3, 3], { strides: [2, 2], pads: [1, 1, 1, 1] }],
    [[1, 3, 7, 8], [4, 3, 3, 2], { auto_pad: 'SAME_UPPER', strides: [2, 3] }],
    [[1, 3, 7, 8], [4, 3, 2, 3], { auto_pad: 'SAME_LOWER', strides: [3, 2] }],
    [[1, 3, 9, 8], [4, 3, 3, 3], { auto_pad: 'VALID', strides: [2, 2], dilations: [2, 1] }],
    [[1, 4, 9, 8], [6, 2, 3, 3], { group: 2, pads: [0, 2, 1, 0], dilations: [1, 2] }],
    [[1, 3, 10], [2, 3, 4], { strides: [3], pads: [2, 0] }],
  ];
  for (const [x, w, a] of conv) await compareShapes('Conv', x, w, a);
  const convT: [number[], number[], Attrs][] = [
    [[1, 3, 5, 4], [3, 2, 3, 3], { strides: [2, 2], pads: [1, 0, 1, 1], output_padding: [1, 0] }],
    [[1, 3, 5, 4], [3, 2, 4, 3], { strides: [2, 3], auto_pad: 'SAME_UPPER' }],
    [[1, 3, 5, 4], [3, 2, 2, 3], { strides: [3, 2], auto_pad: 'SAME_LOWER' }],
    [[1, 3, 5, 4], [3, 2, 4, 3], { strides: [2, 2], output_shape: [11, 9] }],
    [[1, 4, 5, 4], [4, 1, 3, 3], { group: 2, dilations: [2, 1], auto_pad: 'VALID' }],
  ];
  for (const [x, w, a] of convT) await compareShapes('ConvTranspose', x, w, a);
});

/** Gradients of Σ R·op(x, w) with the batch dimension declared as `batch` (a number or a symbol). */
async function gradsWithBatch(batch: number | string, op: string, inputs: Record<string, Tensor>, attrs: Attrs): Promise<Tensor[]> {
  const g = new Graph();
  for (const [k, t] of Object.entries(inputs)) g.inputs.push({ name: k, dtype: 'float32', shape: k === 'x' ? [batch, ...t.dims.slice(1)] : [...t.dims] });
  const e = new Emitter(g, DEFAULT_OPSET);
  const y = e.op(op, Object.keys(inputs), attrs);
  const r = randn([...inputs.x!.dims.slice(0, 1), ...(e.shape(y)!.slice(1) as number[])], 9);
  const loss = e.reduceSum(e.mul(y, e.constTensor(r)), 'all', false);
  const { grads } = backward(g, DEFAULT_OPSET, loss, Object.keys(inputs));
  g.outputs = Object.keys(inputs).map((k) => ({ name: grads.get(k)!, dtype: 'float32' }));
  const out = await runHost(await createSession(new Model(g, DEFAULT_OPSET), { threads: 1 }), inputs);
  return g.outputs.map((o) => out[o.name]!);
}

test('a symbolic batch dimension works for conv and pooling (same gradients as with a static batch)', async () => {
  const cases: [string, Record<string, Tensor>, Attrs][] = [
    ['Conv', { x: randn([3, 4, 6, 5], 1), w: randn([6, 2, 3, 3], 2) }, { group: 2, strides: [2, 1], pads: [1, 1, 1, 1] }],
    ['Conv', { x: randn([3, 4, 5, 5], 1), w: randn([4, 1, 3, 3], 2) }, { group: 4, pads: [1, 1, 1, 1] }],
    // depthwise with a run-time batch: channel-major grouped Conv instead of folding N into the groups
    ['Conv', { x: randn([3, 3, 8, 7], 1), w: randn([3, 1, 3, 3], 2) }, { group: 3, strides: [3, 3] }],
    ['Conv', { x: randn([3, 3, 6, 5], 1), w: randn([6, 1, 3, 3], 2) }, { group: 3, pads: [1, 1, 1, 1], strides: [2, 1] }],
    ['Conv', { x: randn([3, 3, 9, 8], 1), w: randn([3, 1, 3, 2], 2) }, { group: 3, dilations: [2, 2], strides: [2, 1], pads: [2, 0, 1, 1] }],
    // depthwise stacked without zero rows between the images (image height = stride · output height): the taps
    // that cross a seam are subtracted; batches of 1 and 2 (the first and last image have no neighbour)
    ['Conv', { x: randn([1, 4, 6, 6], 1), w: randn([4, 1, 3, 3], 2) }, { group: 4, pads: [1, 1, 1, 1] }],
    ['Conv', { x: randn([2, 4, 8, 6], 1), w: randn([4, 1, 3, 3], 2) }, { group: 4, strides: [2, 2], pads: [0, 0, 1, 1] }],
    ['Conv', { x: randn([3, 4, 8, 8], 1), w: randn([4, 1, 3, 3], 2) }, { group: 4, strides: [2, 2], pads: [1, 1, 1, 1] }],
    ['Conv', { x: randn([2, 4, 7, 6], 1), w: randn([4, 1, 5, 5], 2) }, { group: 4, pads: [2, 2, 2, 2] }],
    ['Conv', { x: randn([3, 4, 7, 7], 1), w: randn([4, 1, 3, 3], 2) }, { group: 4, dilations: [2, 2], pads: [2, 2, 2, 2] }],
    ['Conv', { x: randn([2, 4, 6, 7], 1), w: randn([4, 1, 3, 2], 2) }, { group: 4, pads: [1, 0, 1, 1] }],
    ['Conv', { x: randn([3, 8, 2, 2], 1), w: randn([16, 8, 3, 3], 2) }, { pads: [1, 1, 1, 1] }],
    ['Conv', { x: randn([3, 4, 5, 5], 1), w: randn([6, 4, 1, 1], 2) }, { strides: [2, 2] }],
    ['ConvTranspose', { x: randn([3, 4, 3, 3], 1), w: randn([4, 2, 3, 3], 2) }, { strides: [2, 2], pads: [1, 1, 1, 1] }],
    ['MaxPool', { x: randn([3, 2, 6, 6], 1) }, { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }],
    ['AveragePool', { x: randn([3, 2, 6, 6], 1) }, { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }],
    ['AveragePool', { x: randn([3, 2, 6, 6], 1) }, { kernel_shape: [2, 2], strides: [2, 2] }],
    ['GlobalAveragePool', { x: randn([3, 2, 4, 3], 1) }, {}],
    ['GlobalMaxPool', { x: randn([3, 2, 4, 3], 1) }, {}],
  ];
  for (const [op, inputs, attrs] of cases) {
    const a = await gradsWithBatch('N', op, inputs, attrs);
    const b = await gradsWithBatch(inputs.x!.dims[0]!, op, inputs, attrs);
    for (const [i, t] of a.entries()) {
      assert.deepEqual(t.dims, b[i]!.dims);
      const worst = Math.max(...(t.data as Float32Array).map((v, j) => Math.abs(v - (b[i]!.data as Float32Array)[j]!)));
      assert.ok(worst < 1e-4, `${op} ${JSON.stringify(attrs)}: symbolic vs static batch differ by ${worst}`);
    }
  }
});
