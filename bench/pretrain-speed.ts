/**
 * npm run bench:pretrain-speed — the demo's source pretraining (SmallCNN, 2 epochs of MNIST, batch 64, SGD momentum,
 * the reference protocol) timed in graft, then the same protocol in PyTorch (bench/torch_pretrain.py, 1 thread) in the
 * same run, so both see the same machine state. Prints one JSON line per run and the ratio.
 * Usage: npm run bench:pretrain-speed [-- --samples 60000 --seed 0 --rounds 1 --no-torch]
 */
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { loadMnist, mnistDataDir } from '../src/data/idx.js';
import { pretrain } from '../src/demo/scenarios.js';
import { ArraySource } from '../src/step/batches.js';

const { values } = parseArgs({
  options: {
    samples: { type: 'string', default: '60000' },
    seed: { type: 'string', default: '0' },
    rounds: { type: 'string', default: '1' },
    'no-torch': { type: 'boolean', default: false },
  },
});
const samples = Number(values.samples);
const seed = Number(values.seed);
const mnist = await loadMnist();
const src = new ArraySource(mnist.train.x, mnist.train.y, [1, 28, 28], 10);
const steps = 2 * Math.floor(Math.min(samples, src.length) / 64);
const torchOk = !values['no-torch'] && spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
for (let round = 0; round < Number(values.rounds); round++) {
  const sec: Record<string, number> = {};
  const net = await pretrain(src, 10, { seed, sourceSamples: samples }, sec);
  const acc = 100 * (await net.evaluate(new ArraySource(mnist.test.x, mnist.test.y, [1, 28, 28], 10), 500)).acc;
  const graft = { steps, seconds: +sec.pretrain!.toFixed(2), ms_per_step: +((1000 * sec.pretrain!) / steps).toFixed(2), source_test_acc: +acc.toFixed(2) };
  console.log(JSON.stringify({ bench: 'pretrain-speed', round, runtime: 'graft', threads: process.env.GRAFT_THREADS ?? 'default', ...graft }));
  if (!torchOk) continue;
  const r = spawnSync('/usr/bin/python3', ['bench/torch_pretrain.py', mnistDataDir(), String(steps), String(seed)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bench/torch_pretrain.py failed: ${r.stderr}`);
  const torch = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { seconds: number };
  console.log(
    JSON.stringify({ bench: 'pretrain-speed', round, runtime: 'torch-1-thread', ...torch, graft_speedup: +(torch.seconds / graft.seconds).toFixed(2) }),
  );
}
