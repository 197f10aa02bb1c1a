/**
 * A whole head fit (bench/head.ts's job: 10,000 random 512-d vectors, MLP 512→256→256→10, SGD momentum, 10 epochs) at
 * two K (optimizer steps per session.run), the two fits interleaved round by round in one process so both see the same
 * load: by default K = 16 against the K that train/fit.ts `headStepsPerRun` picks to divide an epoch's full batches
 * (its 2,000-step threshold set aside, so batch 256's 39 batches get 13). Prints median wall and CPU seconds per fit and
 * in how many rounds the second K was faster. Shows what the divisor choice saves (docs/benchmarks.md, head section,
 * session 9).
 * Usage: node --import tsx bench/head-k.ts [--batch 256] [--threads 1] [--rounds 8] [--k 16,13]
 */
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
    batch: { type: 'string', default: '256' },
    threads: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '8' },
    k: { type: 'string' },
  },
});
const batch = Number(values.batch);
const rounds = Number(values.rounds);
const n = 10000;
const rng = new Rng(0);
const x = new Float32Array(n * 512);
for (let i = 0; i < x.length; i++) x[i] = rng.normal();
const y = Int32Array.from({ length: n }, () => rng.int(10));
const data = new ArraySource(x, y, [512], 10);
const [k1, k2] = values.k ? values.k.split(',').map(Number) : [16, headStepsPerRun(Number.MAX_SAFE_INTEGER, Math.floor(n / batch))];
const ks = [k1!, k2!];
const runners = await Promise.all(
  ks.map(async (k) => {
    const model = mlp([256, 256], 10, { inFeatures: 512 }).build({ inputShape: ['N', 512], seed: 0 });
    const step = compileTrainStep({ model, trainable: paramNames(model), optimizer: sgd({ lr: 0.01, momentum: 0.9 }) });
    return StepRunner.create(step, undefined, { threads: Number(values.threads), stepsPerRun: k });
  }),
);
const wall: number[][] = [[], []];
const cpu: number[][] = [[], []];
for (let r = 0; r <= rounds; r++)
  for (const i of r % 2 ? [1, 0] : [0, 1]) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await fit(runners[i]!, data, { epochs: 10, batchSize: batch, lr: 0.01, seed: r, dropLast: false });
    const c = process.cpuUsage(c0);
    // round 0 warms both sessions' arenas
    if (r > 0) {
      wall[i]!.push((performance.now() - t0) / 1000);
      cpu[i]!.push((c.user + c.system) / 1e6);
    }
  }
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
const faster = wall[1]!.filter((w, i) => w < wall[0]![i]!).length;
console.log(
  JSON.stringify({
    bench: 'head-k',
    batch,
    threads: Number(values.threads),
    rounds,
    k: ks,
    wall_s: ks.map((_, i) => +median(wall[i]!).toFixed(3)),
    cpu_s: ks.map((_, i) => +median(cpu[i]!).toFixed(3)),
    second_faster_rounds: `${faster}/${rounds}`,
  }),
);
for (const r of runners) await r.release();
