/**
 * bench/memory.ts — issue 19 goal 2: peak RSS of a MobileNetV2 fine-tune at batch 32, whole run, graft vs PyTorch.
 *
 * Two jobs, each run by graft and by its PyTorch peer (bench/torch_memory.py) in a fresh process under
 * `/usr/bin/time -v` (its "Maximum resident set size" is the peak), one after the other:
 *   - `run`: a whole `graft train --mode fine-tune --freeze-epochs 1 --epochs 1 --batch-size 32` run on
 *     `nsfwjs:MobileNetV2` (224 px, MLP head 256-256, SGD momentum 0.9): a 5-class folder of Fashion-MNIST PNGs
 *     (--per-class each; 15 % held out for validation, so 5 steps per epoch at the default 40) and a test folder
 *     (--test-per-class each). The head phase (backbone features computed once, the head trained on them), the
 *     full phase with its validation pass, then the end of the run (model.onnx written, final val and test
 *     evaluation, calibration, predictions, report). The PyTorch peer: torchvision mobilenet_v2 with the same
 *     head, the same images, batch, steps and SGD (a head epoch on no_grad features, then a full epoch),
 *     evaluation of val and test at the batch under no_grad, then torch.onnx.export.
 *   - `step`: one full training step at --step-batch (default 8), after one warm-up step (the issue's table).
 * Each child also reports its own high-water mark (VmHWM) at the end of each part (after training, after the
 * epoch's validation, after the end of the run), so the output says where the peak is reached.
 *
 * graft's child is this file with `--child`: it calls `runTraining`, the function `graft train` calls.
 *
 * Usage: node --import tsx bench/memory.ts [--out .graft-cache/bench-memory] [--per-class 40] [--only graft|torch] [--job run|step|both] [--recompute auto|off|0.7x3]
 * Prints one JSON line per process and a table: graft's peak, PyTorch's, and graft / PyTorch.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { writeClassFolders } from './fashion-folder.js';

const { values } = parseArgs({
  options: {
    out: { type: 'string', default: '.graft-cache/bench-memory' },
    'per-class': { type: 'string', default: '40' },
    'test-per-class': { type: 'string', default: '16' },
    batch: { type: 'string', default: '32' },
    'step-batch': { type: 'string', default: '8' },
    only: { type: 'string', default: '' },
    job: { type: 'string', default: 'both' },
    child: { type: 'string', default: '' },
    /** graft's gradient checkpointing: auto (the default), off, or (step job only) a prefix fraction and segments (e.g. 0.7x3). */
    recompute: { type: 'string', default: 'auto' },
  },
});
const out = path.resolve(values.out!);
const batch = Number(values.batch);
const stepBatch = Number(values['step-batch']);
// 'off', 'auto', or FRACTION[xSEGMENTS] (e.g. 0.7x3)
const [fraction, segments] = (values.recompute ?? '').split('x').map(Number);
const recompute = values.recompute === 'off' ? false : values.recompute === 'auto' ? 'auto' : { fraction, segments };
const trainDir = path.join(out, 'data', 'train');
const testDir = path.join(out, 'data', 'test');
const CLASSES = ['tshirt-top', 'trouser', 'pullover', 'dress', 'coat'];

/** VmRSS and VmHWM of this process, in MB (from /proc/self/status). */
function mem(): { rss: number; hwm: number } {
  const s = fs.readFileSync('/proc/self/status', 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? Number.NaN);
  return { rss: Math.round(kb('VmRSS') / 1024), hwm: Math.round(kb('VmHWM') / 1024) };
}

if (values.child) await child(values.child);
else await main();

async function child(job: string): Promise<void> {
  const { configureProgress } = await import('../src/util/progress.js');
  configureProgress({ quiet: true });
  const parts: Record<string, { rss: number; hwm: number }> = { start: mem() };
  if (job === 'step') {
    const { linear, paramNames } = await import('../src/nn/index.js');
    const { sgd } = await import('../src/optim/index.js');
    const { compileTrainStep } = await import('../src/step/compile.js');
    const { StepRunner } = await import('../src/step/runner.js');
    const { Rng, Tensor } = await import('../src/tensor.js');
    const { Network } = await import('../src/train/network.js');
    const model = Network.load('nsfwjs:MobileNetV2').replaceHead(linear(1280, 10), { seed: 0 }).model;
    const step = compileTrainStep({
      model,
      trainable: paramNames(model),
      optimizer: sgd({ lr: 0.01, momentum: 0.9 }),
      recompute: recompute === 'auto' ? { batchSize: stepBatch } : recompute,
    });
    const runner = await StepRunner.create(step);
    parts.session = mem();
    const rng = new Rng(0);
    const x = Tensor.f32([stepBatch, 3, 224, 224]);
    for (let i = 0; i < x.size; i++) (x.data as Float32Array)[i] = rng.normal();
    const y = Tensor.i64(
      [stepBatch],
      Array.from({ length: stepBatch }, () => rng.int(10)),
    );
    for (let i = 0; i < 2; i++) await runner.train({ x, y }, [0.01]);
    parts.steps = mem();
    await runner.release();
  } else {
    const { parseConfig } = await import('../src/run/config.js');
    const { runTraining } = await import('../src/run/train.js');
    const cfg = parseConfig(
      {
        data: { train: trainDir, test: testDir },
        model: { backbone: 'nsfwjs:MobileNetV2', head: { type: 'mlp', hidden: [256, 256], activation: 'relu' } },
        train: {
          mode: 'fine-tune',
          freezeEpochs: 1,
          epochs: 1,
          batchSize: batch,
          optimizer: { name: 'sgd', lr: 0.01, momentum: 0.9 },
          ...(values.recompute === 'off' ? { recompute: 'off' } : {}),
        },
        run: { dir: path.join(out, 'runs'), name: 'memory', seed: 0, overwrite: true },
      },
      'bench memory',
    );
    let last = '';
    await runTraining(cfg, {
      source: 'bench memory',
      onEvent: (e) => {
        // the high-water mark as each part of the run ends: the last step, the epoch (after its validation), the run
        if (e.type === 'step') parts[`${e.phase} train`] = mem();
        else if (e.type === 'epoch') parts[`${e.phase} epoch`] = mem();
        else if (e.type === 'finished') parts.end = mem();
        last = e.type;
      },
    });
    if (last !== 'finished') throw new Error(`the run ended on a "${last}" event`);
  }
  console.log(JSON.stringify({ peer: 'graft', job, parts }));
}

async function makeFolders(): Promise<void> {
  const stamp = path.join(out, 'data', `done-${values['per-class']}-${values['test-per-class']}`);
  if (fs.existsSync(stamp)) return;
  fs.rmSync(path.join(out, 'data'), { recursive: true, force: true });
  const { loadFashionMnist } = await import('../src/data/idx.js');
  const fm = await loadFashionMnist();
  for (const [split, dir, per] of [
    [fm.train, trainDir, Number(values['per-class'])],
    [fm.test, testDir, Number(values['test-per-class'])],
  ] as const)
    await writeClassFolders(split, dir, CLASSES.entries(), per);
  fs.writeFileSync(stamp, '');
}

interface Measured {
  peer: string;
  job: string;
  peakMB: number;
  seconds: number;
  parts: Record<string, { rss: number; hwm: number }>;
}

/** Runs `cmd` under /usr/bin/time -v; the child prints one JSON line (its parts), time -v the peak. */
function measure(peer: string, job: string, cmd: string[], env: NodeJS.ProcessEnv): Measured {
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-v', ...cmd], { env, encoding: 'utf8', maxBuffer: 64 << 20 });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${peer} ${job} failed (exit ${r.status}):\n${r.stdout}\n${r.stderr.slice(-4000)}`);
  const kb = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr)?.[1]);
  const line = r.stdout
    .trim()
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('{'));
  const parts = line ? (JSON.parse(line) as { parts: Measured['parts'] }).parts : {};
  const m = { peer, job, peakMB: Math.round(kb / 1024), seconds: Math.round(seconds * 10) / 10, parts };
  console.log(JSON.stringify(m));
  return m;
}

async function main(): Promise<void> {
  await makeFolders();
  // graft's own environment as a user runs it; PyTorch with OpenBLAS single-threaded (its threads are torch's own)
  const env = { ...process.env, OPENBLAS_NUM_THREADS: '1' };
  const threads = String(Number(process.env.GRAFT_THREADS ?? os.availableParallelism()));
  const jobs = values.job === 'both' ? ['run', 'step'] : [values.job!];
  const rows: { job: string; graft?: Measured; torch?: Measured }[] = [];
  for (const job of jobs) {
    const row: (typeof rows)[number] = { job };
    if (values.only !== 'torch')
      row.graft = measure(
        'graft',
        job,
        [
          process.execPath,
          '--import',
          'tsx',
          'bench/memory.ts',
          '--child',
          job,
          '--out',
          out,
          '--batch',
          String(batch),
          '--step-batch',
          String(stepBatch),
          '--recompute',
          values.recompute!,
        ],
        env,
      );
    if (values.only !== 'graft') {
      const args = ['bench/torch_memory.py', '--job', job, '--train', trainDir, '--test', testDir, '--out', out, '--threads', threads];
      row.torch = measure('torch', job, ['/usr/bin/python3', ...args, '--batch', String(job === 'step' ? stepBatch : batch)], env);
    }
    rows.push(row);
  }
  const load = os.loadavg().map((l) => l.toFixed(2));
  let rev = '?';
  try {
    rev = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {}
  console.log(`\n${os.availableParallelism()} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, load ${load.join(' ')}, graft ${rev}, ${threads} threads\n`);
  console.log('| job | graft peak RSS | PyTorch peak RSS | graft / PyTorch | graft by part (VmHWM at its end) |\n|---|---|---|---|---|');
  for (const r of rows) {
    const what = r.job === 'run' ? `MobileNetV2 batch ${batch}, whole run (train, eval, export)` : `MobileNetV2 one step, batch ${stepBatch}`;
    const g = r.graft?.peakMB;
    const t = r.torch?.peakMB;
    const parts = r.graft
      ? Object.entries(r.graft.parts)
          .map(([k, v]) => `${k} ${v.hwm}`)
          .join(', ')
      : '';
    console.log(`| ${what} | ${g ?? '–'} MB | ${t ?? '–'} MB | ${g && t ? `${(g / t).toFixed(2)}×` : '–'} | ${parts} |`);
  }
}
