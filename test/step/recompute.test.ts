import assert from 'node:assert/strict';
import { test } from 'node:test';
import { batchNorm2d, conv2d, dropout, flatten, globalAvgPool, linear, paramNames, relu6, sequential } from '../../src/nn/index.js';
import { sgd } from '../../src/optim/index.js';
import { type CompiledStep, compileTrainStep } from '../../src/step/compile.js';
import { forwardCuts, forwardNodes, type RecomputeSpec } from '../../src/step/recompute.js';
import { StepRunner } from '../../src/step/runner.js';
import { Rng, Tensor } from '../../src/tensor.js';

/** A MobileNet-like stem: conv-BN-ReLU6, depthwise conv-BN-ReLU6, pointwise conv-BN, then a dropout head. */
function tinyNet() {
  return sequential(
    conv2d(3, 8, 3, { stride: 2, padding: 1, bias: false }),
    batchNorm2d(8),
    relu6(),
    conv2d(8, 8, 3, { padding: 1, groups: 8, bias: false }),
    batchNorm2d(8),
    relu6(),
    conv2d(8, 4, 1, { bias: false }),
    batchNorm2d(4),
    conv2d(4, 16, 1, { bias: false }),
    batchNorm2d(16),
    relu6(),
    globalAvgPool(),
    flatten(),
    dropout(0.2),
    linear(16, 3),
  ).build({ inputShape: ['N', 3, 16, 16], seed: 7 });
}

function compile(recompute: RecomputeSpec): CompiledStep {
  const model = tinyNet();
  return compileTrainStep({ model, trainable: paramNames(model), optimizer: sgd({ lr: 0.05, momentum: 0.9 }), recompute });
}

/** Three steps (with a dropout seed each); the losses and every carried value afterwards. */
async function train(step: CompiledStep): Promise<{ losses: number[]; state: Map<string, Tensor> }> {
  const runner = await StepRunner.create(step);
  const rng = new Rng(3);
  const losses: number[] = [];
  for (let s = 0; s < 3; s++) {
    const x = Tensor.f32([4, 3, 16, 16]);
    for (let i = 0; i < x.size; i++) (x.data as Float32Array)[i] = rng.normal();
    const y = Tensor.i64([4], [0, 1, 2, s % 3]);
    losses.push((await runner.train({ x, y }, [0.05], 11 + s)).loss);
  }
  const state = runner.state();
  await runner.release();
  return { losses, state };
}

test('recomputed segments give bit-identical losses, parameters, momentum and BN statistics', async () => {
  const plain = compile(false);
  const g = plain.model.graph;
  const cuts = forwardCuts(g, forwardNodes(g, [plain.lossOutput]), plain.dataInput);
  assert.ok(cuts.length >= 4, `expected single-tensor cuts in the stem, got ${cuts}`);
  const chosen = [cuts[2]!, cuts[cuts.length - 3]!];
  const ckpt = compile({ cuts: chosen });
  assert.deepEqual(ckpt.recomputed?.cuts, chosen);
  assert.ok((ckpt.recomputed?.cloned ?? 0) > 4, 'forward nodes were cloned');
  const a = await train(plain);
  const b = await train(ckpt);
  assert.deepEqual(b.losses, a.losses);
  assert.equal(b.state.size, a.state.size);
  for (const [k, t] of a.state) assert.deepEqual(b.state.get(k)!.data, t.data, `carried value ${k}`);
});

test('the backward reads no activation of a recomputed segment but its end, and every clone waits for the gradient', () => {
  const step = compile({ fraction: 0.9, minBytesPerSample: 0, segments: 2 });
  const cuts = step.recomputed?.cuts ?? [];
  assert.equal(cuts.length, 2, `two segments chosen: ${cuts}`);
  const g = step.model.graph;
  const producers = g.producers();
  const clones = g.nodes.filter((n) => n.name.startsWith('recompute/') && n.op !== 'Shape' && n.op !== 'Slice' && n.op !== 'Concat');
  assert.ok(clones.length > 0);
  // every clone depends on a value computed by the backward (a grad/ node), through the gate
  const dependsOnGrad = new Map<string, boolean>();
  const dep = (v: string): boolean => {
    if (dependsOnGrad.has(v)) return dependsOnGrad.get(v)!;
    const p = producers.get(v);
    const r = !!p && (p.name.startsWith('grad/') || p.inputs.some((x) => x && dep(x)));
    dependsOnGrad.set(v, r);
    return r;
  };
  for (const c of clones) assert.ok(dep(c.outputs[0]!), `clone ${c.name} can run before the backward reaches its segment`);
  // the original activations inside the first segment are read by forward nodes only
  const fwd = new Set(forwardNodes(g, [step.lossOutput, ...step.carried.filter((c) => c.kind === 'bn').map((c) => c.output)]));
  const firstSeg = new Set<string>();
  for (const n of g.nodes) {
    if (!fwd.has(n)) continue;
    for (const o of n.outputs) firstSeg.add(o);
    if (n.outputs.includes(cuts[0]!)) break;
  }
  firstSeg.delete(cuts[0]!);
  for (const n of g.nodes)
    if (!fwd.has(n) && !n.name.startsWith('recompute/'))
      for (const x of n.inputs) assert.ok(!firstSeg.has(x) || g.info(x)?.shape?.length !== 4, `backward node ${n.name} reads the original ${x}`);
});

test("'auto' leaves small models alone", () => {
  assert.equal(compile('auto').recomputed, undefined);
});

test('the automatic choice with a batch size recomputes only from minBytesPerStep of activations per batch', () => {
  // thresholds scaled down to the tiny net: it reads a few kB per sample
  const auto = (batchSize: number) => compile({ minBytesPerSample: 1, batchSize, minBytesPerStep: 1 << 20 }).recomputed;
  assert.equal(auto(2), undefined, 'a small batch keeps every activation');
  const big = auto(4096);
  assert.ok(big && big.cuts.length > 0, 'a batch past the threshold recomputes');
  // without a batch size only the per-sample threshold applies
  assert.ok(compile({ minBytesPerSample: 1 }).recomputed?.cuts.length);
});
