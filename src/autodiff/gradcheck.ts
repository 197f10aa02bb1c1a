/**
 * Finite-difference gradient checking: builds a small graph, differentiates it with graft's rules,
 * runs both in onnxruntime and compares with central differences. Used by the test suite for every
 * rule, and available to anyone adding a rule.
 */

import { Emitter } from '../ir/emit.js';
import { Graph } from '../ir/graph.js';
import { DEFAULT_OPSET, Model } from '../ir/model.js';
import { registerStandardOps } from '../ops/index.js';
import { createSession, runHost } from '../runtime/session.js';
import { Rng, Tensor } from '../tensor.js';
import { backward } from './backward.js';

export interface GradCheckSpec {
  /** Feeds: every graph input with its value (float32 or int64). */
  inputs: Record<string, Tensor>;
  /** Inputs to differentiate with respect to. */
  wrt: string[];
  /** Builds the forward graph with `e` from the input names; returns the output(s) the loss is taken over. */
  build(e: Emitter, g: Graph): string | string[];
  opset?: number;
  /** Central-difference step (default 1e-2). */
  eps?: number;
  /** Pass when |analytic − numeric| ≤ atol + rtol·max(|analytic|, |numeric|). Defaults 2e-3, 2e-2. */
  atol?: number;
  rtol?: number;
  /** Coordinates checked per input (default 24, chosen at random). */
  samples?: number;
  seed?: number;
}

export interface GradCheckResult {
  ok: boolean;
  /** Worst violation found, for messages. */
  worst: { input: string; index: number; analytic: number; numeric: number; excess: number } | null;
  checked: number;
}

/** Runs a finite-difference check; see {@link GradCheckSpec}. */
export async function gradCheck(spec: GradCheckSpec): Promise<GradCheckResult> {
  registerStandardOps();
  const opset = spec.opset ?? DEFAULT_OPSET;
  const rng = new Rng(spec.seed ?? 7);
  const g = new Graph();
  for (const [name, t] of Object.entries(spec.inputs)) g.inputs.push({ name, dtype: t.dtype, shape: [...t.dims] });
  const e = new Emitter(g, opset);
  const outs = [spec.build(e, g)].flat();
  // loss = Σ_k Σ y_k · R_k with fixed random R_k: exercises the whole Jacobian.
  const terms = outs.map((y) => {
    const shape = g.info(y)?.shape;
    if (!shape || shape.some((d) => typeof d !== 'number')) throw new Error(`gradCheck: output ${y} needs a static shape, got ${shape}`);
    const r = Tensor.f32(shape as number[]);
    for (let i = 0; i < r.size; i++) (r.data as Float32Array)[i] = rng.normal();
    return e.reduceSum(e.mul(y, e.constTensor(r, 'R')), 'all', false);
  });
  const loss = e.sum(terms);
  g.outputs = [{ name: loss, dtype: 'float32', shape: [] }];
  const fwdModel = new Model(g.clone(), opset);
  fwdModel.graph.prune();
  const { grads } = backward(g, opset, loss, spec.wrt);
  for (const w of spec.wrt) {
    const gn = grads.get(w);
    if (!gn) throw new Error(`gradCheck: the loss does not depend on ${w}`);
    g.outputs.push({ name: gn, dtype: 'float32', shape: [...spec.inputs[w]!.dims] });
  }
  const fwd = await createSession(fwdModel, { threads: 1, optimization: 'disabled' });
  const bwdModel = new Model(g, opset);
  const bwd = await createSession(bwdModel, { threads: 1, optimization: 'disabled' });
  // feed each graph only the inputs it still has (pruning drops those the loss does not read)
  const feedsOf = (m: Model, values: Record<string, Tensor>) =>
    Object.fromEntries(m.graph.inputs.filter((i) => i.name in values).map((i) => [i.name, values[i.name]!]));
  const analytic = await runHost(bwd, feedsOf(bwdModel, spec.inputs));

  const eps = spec.eps ?? 1e-2;
  const atol = spec.atol ?? 2e-3;
  const rtol = spec.rtol ?? 2e-2;
  let worst: GradCheckResult['worst'] = null;
  let checked = 0;
  for (const w of spec.wrt) {
    const x = spec.inputs[w]!;
    const ga = analytic[grads.get(w)!]!;
    if (ga.size !== x.size) throw new Error(`gradCheck: gradient of ${w} has ${ga.size} elements, input has ${x.size}`);
    const n = Math.min(spec.samples ?? 24, x.size);
    const idx = x.size <= n ? [...Array(x.size).keys()] : [...rng.permutation(x.size)].slice(0, n);
    for (const i of idx) {
      const evalAt = async (delta: number) => {
        const xp = x.clone();
        (xp.data as Float32Array)[i]! += delta;
        const r = await runHost(fwd, feedsOf(fwdModel, { ...spec.inputs, [w]: xp }));
        return (r[loss]!.data as Float32Array)[0]!;
      };
      const numeric = ((await evalAt(eps)) - (await evalAt(-eps))) / (2 * eps);
      const a = (ga.data as Float32Array)[i]!;
      const excess = Math.abs(a - numeric) - (atol + rtol * Math.max(Math.abs(a), Math.abs(numeric)));
      checked++;
      if (!Number.isFinite(a) || excess > (worst?.excess ?? 0))
        worst = { input: w, index: i, analytic: a, numeric, excess: Number.isFinite(a) ? excess : Infinity };
    }
  }
  return { ok: worst === null, worst, checked };
}

/** A float32 tensor of N(0,1) values (or uniform in [lo, hi)) from a seed. */
export function randn(dims: number[], seed: number, opts: { lo?: number; hi?: number; awayFromZero?: number } = {}): Tensor {
  const rng = new Rng(seed);
  const t = Tensor.f32(dims);
  const d = t.data as Float32Array;
  for (let i = 0; i < d.length; i++) {
    let v = opts.lo !== undefined ? opts.lo + (opts.hi! - opts.lo) * rng.next() : rng.normal();
    if (opts.awayFromZero && Math.abs(v) < opts.awayFromZero) v = Math.sign(v || 1) * (opts.awayFromZero + Math.abs(v));
    d[i] = v;
  }
  return t;
}
