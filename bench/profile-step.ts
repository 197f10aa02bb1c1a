/**
 * Profiles one compiled training step with onnxruntime's profiler and prints time per op type.
 * Usage: node --import tsx bench/profile-step.ts [--arch small|resnet18|mlp | --model nsfwjs:MobileNetV2 --size 224] [--batch 64] [--iters 20] [--recompute auto|off|0.7x2]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { linear, mlp, paramNames, resnet18, smallCNN } from '../src/nn/index.js';
import { sgd } from '../src/optim/index.js';
import { lowered } from '../src/runtime/session.js';
import { compileTrainStep } from '../src/step/compile.js';
import type { RecomputeSpec } from '../src/step/recompute.js';
import { StepRunner } from '../src/step/runner.js';
import { Rng, Tensor } from '../src/tensor.js';
import { Network } from '../src/train/network.js';

const { values } = parseArgs({
  options: {
    arch: { type: 'string', default: 'small' },
    batch: { type: 'string', default: '64' },
    iters: { type: 'string', default: '20' },
    // gradient checkpointing: auto (as `graft train` at --batch), off, or F×S (recompute F of the activations in S segments)
    recompute: { type: 'string', default: 'auto' },
    size: { type: 'string', default: '' },
    layer4: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    model: { type: 'string', default: '' },
    'bn-eval': { type: 'boolean', default: false },
  },
});
const batch = Number(values.batch);
const iters = Number(values.iters);
const small = values.arch === 'small';
const head = values.arch === 'mlp';
const size = Number(values.size) || (small ? 28 : 224);
const ch = small && !values.model ? 1 : 3;
const model = values.model
  ? Network.load(values.model).replaceHead(linear(Number(process.env.FEATURES ?? 1280), 10), { seed: 0 }).model
  : head
    ? mlp([256, 256], 10, { inFeatures: 512 }).build({ inputShape: ['N', 512], seed: 0 })
    : small
      ? smallCNN({ classes: 10 }).build({ inputShape: ['N', 1, size, size], seed: 0 })
      : resnet18({ classes: 1000 }).build({ inputShape: ['N', 3, size, size], seed: 0 });
const rng = new Rng(0);
const x = head ? Tensor.f32([batch, 512]) : Tensor.f32([batch, ch, size, size]);
for (let i = 0; i < x.size; i++) (x.data as Float32Array)[i] = rng.normal();
const y = Tensor.i64(
  [batch],
  Array.from({ length: batch }, () => rng.int(10)),
);
const all = paramNames(model);
const trainable = values.layer4 ? all.filter((p) => p.startsWith('layer4') || p.startsWith('fc')) : all;
const step = compileTrainStep({
  model,
  trainable,
  optimizer: sgd({ lr: 0.01, momentum: 0.9, weightDecay: 5e-4 }),
  recompute: recomputeSpec(values.recompute!),
  ...(values['bn-eval'] ? { trainBN: () => false } : {}),
});
const runner = await StepRunner.create(step);
await runner.train({ x, y }, [0.01]);
const c0 = process.cpuUsage();
const t0 = performance.now();
for (let i = 0; i < iters; i++) await runner.train({ x, y }, [0.01]);
const wall = (performance.now() - t0) / iters;
const cu = process.cpuUsage(c0);
console.log(
  `${values.arch} b${batch}: ${wall.toFixed(1)} ms/step wall, ${((cu.user + cu.system) / 1000 / iters).toFixed(1)} ms/step CPU, nodes ${lowered(step.model).graph.nodes.length}`,
);
if (values.profile) {
  const prefix = `/tmp/prof/step-${process.pid}`;
  const prof = await StepRunner.create(step, undefined, { profile: prefix });
  // the first two runs of a session page-fault its arena in (~200k minor faults for MobileNetV2 at batch 8), which
  // lands on whichever kernels first touch long-lived buffers (the forward BN's outputs); only later runs are counted
  const warm = 2;
  for (let i = 0; i < iters + warm; i++) await prof.train({ x, y }, [0.01]);
  prof.endProfiling();
  const file = readdirSync('/tmp/prof')
    .filter((f) => f.startsWith(`step-${process.pid}`))
    .map((f) => `/tmp/prof/${f}`)[0]!;
  const ev = JSON.parse(readFileSync(file, 'utf8')) as { cat: string; name: string; ts: number; dur: number; args: { op_name?: string } }[];
  const runs = ev.filter((e) => e.cat === 'Session' && e.name === 'model_run').sort((a, b) => a.ts - b.ts);
  const from = runs[warm - 1] ? runs[warm - 1]!.ts + runs[warm - 1]!.dur : 0;
  const byOp = new Map<string, number>();
  const byNode = new Map<string, number>();
  let total = 0;
  for (const e of ev) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || e.ts < from) continue;
    const op = e.args.op_name ?? '?';
    byOp.set(op, (byOp.get(op) ?? 0) + e.dur);
    byNode.set(e.name, (byNode.get(e.name) ?? 0) + e.dur);
    total += e.dur;
  }
  const n = iters;
  for (const [op, us] of [...byOp].sort((a, b) => b[1] - a[1]).slice(0, 25))
    console.log(`${op.padEnd(28)} ${(us / 1000 / n).toFixed(2).padStart(8)} ms ${((100 * us) / total).toFixed(1).padStart(5)}%`);
  console.log(`total kernel ${(total / 1000 / n).toFixed(1)} ms/step`);
  if (process.env.NODES)
    for (const [nd, us] of [...byNode].sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.NODES)))
      console.log(`  ${nd.padEnd(70)} ${(us / 1000 / n).toFixed(2)} ms`);
}

/** --recompute: 'auto' as `graft train` at this batch size (Network.fit), 'off', or `FxS` (fraction × segments). */
function recomputeSpec(v: string): RecomputeSpec {
  if (v === 'off') return false;
  if (v === 'auto') return { batchSize: batch };
  const [fraction, segments] = v.split('x').map(Number);
  return { fraction, segments };
}
