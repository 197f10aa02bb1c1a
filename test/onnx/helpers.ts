/** Shared builders for the ONNX I/O tests: a small hand-made model that exercises every attribute kind. */
import assert from 'node:assert/strict';
import { Graph } from '../../src/ir/graph.js';
import { Model } from '../../src/ir/model.js';
import { createSession, runHost } from '../../src/runtime/session.js';
import { Tensor } from '../../src/tensor.js';

/**
 * x[N,F] → Mul(scale[F]) → Gemm(W[3,F],B, alpha, transB) → Relu → Transpose(perm) → Mul(Unsqueeze(Constant floats, axes:int64 init))
 * → Add(Constant tensor) → Pad(pads:int64 init, mode string) → y[3, M].
 * Attributes: int (transB), float (alpha), ints (perm), floats (value_floats), string (mode), tensor (value).
 */
export function buildModel(opset = 17, features = 4): Model {
  const g = new Graph();
  g.name = 'tiny';
  g.inputs.push({ name: 'x', dtype: 'float32', shape: ['N', features] });
  g.outputs.push({ name: 'y', dtype: 'float32', shape: [3, 'M'] });
  g.addInitializer('scale', Tensor.f32([features], wave(features, 0.3, 1)));
  g.addInitializer('W', Tensor.f32([3, features], wave(3 * features, 1.3, 0.5)));
  g.addInitializer('B', Tensor.f32([3], [0.05, -0.1, 0.2]));
  g.addInitializer('axes', Tensor.i64([1], [1]));
  g.addInitializer('pads', Tensor.i64([4], [0, 1, 0, 1]));
  g.addNode('Constant', [], ['cf'], { value_floats: [1, 2.5, -3] }, 'const_floats');
  g.addNode('Constant', [], ['ct'], { value: Tensor.f32([1], [0.25]) }, 'const_tensor');
  g.addNode('Mul', ['x', 'scale'], ['xs'], {}, 'mul_scale');
  g.addNode('Gemm', ['xs', 'W', 'B'], ['h'], { alpha: 0.5, beta: 1, transB: 1 }, 'gemm');
  g.addNode('Relu', ['h'], ['r'], {}, 'relu');
  g.addNode('Transpose', ['r'], ['t'], { perm: [1, 0] }, 'transpose');
  g.addNode('Unsqueeze', ['cf', 'axes'], ['u'], {}, 'unsqueeze');
  g.addNode('Mul', ['t', 'u'], ['m'], {}, 'mul');
  g.addNode('Add', ['m', 'ct'], ['a'], {}, 'add');
  g.addNode('Pad', ['a', 'pads'], ['y'], { mode: 'constant' }, 'pad');
  g.valueInfo.set('h', { name: 'h', dtype: 'float32', shape: ['N', 3] });
  g.valueInfo.set('t', { name: 't', dtype: 'float32', shape: [3, 'N'] });
  const m = new Model(g, opset);
  m.irVersion = opset >= 21 ? 10 : 8;
  m.producer = 'graft-test';
  m.metadata = { 'graft.preprocess': JSON.stringify({ mean: [0.5], std: [0.25] }), author: 'tests' };
  return m;
}

/** Deterministic values amp·sin(i·k): varied signs and magnitudes, no RNG needed. */
function wave(n: number, k: number, amp: number): number[] {
  return Array.from({ length: n }, (_, i) => Math.sin(i * k + 0.3) * amp);
}

/** A fixed input batch for {@link buildModel}. */
export function sampleInput(n = 5, features = 4): Tensor {
  return Tensor.f32([n, features], wave(n * features, 1.7, 2));
}

/** A plain, comparable picture of a model (Graph holds private counters that deepEqual would trip on). */
export function describe(m: Model): unknown {
  const g = m.graph;
  const t = (x: Tensor) => ({ dtype: x.dtype, dims: [...x.dims], data: Array.from(x.data as ArrayLike<number | bigint>, String) });
  return {
    opset: m.opset,
    irVersion: m.irVersion,
    producer: m.producer,
    otherOpsets: m.otherOpsets,
    metadata: m.metadata,
    name: g.name,
    inputs: g.inputs,
    outputs: g.outputs,
    valueInfo: [...g.valueInfo.values()].sort((a, b) => a.name.localeCompare(b.name)),
    initializers: [...g.initializers].map(([k, v]) => [k, t(v)]),
    nodes: g.nodes.map((n) => ({
      ...n,
      domain: n.domain ?? '',
      attrs: Object.fromEntries(Object.entries(n.attrs).map(([k, v]) => [k, v instanceof Tensor ? t(v) : v])),
    })),
  };
}

/** Runs a model (in memory) on `x` and returns output "y". */
export async function run(model: Model, x: Tensor): Promise<Tensor> {
  const s = await createSession(model);
  try {
    const out = await runHost(s, { x });
    assert.ok(out.y, 'model has output y');
    return out.y;
  } finally {
    await s.release();
  }
}
