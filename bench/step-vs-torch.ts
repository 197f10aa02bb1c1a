/**
 * npm run bench:step-vs-torch — graft's full training step (forward + backward + SGD momentum, everything trainable,
 * 224×224) against PyTorch's on the same architecture, alternating the two programs round by round in the same run,
 * and printing graft's speed as a ratio against PyTorch at its best thread count (issue 19 goals 1 and 4).
 *
 * Cases (`--cases`, default all three): `mobilenet_v2:8`, `mobilenet_v2:32` (graft: nsfwjs's MobileNetV2 imported
 * from tfjs with a 1000-class head; PyTorch: torchvision's mobilenet_v2) and `resnet18:16` (graft's resnet18 builder;
 * torchvision's resnet18). PyTorch runs as one persistent process per case (bench/torch_step.py --serve) with
 * OPENBLAS_NUM_THREADS=1 and the malloc settings of DEVELOPERS.md, at each of `--torch-threads` (default 1,2).
 * Each round times `--iters` graft steps and then `--iters` PyTorch steps per thread count (medians); the ratio of a
 * round is PyTorch's best median / graft's median (> 1: graft is faster), and the case's ratio the median of its rounds.
 *
 * `--busy N` starts N busy-loop processes for the whole run (another program computing: the "under load" case);
 * `--graft-threads T` sets graft's intra-op threads (default: the runtime default, src/runtime/threads.ts).
 * Usage: npm run bench:step-vs-torch [-- --cases mobilenet_v2:8 --rounds 3 --iters 3 --busy 1 --graft-threads 2]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import type { Model } from '../src/ir/model.js';
import { linear, paramNames, resnet18 } from '../src/nn/index.js';
import { sgd } from '../src/optim/index.js';
import { compileTrainStep } from '../src/step/compile.js';
import { StepRunner } from '../src/step/runner.js';
import { Rng, Tensor } from '../src/tensor.js';
import { Network } from '../src/train/network.js';

const { values } = parseArgs({
  options: {
    cases: { type: 'string', default: 'mobilenet_v2:8,mobilenet_v2:32,resnet18:16' },
    rounds: { type: 'string', default: '3' },
    iters: { type: 'string', default: '3' },
    'torch-threads': { type: 'string', default: '1,2' },
    'graft-threads': { type: 'string', default: '' },
    busy: { type: 'string', default: '0' },
  },
});
const rounds = Number(values.rounds);
const iters = Number(values.iters);
const torchThreads = values['torch-threads'].split(',').map(Number);
const graftThreads = values['graft-threads'] ? Number(values['graft-threads']) : undefined;
/** The middle value; the mean of the two middle ones for an even count. */
const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const size = 224;

/** Another program computing: N node processes spinning until this one exits. */
const busy: ChildProcess[] = Array.from({ length: Number(values.busy) }, () => spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }));
const stopBusy = () => {
  for (const b of busy) b.kill();
};
process.on('exit', stopBusy);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));

/** A persistent bench/torch_step.py --serve process: time(threads, iters) resolves to its median ms. */
async function torchPeer(model: string, batch: number) {
  const env = { ...process.env, OPENBLAS_NUM_THREADS: '1', MALLOC_MMAP_THRESHOLD_: '33554432', MALLOC_TRIM_THRESHOLD_: '1073741824' };
  const child = spawn('/usr/bin/python3', ['bench/torch_step.py', '--serve', '--model', model, '--batch', String(batch)], {
    env,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async () => {
    const r = await lines.next();
    if (r.done)
      throw new Error(
        `bench/torch_step.py (${model}, batch ${batch}) exited early; run it by hand to see why (needs /usr/bin/python3 with torch and torchvision).`,
      );
    return JSON.parse(r.value) as { ms: number };
  };
  await next(); // ready
  return {
    async time(threads: number): Promise<number> {
      child.stdin!.write(`${JSON.stringify({ threads, iters })}\n`);
      return (await next()).ms;
    },
    close: () => child.stdin!.end(),
  };
}

function graftModel(arch: string): Model {
  if (arch === 'resnet18') return resnet18({ classes: 1000 }).build({ inputShape: ['N', 3, size, size], seed: 0 });
  if (arch === 'mobilenet_v2') return Network.load('nsfwjs:MobileNetV2').replaceHead(linear(1280, 1000), { seed: 0 }).model;
  throw new Error(`unknown case model "${arch}": use resnet18 or mobilenet_v2 (e.g. --cases mobilenet_v2:8,resnet18:16).`);
}

const summary: Record<string, unknown>[] = [];
for (const c of values.cases.split(',')) {
  const [arch, b] = c.split(':') as [string, string];
  const batch = Number(b);
  const model = graftModel(arch);
  const step = compileTrainStep({ model, trainable: paramNames(model), optimizer: sgd({ lr: 0.01, momentum: 0.9 }), recompute: { batchSize: batch } });
  const runner = await StepRunner.create(step, undefined, graftThreads ? { threads: graftThreads } : {});
  const rng = new Rng(0);
  const x = Tensor.f32([batch, 3, size, size]);
  for (let i = 0; i < x.size; i++) (x.data as Float32Array)[i] = rng.normal();
  const y = Tensor.i64(
    [batch],
    Array.from({ length: batch }, () => rng.int(1000)),
  );
  await runner.train({ x, y }, [0.01]); // warm-up
  const torch = await torchPeer(arch, batch);
  const rows: { graft: number; torch: Record<number, number>; ratio: number }[] = [];
  for (let r = 0; r < rounds; r++) {
    const times: number[] = [];
    for (let i = 0; i < iters; i++) {
      const s = performance.now();
      await runner.train({ x, y }, [0.01]);
      times.push(performance.now() - s);
    }
    const graft = median(times);
    const t: Record<number, number> = {};
    for (const th of torchThreads) t[th] = await torch.time(th);
    const ratio = Math.min(...Object.values(t)) / graft;
    rows.push({ graft, torch: t, ratio });
    console.log(
      `${arch} b${batch} round ${r + 1}: graft ${graft.toFixed(0)} ms, PyTorch ${torchThreads.map((th) => `${th}t ${t[th]!.toFixed(0)}`).join(' / ')} ms → ${ratio.toFixed(2)}×`,
    );
  }
  torch.close();
  await runner.release();
  const best = (th: number) => median(rows.map((r) => r.torch[th]!));
  summary.push({
    case: `${arch}:${batch}`,
    graft_ms: +median(rows.map((r) => r.graft)).toFixed(1),
    ...Object.fromEntries(torchThreads.map((th) => [`torch${th}_ms`, +best(th).toFixed(1)])),
    ratio: +median(rows.map((r) => r.ratio)).toFixed(2),
    ratio_range: [Math.min(...rows.map((r) => r.ratio)), Math.max(...rows.map((r) => r.ratio))].map((v) => +v.toFixed(2)),
  });
}
stopBusy();
console.log(JSON.stringify({ bench: 'step-vs-torch', graft_threads: graftThreads ?? 'default', busy: busy.length, rounds, iters, cases: summary }));
