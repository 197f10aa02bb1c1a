/** Shared test helpers: finite-difference gradient expectations and shape-inference-vs-onnxruntime checks. */
import assert from 'node:assert/strict';
import { type GradCheckSpec, gradCheck } from '../src/autodiff/gradcheck.js';
import { Emitter } from '../src/ir/emit.js';
import { Graph } from '../src/ir/graph.js';
import { DEFAULT_OPSET, Model } from '../src/ir/model.js';
import { defineOp, differentiableOps, opDef } from '../src/ir/op-registry.js';
import { dtypeToOnnx } from '../src/onnx/tensor-proto.js';
import { registerStandardOps } from '../src/ops/index.js';
import { createSession, runHost } from '../src/runtime/session.js';
import { Rng, type Tensor } from '../src/tensor.js';

registerStandardOps();

/** For {@link expectGrad} on composite graphs (losses, rewrites): every gradient rule is made wrong at once. */
export const EVERY_RULE = '*';

/**
 * Asserts that graft's gradient matches central finite differences, then proves the check can fail: the gradient
 * rules of `ops` (or of every differentiable op, with {@link EVERY_RULE}) are temporarily replaced by ones whose
 * every input gradient is scaled by 1.1, and the same check must now report a mismatch. `what` labels messages.
 */
export async function expectGrad(ops: string | string[], spec: GradCheckSpec, what = ''): Promise<void> {
  const label = what ? `${what}: ` : '';
  const r = await gradCheck(spec);
  assert.ok(r.ok, `${label}gradient mismatch: ${JSON.stringify(r.worst)}`);
  assert.ok(r.checked > 0, `${label}no coordinate was checked`);
  const names = ops === EVERY_RULE ? differentiableOps() : [ops].flat();
  const real = names.map((op) => {
    const def = opDef(op);
    assert.ok(def?.grad, `${op} has no gradient rule`);
    return def;
  });
  names.forEach((op, i) => {
    const def = real[i]!;
    const scale = (e: Emitter, g: string) => {
      const dtype = e.info(g)?.dtype ?? 'float32';
      return e.mul(g, dtype === 'float32' ? e.scalar(1.1) : e.op('Cast', [e.scalar(1.1)], { to: dtypeToOnnx(dtype) }));
    };
    defineOp(op, { ...def, grad: (e, n, dys, needs) => def.grad!(e, n, dys, needs).map((g) => (g ? scale(e, g) : g)) });
  });
  try {
    const wrong = await gradCheck(spec);
    assert.equal(
      wrong.ok,
      false,
      `${label}a 10% wrong ${ops === EVERY_RULE ? 'set of rules' : names.join('/')} gradient passed the check; the test cannot fail`,
    );
  } finally {
    for (const [i, op] of names.entries()) defineOp(op, real[i]!);
  }
}

/**
 * Builds a forward graph with `build`, runs it in onnxruntime and asserts that every returned value's
 * inferred shape equals the shape onnxruntime produced. Returns the computed tensors.
 */
export async function expectShapesMatchOrt(
  inputs: Record<string, Tensor>,
  build: (e: Emitter) => string | string[],
  opset = DEFAULT_OPSET,
): Promise<Record<string, Tensor>> {
  const g = new Graph();
  for (const [name, t] of Object.entries(inputs)) g.inputs.push({ name, dtype: t.dtype, shape: [...t.dims] });
  const e = new Emitter(g, opset);
  const outs = [build(e)].flat();
  g.outputs = outs.map((o) => {
    const info = g.info(o);
    assert.ok(info?.shape, `no inferred shape for ${o}`);
    return { name: o, dtype: info.dtype, shape: info.shape };
  });
  // onnxruntime gets no inferred shapes, so it computes its own.
  const bare = g.clone();
  bare.valueInfo.clear();
  bare.outputs = bare.outputs.map((o) => ({ name: o.name, dtype: o.dtype }));
  const session = await createSession(new Model(bare, opset), { threads: 1, optimization: 'disabled' });
  const res = await runHost(session, inputs);
  for (const o of outs) {
    assert.deepEqual(g.info(o)!.shape, [...res[o]!.dims], `inferred shape of ${o} differs from onnxruntime's`);
    assert.equal(g.info(o)!.dtype, res[o]!.dtype, `inferred dtype of ${o} differs from onnxruntime's`);
  }
  return res;
}

/**
 * Moves every element of a float32 tensor that lies within `margin` of one of `kinks` to `margin` away from it
 * (keeping its side), so finite differences never straddle a kink. Returns the same tensor.
 */
export function awayFrom(t: Tensor, kinks: number[], margin = 0.1): Tensor {
  const d = t.data as Float32Array;
  for (let i = 0; i < d.length; i++) for (const k of kinks) if (Math.abs(d[i]! - k) < margin) d[i] = k + (d[i]! >= k ? margin : -margin);
  return t;
}

/** A random shape of the given rank with dims in [lo, hi], from a seed. */
export function randomShape(rank: number, seed: number, lo = 1, hi = 5): number[] {
  const rng = new Rng(seed);
  return Array.from({ length: rank }, () => lo + rng.int(hi - lo + 1));
}
