/**
 * npm run bench:adapt-speed — adaptation step time against the PyTorch reference's own loop
 * (shared/ref/exp_da_shift.py; issue 19 goal 5), alternating graft and the reference method by method, round by
 * round, since this machine is shared and only same-run ratios mean anything. Protocol: SmallCNN, batch 64 source +
 * 64 target at 28 px, SGD momentum 0.9, wd 5e-4, lr annealed; source = the first --source-samples MNIST training
 * images, target = the style shift of the same images (the reference's own `--max-source`), --epochs epochs.
 *
 * Every method graft has runs (adabn is source-only's step plus a re-estimation, so it is not timed apart); the ones
 * the reference has (its `--method` choices, read from its --help) run on both sides. Two measures per run, each
 * as CPU time (the process's user + system, so other engineers' load counts less) and as wall time:
 * - per step: the training loop alone, from the end of the first step to the end of the last (so neither side counts
 *   its first step, which pays for warm-up: graft's first session.run lays out its arena). The reference's steps end
 *   at its `opt.step()`, timed by a wrapper that leaves the script untouched; graft's at onStep, less the checkpoint
 *   scoring in between (the reference scores nothing during training).
 * - total: the whole run as each reports it (graft: training, checkpoint scoring; the reference: training,
 *   evaluation, AdaBN). With `--source-samples 60000 --epochs 2` this is the protocol of docs/benchmarks.md's
 *   "Adapt" table.
 * Ratios are reference / graft (> 1: graft faster), from the medians over rounds, with graft at its best thread
 * count. Goals: ≥ 1.0 for every method, and each joint step ≤ 1.1 × its share of images × graft's source-only step
 * (2.2 for one target view, 3.3 for FixMatch's two).
 * Usage: npm run bench:adapt-speed -- --quick      (every method, 50 steps, 3 rounds, 1 thread: ~6 min quiet)
 *        npm run bench:adapt-speed [-- --methods source-only,mcc,dann --rounds 2 --source-samples 6400 --epochs 1
 *        --threads 1,2 --ref ../shared/ref --no-ref]
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { adapt, METHOD_INFO, METHODS, type MethodName, parseMethod, unlabelledArrays } from '../src/adapt/index.js';
import { loadMnist, mnistDataDir } from '../src/data/idx.js';
import { styleShift } from '../src/data/shift.js';
import { smallCNN } from '../src/nn/index.js';
import { setDefaultThreads } from '../src/runtime/session.js';
import { ArraySource } from '../src/step/batches.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    methods: { type: 'string' },
    rounds: { type: 'string' },
    'source-samples': { type: 'string' },
    epochs: { type: 'string' },
    threads: { type: 'string' },
    ref: { type: 'string', default: path.resolve(import.meta.dirname, '../../shared/ref') },
    'no-ref': { type: 'boolean', default: false },
  },
});
/** --quick: every method, 3,200 source images × 1 epoch = 50 steps per run, 3 rounds, 1 thread. */
const preset = values.quick ? { rounds: '3', samples: '3200', epochs: '1', threads: '1' } : { rounds: '2', samples: '6400', epochs: '1', threads: '1,2' };
const ALL = METHODS.filter((m) => m !== 'adabn');
const methods = (values.methods?.split(',') ?? ALL).map((m) => parseMethod(m, '--methods'));
const threads = (values.threads ?? preset.threads).split(',').map(Number);
const k = Number(values['source-samples'] ?? preset.samples);
const epochs = Number(values.epochs ?? preset.epochs);
const rounds = Number(values.rounds ?? preset.rounds);
const refScript = path.join(values.ref, 'exp_da_shift.py');
const PY = '/usr/bin/python3';
const t0 = performance.now();

/** The reference's methods (its argparse `--method` choices), or none when it or torch is missing. */
function referenceMethods(): Set<MethodName> {
  if (values['no-ref'] || !fs.existsSync(refScript)) return new Set();
  const r = spawnSync(PY, [refScript, '--help'], { encoding: 'utf8' });
  const choices = r.status === 0 ? /--method\s+\{([^}]+)\}/.exec(r.stdout)?.[1] : undefined;
  if (!choices) return new Set();
  return new Set(choices.split(',').map((m) => parseMethod(m)));
}
const refMethods = referenceMethods();

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

/** One run's times: per training step and for the whole run, CPU and wall, in ms. */
interface Times {
  cpuStep: number;
  wallStep: number;
  cpuTotal: number;
  wallTotal: number;
}
/** CPU time of this process so far (all threads), ms. */
const cpuNow = () => {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
};

async function graft(method: MethodName, t: number): Promise<Times> {
  setDefaultThreads(t);
  const at = () => ({ cpu: cpuNow(), wall: performance.now() });
  const start = at();
  let first = start;
  let last = start;
  let steps = 0;
  // checkpoint scoring between steps: from the step's onStep (scoring follows it) to its onEval
  const scored: { step: number; cpu: number; wall: number }[] = [];
  await adapt({
    ...base,
    model: smallCNN({ classes: 10 }).build({ inputShape: ['N', 1, 28, 28], seed: 0 }),
    method,
    seed: 0,
    onStep: (step) => {
      last = at();
      if (step === 1) first = last;
      steps = step;
    },
    onEval: (rec) => {
      const now = at();
      scored.push({ step: rec.step, cpu: now.cpu - last.cpu, wall: now.wall - last.wall });
    },
  });
  const end = at();
  setDefaultThreads(undefined);
  // the last step's scoring comes after `last`; only the earlier ones lie inside the loop's interval
  const inside = scored.filter((s) => s.step < steps).reduce((a, s) => ({ cpu: a.cpu + s.cpu, wall: a.wall + s.wall }), { cpu: 0, wall: 0 });
  return {
    cpuStep: (last.cpu - first.cpu - inside.cpu) / (steps - 1),
    wallStep: (last.wall - first.wall - inside.wall) / (steps - 1),
    cpuTotal: end.cpu - start.cpu,
    wallTotal: end.wall - start.wall,
  };
}

/**
 * Runs the reference script unchanged. A wrapper imports its `common` first (which sets the allocator and thread
 * options before torch loads, as the script itself does), then records (wall, CPU) at the end of every
 * `torch.optim.SGD.step` and at each `time.time()` call, whose last three are the script's t0, the end of training
 * and the end of the run (one seed).
 */
const WRAPPER = `
import json, os, runpy, sys, time
script = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
import common
wall, marks, steps = time.time, [], []
def mark():
    w = wall()
    marks.append((w, time.process_time()))
    return w
time.time = mark
sgd_step = common.torch.optim.SGD.step
def timed_step(self, *a, **k):
    r = sgd_step(self, *a, **k)
    steps.append((wall(), time.process_time()))
    return r
common.torch.optim.SGD.step = timed_step
runpy.run_path(script, run_name="__main__")
print("GRAFT_MARKS " + json.dumps({"marks": marks[-3:], "first": steps[0], "last": steps[-1], "steps": len(steps)}), flush=True)
`;

function reference(method: MethodName): Times {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-ref-'));
  const args = [
    '-c',
    WRAPPER,
    refScript,
    '--method',
    method.replace('-', '_'),
    '--seeds',
    '0',
    '--epochs',
    String(epochs),
    '--max-source',
    String(k),
    '--out',
    out,
  ];
  const r = spawnSync(PY, args, { env: { ...process.env, MNIST_DIR: process.env.MNIST_DIR ?? mnistDataDir() }, encoding: 'utf8' });
  fs.rmSync(out, { recursive: true, force: true });
  if (r.status !== 0) throw new Error(`${refScript} --method ${method} failed: ${r.stderr.trim().split('\n').at(-1)}`);
  const line = r.stdout.split('\n').find((l) => l.startsWith('GRAFT_MARKS '));
  if (!line) throw new Error(`${refScript} --method ${method}: the timing wrapper printed no marks; the script's output was:\n${r.stdout}`);
  type Mark = [number, number];
  const m = JSON.parse(line.slice(12)) as { marks: [Mark, Mark, Mark]; first: Mark; last: Mark; steps: number };
  const [b, , end] = m.marks;
  return {
    cpuStep: (1000 * (m.last[1] - m.first[1])) / (m.steps - 1),
    wallStep: (1000 * (m.last[0] - m.first[0])) / (m.steps - 1),
    cpuTotal: 1000 * (end[1] - b[1]),
    wallTotal: 1000 * (end[0] - b[0]),
  };
}

const times = new Map<string, Times[]>();
const add = (key: string, v: Times) => times.set(key, [...(times.get(key) ?? []), v]);
const load = [os.loadavg()[0]!];
for (let round = 0; round < rounds; round++) {
  for (const m of methods) {
    for (const t of threads) add(`graft_t${t}_${m}`, await graft(m, t));
    if (refMethods.has(m)) add(`ref_${m}`, reference(m));
  }
  load.push(os.loadavg()[0]!);
  process.stderr.write(`round ${round + 1}/${rounds} done, load ${os.loadavg()[0]!.toFixed(1)}, ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
}

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
};
const med = (key: string, f: keyof Times) => {
  const v = times.get(key);
  return v ? median(v.map((x) => x[f])) : undefined;
};
/** graft's best thread count for a measure: the lowest median. */
const best = (m: MethodName, f: keyof Times) => Math.min(...threads.map((t) => med(`graft_t${t}_${m}`, f)!));
const fmt = (v: number | undefined, d = 1) => (v === undefined ? '–' : v.toFixed(d));
const ratio = (ref: number | undefined, g: number) => (ref === undefined ? undefined : ref / g);
/** A ratio for the table: '0.85×', or '–' without a reference. */
const asRatio = (v: number | undefined) => (v === undefined ? '–' : `${v.toFixed(2)}×`);

const result: Record<string, unknown> = { bench: 'adapt-speed', source_samples: k, epochs, rounds, threads, load_1min: load.map((l) => +l.toFixed(1)) };
const rows: string[] = [
  '| method | graft CPU ms/step | ref CPU ms/step | **CPU ratio** | graft wall ms/step | ref wall ms/step | wall ratio | graft total s (CPU / wall) | ref total s (CPU / wall) | total ratio (CPU / wall) | graft joint / source-only (CPU; limit) | ref joint / source-only (CPU) |',
  '|---|---|---|---|---|---|---|---|---|---|---|---|',
];
for (const m of methods) {
  const g = { cpuStep: best(m, 'cpuStep'), wallStep: best(m, 'wallStep'), cpuTotal: best(m, 'cpuTotal'), wallTotal: best(m, 'wallTotal') };
  const ref = {
    cpuStep: med(`ref_${m}`, 'cpuStep'),
    wallStep: med(`ref_${m}`, 'wallStep'),
    cpuTotal: med(`ref_${m}`, 'cpuTotal'),
    wallTotal: med(`ref_${m}`, 'wallTotal'),
  };
  for (const t of threads)
    for (const f of ['cpuStep', 'wallStep', 'cpuTotal', 'wallTotal'] as const) result[`graft_t${t}_${m}_${f}_ms`] = +fmt(med(`graft_t${t}_${m}`, f));
  for (const f of ['cpuStep', 'wallStep', 'cpuTotal', 'wallTotal'] as const) if (ref[f] !== undefined) result[`ref_${m}_${f}_ms`] = +fmt(ref[f]);
  const r = {
    cpu: ratio(ref.cpuStep, g.cpuStep),
    wall: ratio(ref.wallStep, g.wallStep),
    cpuTotal: ratio(ref.cpuTotal, g.cpuTotal),
    wallTotal: ratio(ref.wallTotal, g.wallTotal),
  };
  if (r.cpu !== undefined)
    Object.assign(result, {
      [`ratio_cpu_step_${m}`]: +fmt(r.cpu, 2),
      [`ratio_wall_step_${m}`]: +fmt(r.wall, 2),
      [`ratio_cpu_total_${m}`]: +fmt(r.cpuTotal, 2),
      [`ratio_wall_total_${m}`]: +fmt(r.wallTotal, 2),
    });
  let joint = '–';
  let refJoint: number | undefined;
  if (m !== 'source-only' && methods.includes('source-only')) {
    const share = 1 + METHOD_INFO[m].targetViews;
    const j = g.cpuStep / best('source-only', 'cpuStep');
    result[`joint_over_source_only_cpu_${m}`] = +fmt(j, 2);
    joint = `${fmt(j, 2)} (≤ ${fmt(1.1 * share, 1)}${j <= 1.1 * share ? '' : ', not met'})`;
    const rs = med('ref_source-only', 'cpuStep');
    if (ref.cpuStep !== undefined && rs !== undefined) refJoint = ref.cpuStep / rs;
  }
  rows.push(
    `| ${m} | ${fmt(g.cpuStep)} | ${fmt(ref.cpuStep)} | ${asRatio(r.cpu)} | ${fmt(g.wallStep)} | ${fmt(ref.wallStep)} | ${asRatio(r.wall)} | ${fmt(g.cpuTotal / 1000)} / ${fmt(g.wallTotal / 1000)} | ${fmt(ref.cpuTotal && ref.cpuTotal / 1000)} / ${fmt(ref.wallTotal && ref.wallTotal / 1000)} | ${asRatio(r.cpuTotal)} / ${asRatio(r.wallTotal)} | ${joint} | ${fmt(refJoint, 2)} |`,
  );
}
if (!refMethods.size) result.reference = `not run (${refScript} or torch missing, or --no-ref)`;
result.seconds = +((performance.now() - t0) / 1000).toFixed(0);
console.log(rows.join('\n'));
console.log(JSON.stringify(result));
