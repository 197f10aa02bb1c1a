/**
 * npm run bench:head — head training on cached features: 10,000 random 512-d vectors, MLP 512→256→256→10 (ReLU),
 * cross-entropy, SGD lr 0.01 momentum 0.9, 10 epochs, at batch 32 and 256 (issue 19 goal 3: ≥ 2× PyTorch at its best
 * thread count). If /usr/bin/python3 can import torch, the same head runs in PyTorch (bench/torch_head.py) in the same
 * run, alternating with graft round by round (this machine is shared, so only same-run ratios mean anything): each
 * round runs, per batch size, graft at every --threads count and PyTorch at every --torch-threads count, once each.
 * Prints one JSON line: per batch and engine/thread count the median seconds over the rounds, and per batch the
 * ratio PyTorch-best / graft-best (> 1: graft faster).
 * Usage: npm run bench:head [-- --rounds 3 --batches 32,256 --threads 1,2 --torch-threads 1,2 --no-torch]
 */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { mlp, paramNames } from '../src/nn/index.js';
import { sgd } from '../src/optim/index.js';
import { ArraySource } from '../src/step/batches.js';
import { compileTrainStep } from '../src/step/compile.js';
import { StepRunner } from '../src/step/runner.js';
import { Rng } from '../src/tensor.js';
import { fit } from '../src/train/fit.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    runs: { type: 'string' }, // the old name of --rounds
    batches: { type: 'string', default: '32,256' },
    threads: { type: 'string', default: process.env.GRAFT_THREADS ?? '1,2' },
    'torch-threads': { type: 'string', default: '1,2' },
    'no-torch': { type: 'boolean', default: false },
  },
});
const list = (s: string) => s.split(',').map(Number);
const batches = list(values.batches!);
const rounds = Number(values.runs ?? values.rounds);
const graftThreads = list(values.threads!);
const torchThreads =
  values['no-torch'] || spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status !== 0 ? [] : list(values['torch-threads']!);
const rng = new Rng(0);
const x = new Float32Array(10000 * 512);
for (let i = 0; i < x.length; i++) x[i] = rng.normal();
const y = Int32Array.from({ length: 10000 }, () => rng.int(10));
const data = new ArraySource(x, y, [512], 10);

/** One graft run: 10 epochs; returns seconds and steps. */
async function graft(batch: number, threads: number, seed: number): Promise<{ s: number; steps: number }> {
  const model = mlp([256, 256], 10, { inFeatures: 512 }).build({ inputShape: ['N', 512], seed });
  const step = compileTrainStep({ model, trainable: paramNames(model), optimizer: sgd({ lr: 0.01, momentum: 0.9 }) });
  const runner = await StepRunner.create(step, undefined, { threads });
  const t0 = performance.now();
  const res = await fit(runner, data, { epochs: 10, batchSize: batch, lr: 0.01, seed, dropLast: false });
  const s = (performance.now() - t0) / 1000;
  await runner.release();
  return { s, steps: res.steps };
}

/** One PyTorch run (its own process, data made before its clock starts). */
function torch(batch: number, threads: number): number {
  const env = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), MALLOC_MMAP_THRESHOLD_: '33554432', MALLOC_TRIM_THRESHOLD_: '1073741824' };
  const args = ['bench/torch_head.py', '--runs', '1', '--batch', String(batch), '--threads', String(threads)];
  const r = spawnSync('/usr/bin/python3', args, { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bench/torch_head.py failed: ${r.stderr.trim().split('\n').at(-1)}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!).median_s;
}

const times = new Map<string, number[]>();
const add = (k: string, v: number) => times.set(k, [...(times.get(k) ?? []), v]);
const steps: Record<number, number> = {};
const load = [os.loadavg()[0]!];
for (let r = 0; r < rounds; r++) {
  for (const batch of batches) {
    for (const t of graftThreads) {
      const g = await graft(batch, t, r);
      add(`graft_t${t}_b${batch}`, g.s);
      steps[batch] = g.steps;
    }
    for (const t of torchThreads) add(`torch_t${t}_b${batch}`, torch(batch, t));
  }
  load.push(os.loadavg()[0]!);
}
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
const result: Record<string, unknown> = { bench: 'head', samples: 10000, epochs: 10, rounds, load_1min: load.map((l) => +l.toFixed(1)) };
for (const batch of batches) {
  result[`batch${batch}_steps`] = steps[batch];
  const best = (engine: string, threads: number[]) => {
    let b: { t: number; s: number } | undefined;
    for (const t of threads) {
      const s = median(times.get(`${engine}_t${t}_b${batch}`)!);
      result[`${engine}_t${t}_batch${batch}_s`] = +s.toFixed(3);
      if (!b || s < b.s) b = { t, s };
    }
    return b;
  };
  const g = best('graft', graftThreads)!;
  result[`graft_batch${batch}_ms_per_step`] = +((1000 * g.s) / steps[batch]!).toFixed(3);
  const t = best('torch', torchThreads);
  if (t) result[`speedup_vs_torch_batch${batch}`] = `${(t.s / g.s).toFixed(2)}x (graft ${g.t} thread${g.t > 1 ? 's' : ''} vs torch ${t.t})`;
}
if (!torchThreads.length) result.torch = 'not run';
console.log(JSON.stringify(result));
