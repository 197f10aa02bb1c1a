/**
 * Intra-op threads and spin-waiting, quiet and under load (issue 19: "graft must degrade gracefully when other
 * processes hold the cores"). Times one model's full training step with each session configuration — threads 1 or 2,
 * onnxruntime's intra-op spin-waiting on or off, and `auto` (the runtime default, src/runtime) — alternating the
 * configurations round by round, first on the machine as it is and then with `--busy` extra busy-loop processes.
 * Usage: node --import tsx bench/threads-load.ts [--model nsfwjs:MobileNetV2 | --arch small] [--batch 8] [--rounds 3] [--iters 2] [--busy 1]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { linear, paramNames, smallCNN } from '../src/nn/index.js';
import { sgd } from '../src/optim/index.js';
import type { SessionOptions } from '../src/runtime/session.js';
import { compileTrainStep } from '../src/step/compile.js';
import { StepRunner } from '../src/step/runner.js';
import { Rng, Tensor } from '../src/tensor.js';
import { Network } from '../src/train/network.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'nsfwjs:MobileNetV2' },
    arch: { type: 'string', default: '' },
    batch: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '3' },
    iters: { type: 'string', default: '2' },
    busy: { type: 'string', default: '1' },
    configs: { type: 'string', default: '1-spin,1-nospin,2-spin,2-nospin,auto' },
  },
});
const batch = Number(values.batch);
const small = values.arch === 'small';
const size = small ? 28 : 224;
const ch = small ? 1 : 3;
const model = small
  ? smallCNN({ classes: 10 }).build({ inputShape: ['N', 1, size, size], seed: 0 })
  : Network.load(values.model).replaceHead(linear(1280, 10), { seed: 0 }).model;
const step = compileTrainStep({ model, trainable: paramNames(model), optimizer: sgd({ lr: 0.01, momentum: 0.9 }) });
const rng = new Rng(0);
const x = Tensor.f32([batch, ch, size, size]);
for (let i = 0; i < x.size; i++) (x.data as Float32Array)[i] = rng.normal();
const y = Tensor.i64(
  [batch],
  Array.from({ length: batch }, () => rng.int(10)),
);
/** The middle value; the mean of the two middle ones for an even count. */
const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const configs = values.configs.split(',');
const options = (c: string): SessionOptions => {
  if (c === 'auto') return {};
  const [t, s] = c.split('-');
  return { threads: Number(t), spinning: s === 'spin' };
};
const runners = new Map<string, StepRunner>();
for (const c of configs) {
  const r = await StepRunner.create(step, undefined, options(c));
  await r.train({ x, y }, [0.01]);
  runners.set(c, r);
}

const busy: ChildProcess[] = [];
const stopBusy = () => {
  for (const b of busy.splice(0)) b.kill();
};
process.on('exit', stopBusy);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));

const result: Record<string, Record<string, number>> = {};
for (const load of ['as-is', `busy${values.busy}`]) {
  if (load !== 'as-is') for (let i = 0; i < Number(values.busy); i++) busy.push(spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }));
  const times = new Map<string, number[]>(configs.map((c) => [c, []]));
  for (let round = 0; round < Number(values.rounds); round++)
    for (const c of configs) {
      const r = runners.get(c)!;
      await r.train({ x, y }, [0.01]);
      for (let i = 0; i < Number(values.iters); i++) {
        const s = performance.now();
        await r.train({ x, y }, [0.01]);
        times.get(c)!.push(performance.now() - s);
      }
    }
  stopBusy();
  result[load] = Object.fromEntries(configs.map((c) => [c, +median(times.get(c)!).toFixed(1)]));
  console.log(`${load} (loadavg ${os.loadavg()[0]!.toFixed(1)}): ${configs.map((c) => `${c} ${result[load]![c]} ms`).join(', ')}`);
}
console.log(JSON.stringify({ bench: 'threads-load', model: small ? 'small' : values.model, batch, result }));
for (const r of runners.values()) await r.release();
