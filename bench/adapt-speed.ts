/**
 * npm run bench:adapt-speed — adaptation step time against the PyTorch reference's own loop
 * (shared/ref/exp_da_shift.py; issue 19 goal 5), alternating graft and the reference round by round, since this
 * machine is shared and only same-run ratios mean anything. Protocol: SmallCNN, batch 64 source + 64 target at
 * 28 px, SGD momentum 0.9, wd 5e-4, lr annealed; source = the first --source-samples MNIST training images, target =
 * the style shift of the same images (the reference's own `--max-source`), --epochs epochs.
 *
 * Two measures per run:
 * - ms/step: the training loop alone. The reference's `train_s / iters`; graft's time from its first to its last
 *   step (onStep) over the steps between, so neither side counts start-up or the evaluation after training.
 * - total s: the whole run as each reports it (graft's `seconds`: training, checkpoint scoring, AdaBN; the
 *   reference's `total_s`: training, evaluation, AdaBN). This is the protocol of docs/benchmarks.md's "Adapt"
 *   table (full MNIST, 2 epochs: `--source-samples 60000 --epochs 2`).
 * Goal: graft's ms/step ≤ the reference's for every method, and a joint step ≤ 2 × 1.1 × graft's 64-image
 * source-only step (its share of images + 10 %).
 * Usage: npm run bench:adapt-speed [-- --methods source-only,mcc,dann --rounds 2 --source-samples 6400 --epochs 1
 *        --threads 1,2 --ref ../shared/ref]
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { adapt, parseMethod, unlabelledArrays } from '../src/adapt/index.js';
import { loadMnist, mnistDataDir } from '../src/data/idx.js';
import { styleShift } from '../src/data/shift.js';
import { smallCNN } from '../src/nn/index.js';
import { setDefaultThreads } from '../src/runtime/session.js';
import { ArraySource } from '../src/step/batches.js';

const { values } = parseArgs({
  options: {
    methods: { type: 'string', default: 'source-only,mcc,dann' },
    rounds: { type: 'string', default: '2' },
    'source-samples': { type: 'string', default: '6400' },
    epochs: { type: 'string', default: '1' },
    threads: { type: 'string', default: '1,2' },
    ref: { type: 'string', default: path.resolve(import.meta.dirname, '../../shared/ref') },
    'no-ref': { type: 'boolean', default: false },
  },
});
const methods = values.methods.split(',').map((m) => parseMethod(m, '--methods'));
const threads = values.threads.split(',').map(Number);
const k = Number(values['source-samples']);
const epochs = Number(values.epochs);
const refScript = path.join(values.ref, 'exp_da_shift.py');
const withRef = !values['no-ref'] && fs.existsSync(refScript) && spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
const REF_METHOD: Partial<Record<string, string>> = { 'source-only': 'source_only', mcc: 'mcc', dann: 'dann' };

const ds = await loadMnist();
const sx = ds.train.x.subarray(0, k * 784);
const sy = Int32Array.from(ds.train.y).subarray(0, k);
const base = {
  source: new ArraySource(sx, sy, [1, 28, 28], 10),
  sourceVal: new ArraySource(ds.test.x, ds.test.y, [1, 28, 28], 10),
  target: unlabelledArrays(styleShift(sx, { seed: 123 }), [1, 28, 28]),
  targetEval: new ArraySource(styleShift(ds.test.x, { seed: 456 }), ds.test.y, [1, 28, 28], 10),
  epochs,
  batchSize: 64,
  lr: 0.01,
};

async function graft(method: (typeof methods)[number], t: number): Promise<{ msPerStep: number; total: number }> {
  setDefaultThreads(t);
  let first = 0;
  let last = 0;
  let n = 0;
  const r = await adapt({
    ...base,
    model: smallCNN({ classes: 10 }).build({ inputShape: ['N', 1, 28, 28], seed: 0 }),
    method,
    seed: 0,
    onStep: (step) => {
      last = performance.now();
      if (step === 1) first = last;
      n = step;
    },
  });
  setDefaultThreads(undefined);
  return { msPerStep: (last - first) / (n - 1), total: r.seconds };
}

function reference(method: string): { msPerStep: number; total: number } {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-ref-'));
  const args = [refScript, '--method', method, '--seeds', '0', '--epochs', String(epochs), '--max-source', String(k), '--out', out];
  const r = spawnSync('/usr/bin/python3', args, { env: { ...process.env, MNIST_DIR: process.env.MNIST_DIR ?? mnistDataDir() }, encoding: 'utf8' });
  fs.rmSync(out, { recursive: true, force: true });
  if (r.status !== 0) throw new Error(`${refScript} failed: ${r.stderr.trim().split('\n').at(-1)}`);
  const run = JSON.parse(r.stdout.split('\n').find((l) => l.startsWith('{'))!);
  return { msPerStep: (1000 * run.train_s) / run.iters, total: run.total_s };
}

const times = new Map<string, { msPerStep: number; total: number }[]>();
const add = (key: string, v: { msPerStep: number; total: number }) => times.set(key, [...(times.get(key) ?? []), v]);
const load = [os.loadavg()[0]!];
for (let round = 0; round < Number(values.rounds); round++) {
  for (const m of methods) {
    for (const t of threads) add(`graft_t${t}_${m}`, await graft(m, t));
    const rm = REF_METHOD[m];
    if (withRef && rm) add(`ref_${m}`, reference(rm));
  }
  load.push(os.loadavg()[0]!);
  process.stderr.write(`round ${round + 1} done, load ${os.loadavg()[0]!.toFixed(1)}\n`);
}
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
const result: Record<string, unknown> = { bench: 'adapt-speed', source_samples: k, epochs, load_1min: load.map((l) => +l.toFixed(1)) };
const best = new Map<string, number>();
for (const [key, v] of times) {
  const ms = median(v.map((x) => x.msPerStep));
  result[`${key}_ms_per_step`] = +ms.toFixed(1);
  result[`${key}_total_s`] = +median(v.map((x) => x.total)).toFixed(1);
  if (key.startsWith('graft_')) {
    const m = key.replace(/^graft_t\d+_/, '');
    best.set(m, Math.min(best.get(m) ?? Infinity, ms));
  }
}
for (const m of methods) {
  const ref = times.get(`ref_${m}`);
  if (ref) result[`speedup_vs_ref_${m}`] = +(median(ref.map((x) => x.msPerStep)) / best.get(m)!).toFixed(2);
  if (m !== 'source-only' && best.has('source-only')) result[`joint_over_source_only_${m}`] = +(best.get(m)! / best.get('source-only')!).toFixed(2);
}
if (!withRef) result.reference = `not run (${refScript} or torch missing, or --no-ref)`;
console.log(JSON.stringify(result));
