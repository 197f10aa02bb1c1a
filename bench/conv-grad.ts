/**
 * Micro benchmark of the Conv gradient rules (not a test): times forward Conv, dX and dW as graft emits them, on
 * onnxruntime-node with 2 intra-op threads, and prints GFLOP/s of the best of `--iters` runs (2·N·K·(C/g)·Ho·Wo·kh·kw FLOPs for each of the three).
 *
 * 'dwT' times, for comparison, dW as the Conv of transposed tensors (the formulation graft's rule does not use).
 * Run: node --import tsx bench/conv-grad.ts [--iters 20] [--all]
 * The first row is the reference configuration (N=32, C=K=256, 14×14, 3×3, pad 1); --all adds ResNet/MobileNet shapes.
 */

import { Emitter } from '../src/ir/emit.js';
import { type AttrValue, Graph } from '../src/ir/graph.js';
import { DEFAULT_OPSET, Model } from '../src/ir/model.js';
import { opDef } from '../src/ir/op-registry.js';
import { registerStandardOps } from '../src/ops/index.js';
import { createSession, ort } from '../src/runtime/session.js';
import { Rng } from '../src/tensor.js';

registerStandardOps();

interface Config {
  name: string;
  x: number[];
  w: number[];
  attrs: Record<string, AttrValue>;
}

const configs: Config[] = [
  { name: 'ref 3x3 s1 p1 C=K=256 14x14', x: [32, 256, 14, 14], w: [256, 256, 3, 3], attrs: { pads: [1, 1, 1, 1] } },
  { name: 'resnet 3x3 s2 p1 64->128 56x56', x: [32, 64, 56, 56], w: [128, 64, 3, 3], attrs: { pads: [1, 1, 1, 1], strides: [2, 2] } },
  { name: 'resnet 1x1 s2 64->128 56x56', x: [32, 64, 56, 56], w: [128, 64, 1, 1], attrs: { strides: [2, 2] } },
  { name: 'mobilenet 1x1 24->144 56x56', x: [32, 24, 56, 56], w: [144, 24, 1, 1], attrs: {} },
  { name: 'mobilenet dw 3x3 s1 144 56x56', x: [32, 144, 56, 56], w: [144, 1, 3, 3], attrs: { pads: [1, 1, 1, 1], group: 144 } },
  { name: 'smallcnn conv2 3x3 32->64 14x14', x: [64, 32, 14, 14], w: [64, 32, 3, 3], attrs: { pads: [1, 1, 1, 1] } },
  { name: 'smallcnn conv1 3x3 1->32 28x28', x: [64, 1, 28, 28], w: [32, 1, 3, 3], attrs: { pads: [1, 1, 1, 1] } },
  { name: 'mobilenet dw 3x3 s2 144 56x56', x: [32, 144, 56, 56], w: [144, 1, 3, 3], attrs: { pads: [1, 1, 1, 1], group: 144, strides: [2, 2] } },
];

function rand(dims: number[], seed: number): ort.Tensor {
  const rng = new Rng(seed);
  const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = rng.normal();
  return new ort.Tensor('float32', data, dims);
}

type Which = 'fwd' | 'dx' | 'dw' | 'dwT' | 'dxConv';

/**
 * For comparison (dense convs only): dW as a Conv of transposed tensors (Xᵀ as C images of N channels, dYᵀ as K kernels,
 * stride and dilation swapped), the textbook formulation graft's rule replaced with im2col + MatMul.
 */
function dwConvOfTransposes(e: Emitter, cfg: Config, yShape: number[]): string {
  const s = (cfg.attrs.strides as number[] | undefined) ?? [1, 1];
  const pads = (cfg.attrs.pads as number[] | undefined) ?? [0, 0, 0, 0];
  const attrs = { kernel_shape: yShape.slice(2), strides: [1, 1], dilations: s, pads };
  const out = e.op('Conv', [e.transpose('x', [1, 0, 2, 3]), e.transpose('dy', [1, 0, 2, 3])], attrs);
  const [, , a, b] = e.shape(out) as number[];
  const k = cfg.w.slice(2);
  const crop = a !== k[0] || b !== k[1] ? e.op('Slice', [out, e.ints([0, 0]), e.ints(k), e.ints([2, 3])]) : out;
  return e.transpose(crop, [1, 0, 2, 3]);
}

/** For comparison (stride 1, group 1): dX as a plain Conv of dy with the spatially flipped, transposed kernel. */
function dxAsConv(e: Emitter, cfg: Config): string {
  const [kh, kw] = cfg.w.slice(2) as [number, number];
  const pads = (cfg.attrs.pads as number[] | undefined) ?? [0, 0, 0, 0];
  const flipped = e.op('Slice', ['w', e.ints([-1, -1]), e.ints([-kh - 1, -kw - 1]), e.ints([2, 3]), e.ints([-1, -1])]);
  const wt = e.transpose(flipped, [1, 0, 2, 3]);
  return e.op('Conv', ['dy', wt], { pads: [kh - 1 - pads[0]!, kw - 1 - pads[1]!, kh - 1 - pads[2]!, kw - 1 - pads[3]!] });
}

/** Builds one graph: 'fwd' computes Conv(x, w); 'dx' / 'dw' apply graft's Conv gradient rule to a fed dy. */
function build(cfg: Config, which: Which): { model: Model; yShape: number[] } {
  const g = new Graph();
  g.inputs.push({ name: 'x', dtype: 'float32', shape: cfg.x }, { name: 'w', dtype: 'float32', shape: cfg.w });
  const e = new Emitter(g, DEFAULT_OPSET);
  const y = e.op('Conv', ['x', 'w'], cfg.attrs);
  const yShape = g.info(y)!.shape as number[];
  if (which === 'fwd') {
    g.outputs = [{ name: y, dtype: 'float32', shape: yShape }];
  } else {
    g.inputs.push({ name: 'dy', dtype: 'float32', shape: yShape });
    const node = g.nodes[g.nodes.length - 1]!;
    const [dx, dw] = opDef('Conv')!.grad!(e, node, ['dy'], [which === 'dx', which === 'dw', false]);
    const out = which === 'dwT' ? dwConvOfTransposes(e, cfg, yShape) : which === 'dxConv' ? dxAsConv(e, cfg) : (which === 'dx' ? dx : dw)!;
    g.outputs = [{ name: out, dtype: 'float32', shape: which === 'dx' ? cfg.x : cfg.w }];
    g.prune();
    g.inputs = g.inputs.filter((v) => g.nodes.some((n) => n.inputs.includes(v.name)));
  }
  return { model: new Model(g, DEFAULT_OPSET), yShape };
}

/** Best time (ms) of each model over `iters` rounds; the models run in turn so bursts of load hit them all alike. */
async function timeAll(models: Model[], feeds: Record<string, ort.Tensor>, iters: number): Promise<number[]> {
  const runs = await Promise.all(
    models.map(async (model) => {
      const session = await createSession(model, { threads: 2 });
      const names = new Set(model.graph.inputs.map((v) => v.name));
      return { session, feeds: Object.fromEntries(Object.entries(feeds).filter(([k]) => names.has(k))) };
    }),
  );
  for (const r of runs) for (let i = 0; i < 3; i++) await r.session.run(r.feeds);
  // the best run: on a shared machine other processes only ever add time
  const best = runs.map(() => Infinity);
  for (let i = 0; i < iters; i++)
    for (const [k, r] of runs.entries()) {
      const t0 = performance.now();
      await r.session.run(r.feeds);
      best[k] = Math.min(best[k]!, performance.now() - t0);
    }
  for (const r of runs) await r.session.release();
  return best;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const iters = Number(args[args.indexOf('--iters') + 1]) || 20;
  const only = args.includes('--only') ? args[args.indexOf('--only') + 1]! : undefined;
  const list = only ? configs.filter((c) => c.name.includes(only)) : args.includes('--all') ? configs : configs.slice(0, 1);
  console.log(`onnxruntime-node ${ort.env.versions?.common ?? ''}, 2 threads, best of ${iters} runs`);
  for (const cfg of list) {
    const fwd = build(cfg, 'fwd');
    const [N, K, ...Lo] = fwd.yShape;
    const flops = 2 * N! * K! * cfg.w[1]! * Lo.reduce((a, b) => a * b, 1) * cfg.w.slice(2).reduce((a, b) => a * b, 1);
    const feeds = { x: rand(cfg.x, 1), w: rand(cfg.w, 2), dy: rand(fwd.yShape, 3) };
    const plain = !cfg.attrs.group && !cfg.attrs.strides;
    const kinds: Which[] = cfg.attrs.group ? ['fwd', 'dx', 'dw'] : plain ? ['fwd', 'dx', 'dxConv', 'dw', 'dwT'] : ['fwd', 'dx', 'dw', 'dwT'];
    const ms = await timeAll(
      kinds.map((k) => (k === 'fwd' ? fwd.model : build(cfg, k).model)),
      feeds,
      iters,
    );
    const row = kinds.map((k, i) => `${k} ${ms[i]!.toFixed(2)} ms ${(flops / ms[i]! / 1e6).toFixed(0)} GFLOP/s`);
    console.log(`${cfg.name.padEnd(32)} ${(flops / 1e9).toFixed(2)} GFLOP | ${row.join(' | ')}`);
  }
}

await main();
