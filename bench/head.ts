/**
 * npm run bench:head — head training on cached features: 10,000 random 512-d vectors, MLP 512→256→256→10 (ReLU),
 * cross-entropy, SGD lr 0.01 momentum 0.9, 10 epochs, at batch 32 and 256 (issue 19 goal 3: ≥ 2× PyTorch at its best
 * thread count). If /usr/bin/python3 can import torch, the same head runs in PyTorch (bench/torch_head.py) in the same
 * run, alternating with graft round by round (this machine is shared, so only same-run ratios mean anything): each
 * round runs, per batch size, graft at every --threads count and PyTorch at every --torch-threads count, once each.
 * Prints one JSON line: per batch and engine/thread count the median seconds over the rounds, and per batch the
 * ratio PyTorch-best / graft-best (> 1: graft faster).
 * `--steps-per-run 1,16` runs graft at each K (optimizer steps per session.run, step/repeat.ts) in the same rounds,
 * and adds each run's CPU ms per step (process CPU time over the fit; on a loaded machine the trustworthy figure)
 * and, per K, the ratio of K=1's CPU per step to K's. PyTorch's CPU seconds come from its time.process_time().
 * `auto` in --steps-per-run is the library's default K for the fit (train/fit.ts headStepsPerRun: 1 below 2,000 steps,
 * so at batch 256's 400; else a K from 16 down to 8 that divides an epoch's full batches where one can).
 * Usage: npm run bench:head [-- --rounds 3 --batches 32,256 --threads 1,2 --torch-threads 1,2 --steps-per-run 1,16,auto --no-torch]
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
import { fit, headStepsPerRun } from '../src/train/fit.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    runs: { type: 'string' }, // the old name of --rounds
    batches: { type: 'string', default: '32,256' },
    threads: { type: 'string', default: process.env.GRAFT_THREADS ?? '1,2' },
    'torch-threads': { type: 'string', default: '1,2' },
    'steps-per-run': { type: 'string', default: '1,16' },
    'no-torch': { type: 'boolean', default: false },
  },
});
const list = (s: string) => s.split(',').map(Number);
const batches = list(values.batches!);
const rounds = Number(values.runs ?? values.rounds);
const graftThreads = list(values.threads!);
/** K per run: a number, or 'auto' for the library's default at each batch size (train/fit.ts headStepsPerRun). */
const stepsPerRun = values['steps-per-run']!.split(',').map((v) => (v === 'auto' ? 'auto' : Number(v)));
const torchThreads =
  values['no-torch'] || spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status !== 0 ? [] : list(values['torch-threads']!);
const rng = new Rng(0);
const x = new Float32Array(10000 * 512);
for (let i = 0; i < x.length; i++) x[i] = rng.normal();
const y = Int32Array.from({ length: 10000 }, () => rng.int(10));
const data = new ArraySource(x, y, [512], 10);

/** One graft run: 10 epochs at K steps per run; returns wall seconds, CPU seconds (the fit only) and steps. */
async function graft(batch: number, threads: number, kOpt: number | 'auto', seed: number): Promise<{ s: number; cpu: number; steps: number }> {
  const model = mlp([256, 256], 10, { inFeatures: 512 }).build({ inputShape: ['N', 512], seed });
  const step = compileTrainStep({ model, trainable: paramNames(model), optimizer: sgd({ lr: 0.01, momentum: 0.9 }) });
  const full = Math.floor(data.length / batch);
  const k = kOpt === 'auto' ? headStepsPerRun(10 * Math.ceil(data.length / batch), full) : kOpt;
  const runner = await StepRunner.create(step, undefined, { threads, stepsPerRun: k });
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const res = await fit(runner, data, { epochs: 10, batchSize: batch, lr: 0.01, seed, dropLast: false });
  const s = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  await runner.release();
  return { s, cpu: (c.user + c.system) / 1e6, steps: res.steps };
}

/** One PyTorch run (its own process, data made before its clock starts): wall and CPU seconds. */
function torch(batch: number, threads: number): { s: number; cpu: number } {
  const env = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), MALLOC_MMAP_THRESHOLD_: '33554432', MALLOC_TRIM_THRESHOLD_: '1073741824' };
  const args = ['bench/torch_head.py', '--runs', '1', '--batch', String(batch), '--threads', String(threads)];
  const r = spawnSync('/usr/bin/python3', args, { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bench/torch_head.py failed: ${r.stderr.trim().split('\n').at(-1)}`);
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  return { s: out.median_s, cpu: out.median_cpu_s };
}

const times = new Map<string, number[]>();
const cpus = new Map<string, number[]>();
const add = (m: Map<string, number[]>, k: string, v: number) => m.set(k, [...(m.get(k) ?? []), v]);
const steps: Record<number, number> = {};
const load = [os.loadavg()[0]!];
for (let r = 0; r < rounds; r++) {
  for (const batch of batches) {
    for (const t of graftThreads)
      for (const k of stepsPerRun) {
        const g = await graft(batch, t, k, r);
        add(times, `graft_t${t}_k${k}_b${batch}`, g.s);
        add(cpus, `graft_t${t}_k${k}_b${batch}`, g.cpu);
        steps[batch] = g.steps;
      }
    for (const t of torchThreads) {
      const p = torch(batch, t);
      add(times, `torch_t${t}_b${batch}`, p.s);
      add(cpus, `torch_t${t}_b${batch}`, p.cpu);
    }
  }
  load.push(os.loadavg()[0]!);
}
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
const result: Record<string, unknown> = { bench: 'head', samples: 10000, epochs: 10, rounds, load_1min: load.map((l) => +l.toFixed(1)) };
const graftRuns = graftThreads.flatMap((t) => stepsPerRun.map((k) => ({ key: `t${t}_k${k}`, label: `graft ${t} thread${t > 1 ? 's' : ''}, K=${k}` })));
const torchRuns = torchThreads.map((t) => ({ key: `t${t}`, label: `torch ${t}` }));
for (const batch of batches) {
  result[`batch${batch}_steps`] = steps[batch];
  const best = (engine: string, runs: { key: string; label: string }[]) => {
    let b: { label: string; s: number } | undefined;
    for (const run of runs) {
      const key = `${engine}_${run.key}_b${batch}`;
      const s = median(times.get(key)!);
      result[`${engine}_${run.key}_batch${batch}_s`] = +s.toFixed(3);
      result[`${engine}_${run.key}_batch${batch}_cpu_ms_per_step`] = +((1000 * median(cpus.get(key)!)) / steps[batch]!).toFixed(3);
      if (!b || s < b.s) b = { label: run.label, s };
    }
    return b;
  };
  const g = best('graft', graftRuns)!;
  result[`graft_batch${batch}_ms_per_step`] = +((1000 * g.s) / steps[batch]!).toFixed(3);
  for (const t of graftThreads)
    for (const k of stepsPerRun.filter((k) => k !== 1 && stepsPerRun.includes(1))) {
      const cpu = (kk: number) => median(cpus.get(`graft_t${t}_k${kk}_b${batch}`)!);
      result[`graft_t${t}_batch${batch}_cpu_k1_over_k${k}`] = +(cpu(1) / cpu(k)).toFixed(2);
    }
  const t = best('torch', torchRuns);
  if (t) result[`speedup_vs_torch_batch${batch}`] = `${(t.s / g.s).toFixed(2)}x (${g.label} vs ${t.label})`;
}
if (!torchThreads.length) result.torch = 'not run';
console.log(JSON.stringify(result));
