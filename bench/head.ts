/**
 * npm run bench:head — head training on cached features: 10,000 random 512-d vectors, MLP
 * 512→256→256→10 (ReLU), cross-entropy, SGD lr 0.01 momentum 0.9, 10 epochs; batch 32 (as the
 * PyTorch peer) and batch 256. Goal: ≤ 1 s. If /usr/bin/python3 can import torch, runs the same
 * head in PyTorch (1 thread) in the same run and prints the ratio.
 * Usage: npm run bench:head [-- --runs 3 --batches 32,256 --no-torch]
 */
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { mlp, paramNames } from '../src/nn/index.js';
import { sgd } from '../src/optim/index.js';
import { ArraySource } from '../src/step/batches.js';
import { compileTrainStep } from '../src/step/compile.js';
import { StepRunner } from '../src/step/runner.js';
import { Rng } from '../src/tensor.js';
import { fit } from '../src/train/fit.js';

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '3' }, batches: { type: 'string', default: '32,256' }, 'no-torch': { type: 'boolean', default: false } },
});
const batches = values.batches!.split(',').map(Number);
const runs = Number(values.runs);
const rng = new Rng(0);
const x = new Float32Array(10000 * 512);
for (let i = 0; i < x.length; i++) x[i] = rng.normal();
const y = Int32Array.from({ length: 10000 }, () => rng.int(10));
const data = new ArraySource(x, y, [512], 10);
const result: Record<string, unknown> = { bench: 'head', samples: 10000, epochs: 10, threads: Number(process.env.GRAFT_THREADS) || 2 };
for (const batch of batches) {
  const times: number[] = [];
  let steps = 0;
  for (let r = 0; r < runs; r++) {
    const model = mlp([256, 256], 10, { inFeatures: 512 }).build({ inputShape: ['N', 512], seed: r });
    const step = compileTrainStep({ model, trainable: paramNames(model), optimizer: sgd({ lr: 0.01, momentum: 0.9 }) });
    const runner = await StepRunner.create(step);
    const t0 = performance.now();
    const res = await fit(runner, data, { epochs: 10, batchSize: batch, lr: 0.01, seed: r, dropLast: false });
    times.push((performance.now() - t0) / 1000);
    steps = res.steps;
    await runner.release();
  }
  times.sort((a, b) => a - b);
  result[`batch${batch}_s`] = +times[Math.floor(times.length / 2)]!.toFixed(3);
  result[`batch${batch}_steps`] = steps;
  result[`batch${batch}_ms_per_step`] = +((1000 * times[Math.floor(times.length / 2)]!) / steps).toFixed(3);
}
if (!values['no-torch'] && spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0) {
  const env = { ...process.env, OPENBLAS_NUM_THREADS: '1', MALLOC_MMAP_THRESHOLD_: '33554432', MALLOC_TRIM_THRESHOLD_: '1073741824' };
  for (const batch of batches) {
    const r = spawnSync('/usr/bin/python3', ['bench/torch_head.py', '--runs', String(runs), '--batch', String(batch)], { env, encoding: 'utf8' });
    if (r.status !== 0) {
      result.torch_error = r.stderr.trim().split('\n').at(-1);
      break;
    }
    const t = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    result[`torch1_batch${batch}_s`] = +t.median_s.toFixed(3);
    result[`speedup_vs_torch1_batch${batch}`] = +(t.median_s / (result[`batch${batch}_s`] as number)).toFixed(2);
  }
} else result.torch = 'not available';
console.log(JSON.stringify(result));
