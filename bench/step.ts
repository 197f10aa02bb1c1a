/**
 * npm run bench:step — one training step (forward + backward + SGD momentum) of a ResNet18-shaped
 * network at 224×224, batch 16: fully trainable, and with only layer4 + fc trainable.
 * Reports ms/step and effective GFLOP/s (FLOPs = 2·MACs of every Conv/Gemm that runs: forward,
 * plus dW for trainable weights, plus dX where an upstream value is trainable).
 * If /usr/bin/python3 can import torch, times PyTorch CPU on the same architecture and batch
 * (torch.set_num_threads 1 and 2) and prints the ratio.
 * Usage: npm run bench:step [-- --batch 16 --iters 5 --size 224 --no-torch]
 */
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import type { Model } from '../src/ir/model.js';
import { paramNames, resnet18 } from '../src/nn/index.js';
import { sgd } from '../src/optim/index.js';
import { compileTrainStep } from '../src/step/compile.js';
import { StepRunner } from '../src/step/runner.js';
import { Rng, Tensor } from '../src/tensor.js';

const { values } = parseArgs({
  options: {
    batch: { type: 'string', default: '16' },
    iters: { type: 'string', default: '5' },
    size: { type: 'string', default: '224' },
    'no-torch': { type: 'boolean', default: false },
  },
});
const batch = Number(values.batch);
const iters = Number(values.iters);
const size = Number(values.size);

/** FLOPs of one step: forward of every Conv/Gemm, dW when trainable, dX when its input needs a gradient. */
function stepFlops(model: Model, trainable: Set<string>, n: number): { forward: number; step: number } {
  const g = model.graph;
  const live = new Set(trainable);
  for (const node of g.nodes) if (node.inputs.some((i) => live.has(i))) for (const o of node.outputs) live.add(o);
  let forward = 0;
  let step = 0;
  for (const node of g.nodes) {
    let f = 0;
    if (node.op === 'Conv') {
      const w = g.initializers.get(node.inputs[1]!)!.dims;
      const y = g.info(node.outputs[0]!)!.shape!;
      f = 2 * n * (y[1] as number) * (y[2] as number) * (y[3] as number) * w[1]! * w[2]! * w[3]!;
    } else if (node.op === 'Gemm') {
      const w = g.initializers.get(node.inputs[1]!)!.dims;
      f = 2 * n * w[0]! * w[1]!;
    } else continue;
    forward += f;
    step += f * (1 + (trainable.has(node.inputs[1]!) ? 1 : 0) + (live.has(node.inputs[0]!) ? 1 : 0));
  }
  return { forward, step };
}

const rng = new Rng(0);
const x = Tensor.f32([batch, 3, size, size]);
for (let i = 0; i < x.size; i++) (x.data as Float32Array)[i] = rng.normal();
const y = Tensor.i64(
  [batch],
  Array.from({ length: batch }, () => rng.int(1000)),
);
const model = resnet18({ classes: 1000 }).build({ inputShape: ['N', 3, size, size], seed: 0 });
const results: Record<string, unknown> = { bench: 'step', arch: 'resnet18', batch, size, threads: Number(process.env.GRAFT_THREADS) || 2 };
for (const mode of ['full', 'layer4']) {
  const all = paramNames(model);
  const trainable = mode === 'full' ? all : all.filter((p) => p.startsWith('layer4') || p.startsWith('fc'));
  const t0 = performance.now();
  const step = compileTrainStep({ model, trainable, optimizer: sgd({ lr: 0.01, momentum: 0.9 }), recompute: { batchSize: batch } });
  const runner = await StepRunner.create(step);
  const compileS = (performance.now() - t0) / 1000;
  await runner.train({ x, y }, [0.01]); // warm-up
  const times: number[] = [];
  for (let i = 0; i < iters; i++) {
    const s = performance.now();
    await runner.train({ x, y }, [0.01]);
    times.push(performance.now() - s);
  }
  times.sort((a, b) => a - b);
  const ms = times[Math.floor(times.length / 2)]!;
  const { step: flops } = stepFlops(model, new Set(trainable), batch);
  results[`${mode}_ms`] = +ms.toFixed(1);
  results[`${mode}_gflops`] = +(flops / ms / 1e6).toFixed(1);
  results[`${mode}_compile_s`] = +compileS.toFixed(2);
  await runner.release();
}
results.forward_gflop_per_img = +(stepFlops(model, new Set(), 1).forward / 1e9).toFixed(3);

if (!values['no-torch'] && spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0) {
  const env = { ...process.env, OPENBLAS_NUM_THREADS: '1', MALLOC_MMAP_THRESHOLD_: '33554432', MALLOC_TRIM_THRESHOLD_: '1073741824' };
  for (const threads of [1, 2]) {
    const r = spawnSync(
      '/usr/bin/python3',
      ['bench/torch_step.py', '--threads', String(threads), '--batch', String(batch), '--iters', String(iters), '--size', String(size)],
      {
        env,
        encoding: 'utf8',
      },
    );
    if (r.status !== 0) {
      results[`torch${threads}_error`] = r.stderr.trim().split('\n').at(-1);
      continue;
    }
    const t = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    results[`torch${threads}_full_ms`] = +t.full_ms.toFixed(1);
    results[`torch${threads}_layer4_ms`] = +t.layer4_ms.toFixed(1);
    results[`speedup_vs_torch${threads}_full`] = +(t.full_ms / (results.full_ms as number)).toFixed(2);
    results[`speedup_vs_torch${threads}_layer4`] = +(t.layer4_ms / (results.layer4_ms as number)).toFixed(2);
  }
} else results.torch = values['no-torch'] ? 'skipped (--no-torch)' : 'not available (/usr/bin/python3 -c "import torch" failed)';
console.log(JSON.stringify(results));
