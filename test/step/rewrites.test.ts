import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backward } from '../../src/autodiff/backward.js';
import { Emitter } from '../../src/ir/emit.js';
import { Graph } from '../../src/ir/graph.js';
import { Model } from '../../src/ir/model.js';
import { registerStandardOps } from '../../src/ops/index.js';
import { createSession, runHost } from '../../src/runtime/session.js';
import { poolBeforeRelu } from '../../src/step/rewrites.js';
import { Rng, Tensor } from '../../src/tensor.js';

registerStandardOps();

const POOL = { kernel_shape: [2, 2], strides: [2, 2] };
const [N, C, H, W] = [2, 3, 6, 8];

/** x → Relu → MaxPool → Σ(y·w): returns the graph, its loss and the pooled output's name. */
function build(extraReluConsumer = false): { g: Graph; loss: string; y: string } {
  const g = new Graph();
  g.inputs.push({ name: 'x', dtype: 'float32', shape: [N, C, H, W] });
  const e = new Emitter(g, 17);
  const r = e.op('Relu', ['x']);
  const y = e.op('MaxPool', [r], POOL);
  const w = Tensor.f32(
    [N, C, H / 2, W / 2],
    Array.from({ length: (N * C * H * W) / 4 }, (_, i) => 1 + (i % 7)),
  );
  let loss = e.reduceSum(e.mul(y, e.constTensor(w)), 'all', false);
  if (extraReluConsumer) loss = e.add(loss, e.reduceSum(r, 'all', false));
  return { g, loss, y };
}

/** PyTorch's semantics for MaxPool(Relu(x)): dY goes to the first argmax of each window of relu(x), then ReLU's mask x > 0. */
function reference(x: Float32Array): { y: number[]; dx: number[] } {
  const y: number[] = [];
  const dx = new Array<number>(x.length).fill(0);
  let k = 0;
  for (let nc = 0; nc < N * C; nc++)
    for (let i = 0; i < H / 2; i++)
      for (let j = 0; j < W / 2; j++, k++) {
        let best = -1;
        let at = -1;
        for (let a = 0; a < 2; a++)
          for (let b = 0; b < 2; b++) {
            const p = nc * H * W + (2 * i + a) * W + 2 * j + b;
            const v = Math.max(0, x[p]!);
            if (v > best) [best, at] = [v, p];
          }
        y.push(best);
        if (x[at]! > 0) dx[at]! += 1 + (k % 7);
      }
  return { y, dx };
}

async function run(g: Graph, loss: string, y: string, x: Tensor): Promise<{ y: number[]; dx: number[] }> {
  const { grads } = backward(g, 17, loss, ['x']);
  g.outputs = [
    { name: y, dtype: 'float32' },
    { name: grads.get('x')!, dtype: 'float32' },
  ];
  const r = await runHost(await createSession(new Model(g, 17), { threads: 1 }), { x });
  return { y: [...(r[y]!.data as Float32Array)], dx: [...(r[grads.get('x')!]!.data as Float32Array)] };
}

test('Relu → MaxPool becomes MaxPool → Relu with identical values and PyTorch-order gradients, ties and zeros included', async () => {
  // small integers: many ties inside windows, at zero, below zero and above it
  const rng = new Rng(7);
  const x = Tensor.f32(
    [N, C, H, W],
    Array.from({ length: N * C * H * W }, () => Math.floor(rng.next() * 5) - 2),
  );
  const want = reference(x.data as Float32Array);

  const { g, loss, y } = build();
  assert.equal(poolBeforeRelu(g), 1);
  const ops = g.nodes.map((n) => n.op);
  assert.ok(ops.indexOf('MaxPool') < ops.indexOf('Relu'), `expected MaxPool before Relu, got ${ops}`);
  assert.equal(g.nodes.find((n) => n.op === 'Relu')!.outputs[0], y, 'the pooled value keeps its name');
  const got = await run(g, loss, y, x);
  assert.deepEqual(got.y, want.y);
  assert.deepEqual(got.dx, want.dx);

  // the original order gives the same numbers (the rewrite changes cost, not results)
  const orig = build();
  assert.deepEqual(await run(orig.g, orig.loss, orig.y, x), got);
});

test('Relu → MaxPool is left alone when the ReLU output is read elsewhere or is a graph output', () => {
  const { g } = build(true);
  assert.equal(poolBeforeRelu(g), 0);
  const h = build();
  h.g.outputs = [{ name: h.g.nodes.find((n) => n.op === 'Relu')!.outputs[0]!, dtype: 'float32' }];
  assert.equal(poolBeforeRelu(h.g), 0);
});

/** Output, dx and dW (the Conv weight, the graph's only float initializer of rank 4). */
async function runWithWeightGrad(g: Graph, loss: string, y: string, x: Tensor): Promise<Record<'y' | 'dx' | 'dw', number[]>> {
  const w = [...g.initializers.entries()].find(([, t]) => t.dtype === 'float32' && t.dims.length === 4)![0];
  const { grads } = backward(g, 17, loss, ['x', w]);
  g.outputs = [y, grads.get('x')!, grads.get(w)!].map((name) => ({ name, dtype: 'float32' as const }));
  const r = await runHost(await createSession(new Model(g, 17), { threads: 1 }), { x });
  const [yv, dx, dw] = g.outputs.map((o) => [...(r[o.name]!.data as Float32Array)]);
  return { y: yv!, dx: dx!, dw: dw! };
}

/** x → Pad(pads) → Conv(w, convAttrs) [→ second Conv when `twoConvs`], loss Σ(y·r). */
function padConv(pads: number[], convAttrs: Record<string, number[] | number>, opts: { value?: number; channelPad?: boolean; reluUser?: boolean } = {}) {
  const g = new Graph();
  g.inputs.push({ name: 'x', dtype: 'float32', shape: [2, 4, 7, 6] });
  const e = new Emitter(g, 17);
  const rng = new Rng(3);
  const group = Number(convAttrs.group ?? 1);
  const wDims = group > 1 ? [4, 1, 3, 3] : [5, 4, 3, 3];
  const w = e.constTensor(
    Tensor.f32(
      wDims,
      Array.from({ length: wDims.reduce((a, b) => a * b, 1) }, () => rng.normal()),
    ),
  );
  const padInputs = ['x', e.constTensor(new Tensor('int64', [8], BigInt64Array.from(pads.map(BigInt))))];
  if (opts.value !== undefined) padInputs.push(e.constTensor(Tensor.f32([], [opts.value])));
  const p = e.op('Pad', padInputs, { mode: 'constant' });
  const y = e.op('Conv', [p, w], convAttrs);
  let loss = e.reduceSum(e.mul(y, y), 'all', false);
  if (opts.reluUser) loss = e.add(loss, e.reduceSum(e.op('Relu', [p]), 'all', false));
  return { g, loss, y };
}

test('a zero Pad before a Conv folds into the Conv pads: same output and gradient, the Pad gone', async () => {
  const rng = new Rng(9);
  const x = Tensor.f32(
    [2, 4, 7, 6],
    Array.from({ length: 2 * 4 * 7 * 6 }, () => rng.normal()),
  );
  const { foldPadIntoConv } = await import('../../src/step/rewrites.js');
  const cases: [number[], Record<string, number[] | number>][] = [
    [[0, 0, 0, 0, 0, 0, 1, 1], { strides: [2, 2], group: 4 }], // MobileNet's depthwise stride-2 conv after ZeroPadding2D
    [[0, 0, 0, 1, 0, 0, 1, 0], { strides: [2, 2] }], // Keras ZeroPadding2D(((0, 1), (1, 0))) before a stride-2 conv
    [[0, 0, 1, 2, 0, 0, 2, 1], { pads: [1, 0, 0, 1], dilations: [1, 2] }], // added to the Conv's own pads
  ];
  for (const [pads, attrs] of cases) {
    const want = padConv(pads, attrs);
    const got = padConv(pads, attrs);
    assert.equal(foldPadIntoConv(got.g), 1);
    assert.ok(!got.g.nodes.some((n) => n.op === 'Pad'), 'the Pad is gone');
    const a = await runWithWeightGrad(want.g, want.loss, want.y, x);
    const b = await runWithWeightGrad(got.g, got.loss, got.y, x);
    for (const k of ['y', 'dx', 'dw'] as const) {
      assert.equal(a[k].length, b[k].length);
      for (const [i, v] of a[k].entries()) assert.ok(Math.abs(v - b[k][i]!) <= 1e-4 * (1 + Math.abs(v)), `pads ${pads}: ${k}[${i}] ${v} vs ${b[k][i]}`);
    }
  }
});

test('Pads that are not plain spatial zero padding of Convs only stay', async () => {
  const { foldPadIntoConv } = await import('../../src/step/rewrites.js');
  assert.equal(foldPadIntoConv(padConv([0, 0, 1, 1, 0, 0, 1, 1], {}, { value: 0.5 }).g), 0, 'non-zero fill');
  assert.equal(foldPadIntoConv(padConv([1, 0, 1, 1, 0, 0, 1, 1], {}).g), 0, 'batch padding');
  assert.equal(foldPadIntoConv(padConv([0, 0, 1, 1, 0, 0, 1, 1], {}, { reluUser: true }).g), 0, 'read by a non-Conv too');
  assert.equal(foldPadIntoConv(padConv([0, 0, 1, 1, 0, 0, 1, 1], { kernel_shape: [3, 3] }, { value: 0 }).g), 1, 'explicit zero fill folds');
});

/**
 * One SGD step on a linear layer as the step compiler builds it: the weight gradient from autodiff (a Gemm), then
 * torch.optim.SGD's update from `sgd().emit`. Inputs x, W, the momentum buffer and lr; outputs W' and the buffer'.
 */
async function sgdLayer(opts: { momentum: number; weightDecay: number }) {
  const { sgd } = await import('../../src/optim/index.js');
  const g = new Graph();
  g.inputs.push({ name: 'x', dtype: 'float32', shape: [8, 3] }, { name: 'W', dtype: 'float32', shape: [5, 3] }, { name: 'lr', dtype: 'float32', shape: [] });
  const e = new Emitter(g, 17);
  const rng = new Rng(11);
  const r = e.constTensor(
    Tensor.f32(
      [8, 5],
      Array.from({ length: 40 }, () => rng.normal()),
    ),
  );
  const loss = e.reduceSum(e.mul(e.op('Gemm', ['x', 'W'], { transB: 1 }), r), 'all', false);
  const { grads } = backward(g, 17, loss, ['W']);
  const upd = sgd({ lr: 0.1, ...opts }).emit(e, [{ param: 'W', grad: grads.get('W')!, group: 0, dims: [5, 3] }], ['lr'], [{}], {});
  for (const s of upd.state) g.inputs.push({ name: s.input, dtype: 'float32', shape: [5, 3] });
  g.outputs = [upd.params.get('W')!, ...upd.state.map((s) => s.output)].map((name) => ({ name, dtype: 'float32' as const, shape: [5, 3] }));
  g.prune();
  return { g, state: upd.state.map((s) => s.input) };
}

test('gemmAccumulate: SGD momentum and weight decay fold into the weight-gradient Gemm, bit-identical over steps', async () => {
  const { gemmAccumulate } = await import('../../src/step/rewrites.js');
  for (const opts of [
    { momentum: 0.9, weightDecay: 0 },
    { momentum: 0.9, weightDecay: 5e-4 },
    { momentum: 0, weightDecay: 0.01 },
  ]) {
    const plain = await sgdLayer(opts);
    const fused = await sgdLayer(opts);
    const adds = (g: Graph) => g.nodes.filter((n) => n.op === 'Add').length;
    const before = adds(fused.g);
    assert.equal(gemmAccumulate(fused.g), 1, `one fold for ${JSON.stringify(opts)}`);
    assert.equal(adds(fused.g), before - 1, 'the Add is gone');
    const gemm = fused.g.nodes.find((n) => n.op === 'Gemm' && n.inputs.length === 3)!;
    assert.ok(gemm, 'a Gemm with an accumulator input');
    assert.equal(Math.fround(Number(gemm.attrs.beta)), Math.fround(opts.weightDecay || opts.momentum), 'beta is the folded constant');
    if (opts.weightDecay === 0) assert.ok(!fused.g.nodes.some((n) => n.op === 'Mul' && n.inputs.includes(fused.state[0]!)), 'μ·buf is in the Gemm');
    const [sp, sf] = [await createSession(new Model(plain.g, 17), { threads: 1 }), await createSession(new Model(fused.g, 17), { threads: 1 })];
    const rng = new Rng(5);
    const rand = (dims: number[]) =>
      Tensor.f32(
        dims,
        Array.from({ length: dims[0]! * dims[1]! }, () => rng.normal()),
      );
    let w = rand([5, 3]);
    let buf = Tensor.f32([5, 3]);
    for (let t = 0; t < 4; t++) {
      const feeds: Record<string, Tensor> = { x: rand([8, 3]), W: w, lr: Tensor.scalar(0.1) };
      if (fused.state.length) {
        feeds[plain.state[0]!] = buf;
      }
      const a = await runHost(sp, feeds);
      const fusedFeeds = { ...feeds };
      if (fused.state.length) {
        delete fusedFeeds[plain.state[0]!];
        fusedFeeds[fused.state[0]!] = buf;
      }
      const b = await runHost(sf, fusedFeeds);
      for (const [i, o] of plain.g.outputs.entries()) {
        const want = [...(a[o.name]!.data as Float32Array)];
        assert.deepEqual([...(b[fused.g.outputs[i]!.name]!.data as Float32Array)], want, `${JSON.stringify(opts)} step ${t}: ${o.name}`);
      }
      w = a[plain.g.outputs[0]!.name]!;
      if (plain.state.length) buf = a[plain.g.outputs[1]!.name]!;
    }
  }
});

test('gemmAccumulate leaves an Add alone when the Gemm output is read twice, X broadcasts, or the scale is not a constant', async () => {
  const { gemmAccumulate } = await import('../../src/step/rewrites.js');
  const build = (kind: 'twice' | 'broadcast' | 'input-scale' | 'plain') => {
    const g = new Graph();
    g.inputs.push(
      { name: 'a', dtype: 'float32', shape: [4, 3] },
      { name: 'b', dtype: 'float32', shape: [3, 5] },
      { name: 'x', dtype: 'float32', shape: kind === 'broadcast' ? [5] : [4, 5] },
      { name: 's', dtype: 'float32', shape: [] },
    );
    const e = new Emitter(g, 17);
    const m = e.op('Gemm', ['a', 'b']);
    const y = e.add(kind === 'input-scale' ? e.mul('s', 'x') : 'x', m);
    g.outputs = [{ name: y, dtype: 'float32' }];
    if (kind === 'twice') g.outputs.push({ name: e.op('Relu', [m]), dtype: 'float32' });
    return g;
  };
  assert.equal(gemmAccumulate(build('twice')), 0);
  assert.equal(gemmAccumulate(build('broadcast')), 0);
  // a non-constant scale stays a Mul, but its product still becomes the accumulator (beta 1)
  const g = build('input-scale');
  assert.equal(gemmAccumulate(g), 1);
  assert.ok(g.nodes.some((n) => n.op === 'Mul'));
  assert.equal(gemmAccumulate(build('plain')), 1);
});
