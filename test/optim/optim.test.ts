import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Emitter } from '../../src/ir/emit.js';
import { Graph } from '../../src/ir/graph.js';
import { DEFAULT_OPSET, Model } from '../../src/ir/model.js';
import { registerStandardOps } from '../../src/ops/index.js';
import {
  adam,
  adamw,
  clipGradNorm,
  cosineSchedule,
  invSchedule,
  makeSchedule,
  type Optimizer,
  oneCycleSchedule,
  type ParamGroup,
  SGD_GRAD_SCALE,
  sgd,
  stepSchedule,
  withWarmup,
} from '../../src/optim/index.js';
import { createSession, runHost } from '../../src/runtime/session.js';
import { Rng, Tensor } from '../../src/tensor.js';

registerStandardOps();

// ---- plain-JS references, written from the pseudo-code in the PyTorch docs (float64) -------------

interface RefSgd {
  kind: 'sgd';
  momentum: number;
  dampening: number;
  nesterov: boolean;
  /** Deliberately wrong variant (dampening applied on step 1) to prove the comparison can fail. */
  naiveFirstStep?: boolean;
}
interface RefAdam {
  kind: 'adam' | 'adamw';
  b1: number;
  b2: number;
  eps: number;
  amsgrad: boolean;
}

/** One update of one parameter in place. `st` holds the per-parameter state. */
function refStep(cfg: RefSgd | RefAdam, p: Float64Array, grad: Float64Array, st: Record<string, Float64Array>, lr: number, wd: number, t: number): void {
  const n = p.length;
  if (cfg.kind === 'sgd') {
    const g = grad.map((x, i) => x + wd * p[i]!);
    let d = g;
    if (cfg.momentum !== 0) {
      if (t === 1 && !cfg.naiveFirstStep) st.buf = g.slice();
      else {
        const b = st.buf ?? new Float64Array(n);
        st.buf = b.map((x, i) => cfg.momentum * x + (1 - cfg.dampening) * g[i]!);
      }
      const buf = st.buf;
      d = cfg.nesterov ? g.map((x, i) => x + cfg.momentum * buf[i]!) : buf;
    }
    for (let i = 0; i < n; i++) p[i] = p[i]! - lr * d[i]!;
    return;
  }
  const { b1, b2, eps } = cfg;
  if (cfg.kind === 'adamw') for (let i = 0; i < n; i++) p[i] = p[i]! - lr * wd * p[i]!;
  const g = cfg.kind === 'adam' ? grad.map((x, i) => x + wd * p[i]!) : grad;
  const m = (st.m ??= new Float64Array(n));
  const v = (st.v ??= new Float64Array(n));
  const vmax = (st.vmax ??= new Float64Array(n));
  for (let i = 0; i < n; i++) {
    m[i] = b1 * m[i]! + (1 - b1) * g[i]!;
    v[i] = b2 * v[i]! + (1 - b2) * g[i]! * g[i]!;
    vmax[i] = Math.max(vmax[i]!, v[i]!);
    const mHat = m[i]! / (1 - b1 ** t);
    const vHat = (cfg.amsgrad ? vmax[i]! : v[i]!) / (1 - b2 ** t);
    p[i] = p[i]! - (lr * mHat) / (Math.sqrt(vHat) + eps);
  }
}

// ---- harness: emit the update, run 3 steps in onnxruntime feeding outputs back -------------------

const PARAMS = [
  { name: 'w0', dims: [3, 4], group: 0 },
  { name: 'b0', dims: [4], group: 0 },
  { name: 'w1', dims: [2, 3], group: 1 },
  { name: 's1', dims: [], group: 1 },
  // large enough (≥ 1,024 elements) for SGD's one-Gemm step p − lr·u (sgd.ts, descend)
  { name: 'w2', dims: [40, 32], group: 1 },
  // Conv weights: rank 4, where the optimizer shapes its scalar operands [1, 1, 1, 1] (sgd.ts, scalarsOfRank); one small
  // (the Sub step), one large (the Gemm step)
  { name: 'k3', dims: [4, 3, 3, 3], group: 0 },
  { name: 'k1', dims: [64, 32, 1, 1], group: 1 },
];
const SCHEDULE = [1, 0.5, 0.25];
const STEPS = SCHEDULE.length;

function randomTensor(dims: number[], rng: Rng, scale = 1): Tensor {
  const t = Tensor.f32(dims);
  for (let i = 0; i < t.size; i++) (t.data as Float32Array)[i] = scale * rng.normal();
  return t;
}

/**
 * Normwise relative error max|a − b| / max|b| (float32 results against a float64 reference: elementwise
 * relative error is meaningless where a recurrence like m = β·m + (1−β)·g cancels to near zero).
 */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / Math.max(scale, 1e-30);
}

/** Runs `opt` in onnxruntime and the reference side by side; returns the worst relative error over all steps. */
async function compare(opt: Optimizer, ref: RefSgd | RefAdam, groups: ParamGroup[], defaultWd: number, baseLr = 0.1): Promise<number> {
  const g = new Graph();
  const e = new Emitter(g, DEFAULT_OPSET);
  const lrNames = groups.map((_, k) => `lr_${k}`);
  for (const n of lrNames) g.inputs.push({ name: n, dtype: 'float32', shape: [] });
  for (const p of PARAMS) g.inputs.push({ name: p.name, dtype: 'float32', shape: p.dims }, { name: `${p.name}_grad`, dtype: 'float32', shape: p.dims });
  const scalars: Record<string, string> = {};
  for (const s of opt.scalarInputs()) {
    g.inputs.push({ name: s, dtype: 'float32', shape: [] });
    scalars[s] = s;
  }
  const slots = PARAMS.map((p) => ({ param: p.name, grad: `${p.name}_grad`, group: p.group, dims: p.dims }));
  const res = opt.emit(e, slots, lrNames, groups, scalars);
  // The caller (src/step/compile.ts) declares the state inputs.
  for (const s of res.state) {
    assert.equal(g.info(s.input), undefined, `emit must not declare state input ${s.input} itself`);
    g.inputs.push({ name: s.input, dtype: 'float32', shape: [...s.init.dims] });
  }
  for (const p of PARAMS) assert.deepEqual(e.shape(res.params.get(p.name)!), p.dims, `inferred shape of the update of ${p.name}`);
  g.outputs = [
    ...PARAMS.map((p) => ({ name: res.params.get(p.name)!, dtype: 'float32' as const, shape: p.dims })),
    ...res.state.map((s) => ({ name: s.output, dtype: 'float32' as const, shape: [...s.init.dims] })),
  ];
  const session = await createSession(new Model(g, DEFAULT_OPSET), { threads: 1 });

  const rng = new Rng(42);
  const values = new Map(PARAMS.map((p) => [p.name, randomTensor(p.dims, rng)]));
  const state = new Map(res.state.map((s) => [s.input, s.init]));
  const refP = new Map(PARAMS.map((p) => [p.name, Float64Array.from(values.get(p.name)!.data as Float32Array)]));
  const refState = new Map(PARAMS.map((p) => [p.name, {} as Record<string, Float64Array>]));
  let worst = 0;
  for (let t = 1; t <= STEPS; t++) {
    const feeds: Record<string, Tensor> = {};
    const lrs = groups.map((gr) => baseLr * (gr.lrScale ?? 1) * SCHEDULE[t - 1]!);
    for (const [k, n] of lrNames.entries()) feeds[n] = Tensor.scalar(lrs[k]!);
    for (const [k, v] of Object.entries(opt.scalarValues(t))) feeds[k] = Tensor.scalar(v);
    for (const p of PARAMS) {
      const grad = randomTensor(p.dims, rng, 0.5);
      feeds[p.name] = values.get(p.name)!;
      feeds[`${p.name}_grad`] = grad;
      const wd = groups[p.group]!.weightDecay ?? defaultWd;
      refStep(ref, refP.get(p.name)!, Float64Array.from(grad.data as Float32Array), refState.get(p.name)!, lrs[p.group]!, wd, t);
    }
    for (const [k, v] of state) feeds[k] = v;
    const out = await runHost(session, feeds);
    for (const p of PARAMS) {
      values.set(p.name, out[res.params.get(p.name)!]!);
      worst = Math.max(worst, relErr(values.get(p.name)!.data as Float32Array, refP.get(p.name)!));
    }
    for (const s of res.state) {
      state.set(s.input, out[s.output]!);
      const owner = PARAMS.find((p) => s.input.startsWith(`${p.name}.`))!;
      const kind = s.input.slice(owner.name.length + 1).replace(/__\d+$/, '');
      const key = { momentum_buffer: 'buf', exp_avg: 'm', exp_avg_sq: 'v', max_exp_avg_sq: 'vmax' }[kind];
      assert.ok(key, `unexpected state input ${s.input}`);
      worst = Math.max(worst, relErr(out[s.output]!.data as Float32Array, refState.get(owner.name)![key]!));
    }
  }
  return worst;
}

const TOL = 1e-6;
const GROUPS: ParamGroup[] = [{ lrScale: 1 }, { lrScale: 0.1, weightDecay: 0.05 }];
const sgdRef = (o: Partial<RefSgd> = {}): RefSgd => ({ kind: 'sgd', momentum: 0, dampening: 0, nesterov: false, ...o });

test('SGD plain matches PyTorch over 3 steps with 2 groups', async () => {
  const opt = sgd({ lr: 0.1 });
  assert.deepEqual(opt.scalarInputs(), []);
  const err = await compare(opt, sgdRef(), GROUPS, 0);
  assert.ok(err < TOL, `relative error ${err}`);
});

test('SGD momentum matches PyTorch (first step buf = g, no scalar input needed)', async () => {
  const opt = sgd({ momentum: 0.9 });
  assert.deepEqual(opt.scalarInputs(), []);
  const err = await compare(opt, sgdRef({ momentum: 0.9 }), GROUPS, 0);
  assert.ok(err < TOL, `relative error ${err}`);
});

test('SGD Nesterov with weight decay matches PyTorch', async () => {
  const err = await compare(sgd({ momentum: 0.8, nesterov: true, weightDecay: 1e-2 }), sgdRef({ momentum: 0.8, nesterov: true }), GROUPS, 1e-2);
  assert.ok(err < TOL, `relative error ${err}`);
});

test('SGD weight decay without momentum matches PyTorch (group 1 overrides the decay)', async () => {
  const groups: ParamGroup[] = [{ lrScale: 1 }, { lrScale: 0.1, weightDecay: 0 }];
  const err = await compare(sgd({ weightDecay: 0.2 }), sgdRef(), groups, 0.2);
  assert.ok(err < TOL, `relative error ${err}`);
});

test('SGD dampening matches PyTorch, and a dampened first step would be caught', async () => {
  const opt = sgd({ momentum: 0.9, dampening: 0.5, weightDecay: 1e-3 });
  assert.deepEqual(opt.scalarInputs(), [SGD_GRAD_SCALE]);
  assert.deepEqual(opt.scalarValues(1), { [SGD_GRAD_SCALE]: 1 });
  assert.deepEqual(opt.scalarValues(2), { [SGD_GRAD_SCALE]: 0.5 });
  const err = await compare(opt, sgdRef({ momentum: 0.9, dampening: 0.5 }), GROUPS, 1e-3);
  assert.ok(err < TOL, `relative error ${err}`);
  const wrong = await compare(opt, sgdRef({ momentum: 0.9, dampening: 0.5, naiveFirstStep: true }), GROUPS, 1e-3);
  assert.ok(wrong > 1e-3, `the comparison must detect a wrong first step (error ${wrong})`);
});

test('Adam (L2 weight decay) matches PyTorch', async () => {
  const opt = adam({ lr: 0.01, weightDecay: 1e-2 });
  const err = await compare(opt, { kind: 'adam', b1: 0.9, b2: 0.999, eps: 1e-8, amsgrad: false }, GROUPS, 1e-2);
  assert.ok(err < TOL, `relative error ${err}`);
});

test('Adam with custom betas and AMSGrad matches PyTorch', async () => {
  const opt = adam({ betas: [0.8, 0.99], eps: 1e-6, amsgrad: true });
  const err = await compare(opt, { kind: 'adam', b1: 0.8, b2: 0.99, eps: 1e-6, amsgrad: true }, GROUPS, 0);
  assert.ok(err < TOL, `relative error ${err}`);
});

test('AdamW (decoupled weight decay) matches PyTorch, and differs from Adam', async () => {
  const ref: RefAdam = { kind: 'adamw', b1: 0.9, b2: 0.999, eps: 1e-8, amsgrad: false };
  const groups: ParamGroup[] = [{ lrScale: 1 }, { lrScale: 0.1, weightDecay: 0.5 }];
  const err = await compare(adamw({ lr: 0.1 }), ref, groups, 0.01);
  assert.ok(err < TOL, `relative error ${err}`);
  const wrong = await compare(adamw({ lr: 0.1 }), { ...ref, kind: 'adam' }, groups, 0.01);
  assert.ok(wrong > 1e-4, `AdamW must not match L2 Adam (error ${wrong})`);
});

test('bias-correction scalars are computed on the host for a 1-based step', () => {
  const v = adam({ betas: [0.5, 0.75] }).scalarValues(2);
  assert.deepEqual(Object.values(v), [1 / (1 - 0.25), 1 / Math.sqrt(1 - 0.5625)]);
  assert.throws(() => adam().scalarValues(0), /1-based/);
});

test('invalid hyperparameters are rejected with a helpful message', () => {
  assert.throws(() => sgd({ lr: -1 }), /sgd\(\): lr must be a finite number ≥ 0/);
  assert.throws(() => sgd({ nesterov: true }), /Nesterov momentum needs momentum > 0/);
  assert.throws(() => sgd({ momentum: 0.9, dampening: 0.1, nesterov: true }), /dampening = 0/);
  assert.throws(() => sgd({ dampening: 2 }), /dampening must be in \[0, 1\]/);
  assert.throws(() => adam({ betas: [0.9, 1] }), /betas must be two numbers in \[0, 1\)/);
  assert.throws(() => adamw({ eps: Number.NaN }), /adamw\(\): eps/);
  const e = new Emitter(new Graph(), DEFAULT_OPSET);
  assert.throws(() => sgd().emit(e, [{ param: 'p', grad: 'g', group: 2, dims: [1] }], ['lr0'], [{}], {}), /group 2/);
  assert.throws(() => adam().emit(e, [{ param: 'p', grad: 'g', group: 0, dims: [1] }], ['lr0'], [{}], {}), /scalar input "adam_bias_correction1"/);
});

// ---- clipping -------------------------------------------------------------------------------------

test('clipGradNorm matches torch.nn.utils.clip_grad_norm_', async () => {
  const dims = [[3, 4], [5], []];
  const rng = new Rng(3);
  const grads = dims.map((d) => randomTensor(d, rng));
  const total = Math.sqrt(grads.reduce((s, t) => s + (t.data as Float32Array).reduce((a, x) => a + x * x, 0), 0));
  for (const maxNorm of [0.5, 100]) {
    const g = new Graph();
    const e = new Emitter(g, DEFAULT_OPSET);
    const names = dims.map((d, i) => {
      g.inputs.push({ name: `g${i}`, dtype: 'float32', shape: d });
      return `g${i}`;
    });
    const r = clipGradNorm(e, names, maxNorm);
    assert.deepEqual(e.shape(r.norm), []);
    g.outputs = [{ name: r.norm, dtype: 'float32', shape: [] }, ...r.grads.map((n, i) => ({ name: n, dtype: 'float32' as const, shape: dims[i]! }))];
    const out = await runHost(await createSession(new Model(g, DEFAULT_OPSET), { threads: 1 }), Object.fromEntries(names.map((n, i) => [n, grads[i]!])));
    assert.ok(relErr(out[r.norm]!.data as Float32Array, [total]) < TOL, `norm ${out[r.norm]!.data[0]} vs ${total}`);
    const coef = Math.min(1, maxNorm / (total + 1e-6));
    r.grads.forEach((n, i) => {
      const want = Array.from(grads[i]!.data as Float32Array, (x) => x * coef);
      assert.ok(relErr(out[n]!.data as Float32Array, want) < TOL, `clipped grad ${i} at maxNorm ${maxNorm}`);
    });
    if (maxNorm === 100) assert.deepEqual(Array.from(out[r.grads[0]!]!.data as Float32Array), Array.from(grads[0]!.data as Float32Array));
  }
  assert.throws(() => clipGradNorm(new Emitter(new Graph(), DEFAULT_OPSET), ['g'], 0), /maxNorm must be a finite number > 0/);
});

// ---- schedules (expected values from PyTorch 1.13's schedulers with lr = 1) -------------------------

function near(a: number, b: number, tol = 1e-9) {
  assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} vs ${b}`);
}

test('one-cycle matches OneCycleLR (peak at 30%)', () => {
  const s = oneCycleSchedule();
  const torch: [number, number][] = [
    [0, 0.04],
    [10, 0.29516394846410077],
    [28, 0.9971862194340926],
    [29, 1],
    [30, 0.9994965352845243],
    [64, 0.500002],
    [98, 0.0005074647154757879],
    [99, 4e-6],
  ];
  for (const [step, v] of torch) near(s(step, 100), v);
  const s3 = oneCycleSchedule({ threePhase: true, anneal: 'linear' });
  for (const [step, v] of [
    [0, 0.04],
    [10, 0.37103448275862067],
    [29, 1],
    [45, 0.4703448275862069],
    [58, 0.04],
    [70, 0.028293853658536587],
    [99, 4e-6],
  ] as const)
    near(s3(step, 100), v);
  near(s(150, 100), 4e-6); // clamped past the end
});

test('cosine, step, inv and warmup schedules', () => {
  const cos = cosineSchedule({ minFactor: 0.1 });
  for (const [step, v] of [
    [0, 1],
    [10, 0.9140576474687263],
    [25, 0.55],
    [49, 0.10088797220727781],
    [50, 0.1],
  ] as const)
    near(cos(step, 50), v);
  near(cosineSchedule()(100, 100), 0);
  const st = stepSchedule({ stepSize: 10, gamma: 0.5 });
  assert.deepEqual(
    [0, 9, 10, 25].map((k) => st(k, 30)),
    [1, 1, 0.5, 0.25],
  );
  const inv = invSchedule();
  near(inv(0, 100), 1);
  near(inv(50, 100), 6 ** -0.75);
  near(inv(100, 100), 11 ** -0.75);
  const w = withWarmup(cosineSchedule(), { steps: 10 });
  assert.deepEqual(
    [0, 5, 10].map((k) => w(k, 110)),
    [0, 0.5, 1],
  );
  near(w(60, 110), 0.5);
  near(w(110, 110), 0);
  assert.throws(() => cos(-1, 10), /step must be a finite number ≥ 0/);
  assert.throws(() => cos(1, 0), /total must be/);
});

test('makeSchedule builds schedules from JSON specs and rejects bad ones', () => {
  near(makeSchedule('onecycle')(29, 100), 1);
  near(makeSchedule({ kind: 'cosine', minFactor: 0.1 })(50, 50), 0.1);
  near(makeSchedule({ kind: 'inv', gamma: 10, power: 0.75 })(100, 100), 11 ** -0.75);
  assert.equal(makeSchedule({ kind: 'step', stepSize: 5 })(5, 10), 0.1);
  assert.equal(makeSchedule('constant')(3, 10), 1);
  const w = makeSchedule(JSON.parse('{"kind":"warmup","fraction":0.1,"startFactor":0.5,"then":{"kind":"cosine"}}'));
  assert.deepEqual(
    [0, 5, 10].map((k) => w(k, 100)),
    [0.5, 0.75, 1],
  );
  assert.throws(() => makeSchedule({ kind: 'cosin' } as never), /unknown schedule kind "cosin". Use one of 'constant'/);
  assert.throws(() => makeSchedule({ kind: 'cosine', min: 0.1 } as never), /'cosine' schedule does not take 'min'. Its options are: 'minFactor'/);
  assert.throws(() => makeSchedule({ kind: 'onecycle', pctStart: 1.5 }), /pctStart must be a fraction in \(0, 1\)/);
  assert.throws(() => makeSchedule({ kind: 'warmup', steps: 5, fraction: 0.1 }), /exactly one of steps or fraction/);
});

test('SGD and Adam give a rank-4 parameter scalar operands of rank 4 (onnxruntime broadcasts a rank-0 scalar ~60× slower)', () => {
  const optimizers: Optimizer[] = [
    sgd({ momentum: 0.9, weightDecay: 1e-4, dampening: 0.1 }),
    sgd({ momentum: 0.9, nesterov: true }),
    adam({ weightDecay: 1e-2 }),
    adamw({ weightDecay: 1e-2 }),
  ];
  for (const opt of optimizers) {
    const g = new Graph();
    const e = new Emitter(g, DEFAULT_OPSET);
    g.inputs.push({ name: 'lr_0', dtype: 'float32', shape: [] });
    const scalars: Record<string, string> = {};
    for (const s of opt.scalarInputs()) {
      g.inputs.push({ name: s, dtype: 'float32', shape: [] });
      scalars[s] = s;
    }
    const slots = [
      { param: 'small', grad: 'small_grad', group: 0, dims: [4, 3, 3, 3] },
      { param: 'large', grad: 'large_grad', group: 0, dims: [64, 32, 1, 1] },
    ];
    for (const s of slots) g.inputs.push({ name: s.param, dtype: 'float32', shape: s.dims }, { name: s.grad, dtype: 'float32', shape: s.dims });
    const before = g.nodes.length;
    const res = opt.emit(e, slots, ['lr_0'], [{ lrScale: 1 }], scalars);
    for (const st of res.state) g.inputs.push({ name: st.input, dtype: 'float32', shape: [...st.init.dims] });
    let checked = 0;
    for (const n of g.nodes.slice(before)) {
      if (!['Mul', 'Add', 'Sub', 'Div'].includes(n.op)) continue;
      const out = e.shape(n.outputs[0]!);
      if (!out || out.length < 3) continue;
      for (const x of n.inputs)
        assert.equal(e.shape(x)?.length, out.length, `${opt.name}: ${n.op} ${n.name} reads ${x} of shape [${e.shape(x)}] for an output of rank ${out.length}`);
      checked++;
    }
    assert.ok(checked >= 4, `${opt.name}: only ${checked} elementwise nodes on the rank-4 parameters`);
  }
});
