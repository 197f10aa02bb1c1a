/**
 * Kernel-level A/B of dense Conv dW forms on ResNet-18's shapes (not a test): graft's rule as src/ops/conv.ts emits it
 * against candidate forms built here, each its own onnxruntime session, run in turn (best of `--iters`), plus the
 * largest difference from graft's rule relative to its largest magnitude. Prints the best wall time and the median CPU
 * time of the process per run.
 *
 *  - `graft`: what convWeightGrad emits now.
 *  - `prev`: the one-GEMM branch before session 8 (graft's unit-depth unfold [N·C, kk, …], then a Transpose of those
 *    cols to [C·kk, N, P]), for the layers where graft's rule takes that branch (layer3 and layer4).
 *  - `gemm`: PyTorch's single GEMM contracting over (n, p): X transposed to [C, N, H, W] and unfolded by a 3-D one-hot
 *    Conv with the batch as depth, giving cols [C·kk, N·P] directly; dY transposed to [K, N·P]; Gemm(dYᵀ, cols, transB).
 *  - `gemmT`: the same product as Gemm(cols, dYᵀ, transB) = dWᵀ [C·kk, K], then a Transpose.
 *  - `convT`: the textbook Conv(Xᵀ, dYᵀ) (C images of N channels, dY as K kernels of the output's size, stride and
 *    dilation swapped), whose per-image unfold onnxruntime keeps small, but whose GEMM is only kh·kw wide.
 *  - `cols` / `colsN`: the im2col alone (graft's [N·C, kk, …] unfold, and the batch-as-depth one with its Transpose).
 *
 * Run: node --import tsx bench/conv-dw.ts [--iters 10] [--threads 1] [--batch 16] [--only layer1] [--forms graft,gemm]
 */

import { parseArgs } from 'node:util';
import { Emitter } from '../src/ir/emit.js';
import { type AttrValue, Graph } from '../src/ir/graph.js';
import { DEFAULT_OPSET, Model } from '../src/ir/model.js';
import { opDef } from '../src/ir/op-registry.js';
import { registerStandardOps } from '../src/ops/index.js';
import { createSession, ort } from '../src/runtime/session.js';
import { Rng, Tensor } from '../src/tensor.js';

registerStandardOps();

const { values } = parseArgs({
  options: {
    iters: { type: 'string', default: '10' },
    threads: { type: 'string', default: '1' },
    batch: { type: 'string', default: '16' },
    only: { type: 'string', default: '' },
    forms: { type: 'string', default: 'graft,gemm,gemmT,cols,colsN' },
  },
});
const N = Number(values.batch);

interface Layer {
  name: string;
  C: number;
  K: number;
  L: number;
  k: number;
  s: number;
  p: number;
}

const layers: Layer[] = [
  { name: 'stem 7x7 s2 3->64 224', C: 3, K: 64, L: 224, k: 7, s: 2, p: 3 },
  { name: 'layer1 3x3 64 56', C: 64, K: 64, L: 56, k: 3, s: 1, p: 1 },
  { name: 'layer2.0 3x3 s2 64->128 56', C: 64, K: 128, L: 56, k: 3, s: 2, p: 1 },
  { name: 'layer2 3x3 128 28', C: 128, K: 128, L: 28, k: 3, s: 1, p: 1 },
  { name: 'layer3.0 3x3 s2 128->256 28', C: 128, K: 256, L: 28, k: 3, s: 2, p: 1 },
  { name: 'layer3 3x3 256 14', C: 256, K: 256, L: 14, k: 3, s: 1, p: 1 },
  { name: 'layer4.0 3x3 s2 256->512 14', C: 256, K: 512, L: 14, k: 3, s: 2, p: 1 },
  { name: 'layer4 3x3 512 7', C: 512, K: 512, L: 7, k: 3, s: 1, p: 1 },
];

type Form = 'graft' | 'prev' | 'gemm' | 'gemmT' | 'convT' | 'cols' | 'colsN';

function taps(k: number): Tensor {
  const kk = k * k;
  const t = Tensor.f32([kk, 1, 1, k, k]);
  for (let i = 0; i < kk; i++) (t.data as Float32Array)[i * kk + i] = 1;
  return t;
}

/** The batch-as-depth unfold: [C·kk, N·P]. */
function colsByDepth(e: Emitter, l: Layer, x: string): string {
  const xt = e.op('Reshape', [e.transpose(x, [1, 0, 2, 3]), e.ints([l.C, 1, N, l.L, l.L])]);
  const attrs = { kernel_shape: [1, l.k, l.k], strides: [1, l.s, l.s], pads: [0, l.p, l.p, 0, l.p, l.p] };
  const cols = e.op('Conv', [xt, e.constTensor(taps(l.k), 'taps')], attrs); // [C, kk, N, Ho, Wo]
  return e.op('Reshape', [cols, e.ints([l.C * l.k * l.k, -1])]);
}

function build(l: Layer, form: Form): { model: Model; yShape: number[] } {
  const g = new Graph();
  const xShape = [N, l.C, l.L, l.L];
  const wShape = [l.K, l.C, l.k, l.k];
  g.inputs.push({ name: 'x', dtype: 'float32', shape: xShape }, { name: 'w', dtype: 'float32', shape: wShape });
  const e = new Emitter(g, DEFAULT_OPSET);
  const attrs: Record<string, AttrValue> = { pads: [l.p, l.p, l.p, l.p], strides: [l.s, l.s] };
  const y = e.op('Conv', ['x', 'w'], attrs);
  const yShape = g.info(y)!.shape as number[];
  g.inputs.push({ name: 'dy', dtype: 'float32', shape: yShape });
  const node = g.nodes[g.nodes.length - 1]!;
  let out: string;
  const dyT = () => e.op('Reshape', [e.transpose('dy', [1, 0, 2, 3]), e.ints([l.K, -1])]);
  if (form === 'graft') out = opDef('Conv')!.grad!(e, node, ['dy'], [false, true, false])[1]!;
  else if (form === 'gemm') out = e.op('Reshape', [e.op('Gemm', [dyT(), colsByDepth(e, l, 'x')], { transB: 1 }), e.ints(wShape)]);
  else if (form === 'gemmT') out = e.op('Reshape', [e.transpose(e.op('Gemm', [colsByDepth(e, l, 'x'), dyT()], { transB: 1 }), [1, 0]), e.ints(wShape)]);
  else if (form === 'colsN') out = colsByDepth(e, l, 'x');
  else if (form === 'prev') {
    const ca = { kernel_shape: [1, l.k, l.k], strides: [1, l.s, l.s], pads: [0, l.p, l.p, 0, l.p, l.p] };
    const cols = e.op('Conv', [e.op('Reshape', ['x', e.ints([-1, 1, 1, l.L, l.L])]), e.constTensor(taps(l.k), 'taps')], ca);
    const ck = l.C * l.k * l.k;
    const colsT = e.op('Reshape', [e.transpose(e.op('Reshape', [cols, e.ints([-1, ck, yShape[2]! * yShape[3]!])]), [1, 0, 2]), e.ints([ck, -1])]);
    out = e.op('Reshape', [e.op('Gemm', [dyT(), colsT], { transB: 1 }), e.ints(wShape)]);
  } else if (form === 'convT') {
    const ca = { kernel_shape: yShape.slice(2), dilations: [l.s, l.s], pads: [l.p, l.p, l.p, l.p] };
    const o = e.op('Conv', [e.transpose('x', [1, 0, 2, 3]), e.transpose('dy', [1, 0, 2, 3])], ca); // [C, K, k', k']
    const crop = (e.shape(o) as number[])[2] !== l.k ? e.op('Slice', [o, e.ints([0, 0]), e.ints([l.k, l.k]), e.ints([2, 3])]) : o;
    out = e.transpose(crop, [1, 0, 2, 3]);
  } else {
    const t = Tensor.f32([l.k * l.k, 1, 1, l.k, l.k], taps(l.k).data as Float32Array);
    const ca = { kernel_shape: [1, l.k, l.k], strides: [1, l.s, l.s], pads: [0, l.p, l.p, 0, l.p, l.p] };
    out = e.op('Conv', [e.op('Reshape', ['x', e.ints([-1, 1, 1, l.L, l.L])]), e.constTensor(t, 'taps')], ca);
  }
  g.outputs = [{ name: out, dtype: 'float32', shape: e.shape(out) ?? null! }];
  g.prune();
  g.inputs = g.inputs.filter((v) => g.nodes.some((n) => n.inputs.includes(v.name)));
  return { model: new Model(g, DEFAULT_OPSET), yShape };
}

function rand(dims: number[], seed: number): ort.Tensor {
  const rng = new Rng(seed);
  const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = rng.normal();
  return new ort.Tensor('float32', data, dims);
}

const forms = values.forms.split(',') as Form[];
const iters = Number(values.iters);
console.log(`onnxruntime-node ${ort.env.versions?.common ?? ''}, ${values.threads} thread(s), batch ${N}, best of ${iters}`);
for (const l of layers.filter((v) => v.name.includes(values.only))) {
  const built = forms.map((f) => build(l, f));
  const yShape = built[0]!.yShape;
  const feeds = { x: rand([N, l.C, l.L, l.L], 1), dy: rand(yShape, 3) };
  const runs = await Promise.all(
    built.map(async ({ model }) => {
      const session = await createSession(model, { threads: Number(values.threads) });
      const names = new Set(model.graph.inputs.map((v) => v.name));
      return { session, feeds: Object.fromEntries(Object.entries(feeds).filter(([k]) => names.has(k))) };
    }),
  );
  const outs: Float32Array[] = [];
  for (const r of runs) {
    const o = await r.session.run(r.feeds);
    outs.push(Object.values(o)[0]!.data as Float32Array);
    await r.session.run(r.feeds);
  }
  // CPU time of the process per run (1 intra-op thread: the kernel's own work, less sensitive to load than wall)
  const best = runs.map(() => Infinity);
  const cpu = runs.map(() => [] as number[]);
  for (let i = 0; i < iters; i++)
    for (const [k, r] of runs.entries()) {
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      await r.session.run(r.feeds);
      const c = process.cpuUsage(c0);
      cpu[k]!.push((c.user + c.system) / 1000);
      best[k] = Math.min(best[k]!, performance.now() - t0);
    }
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1]!;
  for (const r of runs) await r.session.release();
  const ref = outs[0]!;
  const scale = ref.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  const row = forms.map((f, i) => {
    const o = outs[i]!;
    const diff =
      o.length === ref.length && f !== 'graft' && !f.startsWith('cols')
        ? ` (Δ ${(o.reduce((m, v, j) => Math.max(m, Math.abs(v - ref[j]!)), 0) / scale).toExponential(1)})`
        : '';
    return `${f} ${best[i]!.toFixed(1)} ms (CPU ${median(cpu[i]!).toFixed(1)})${diff}`;
  });
  console.log(`${l.name.padEnd(30)} ${row.join(' | ')}`);
}
