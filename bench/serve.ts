/**
 * `graft serve` under load: `npm run bench:serve -- [--duration 10] [--concurrency 1,8,64] [--models demo,mobilenetv2]
 * [--threads T] [--max-batch 32] [--delay 2] [--rounds 1]`.
 *
 * For each model — a demo-size CNN (28×28 grey, the demo's smallCNN) and MobileNetV2 at 224 px (`nsfwjs:MobileNetV2`,
 * converted from the installed npm package, no network) — two servers run side by side, each in a child process of
 * its own on 127.0.0.1 (so the load generator never shares their event loop): one with the naive direct runner
 * (one session.run per request) and one with the batched runner (dynamic batcher + worker thread). autocannon posts
 * the same JPEG to `/v2/models/{m}/classify` at each concurrency, alternating the two servers, and the table gives
 * throughput, p50/p99 latency, failures (non-2xx answers and socket errors; a client waits up to 120 s) and the batched server's average batch size
 * (graft_inference_count / graft_inference_exec_count from its /metrics) and each server's compute time per row
 * (graft_inference_compute_duration_seconds_sum / graft_inference_count): where the time goes.
 *
 * Before that, onnxruntime alone: ms per row at batch 1 and at the max batch in one session.run, the most batching
 * can gain when compute dominates; and the two runners alone, in this process, without HTTP or image decoding.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import sharp from 'sharp';
import { parsePreprocessConfig } from '../src/data/preprocess.js';
import { smallCNN } from '../src/nn/index.js';
import { loadModel } from '../src/onnx/io.js';
import { createSession, defaultThreads, ort } from '../src/runtime/session.js';
import type { ServeMetrics } from '../src/server/contract.js';
import { openDirectRunner } from '../src/server/direct-runner.js';
import { createServeMetrics } from '../src/server/metrics.js';
import { startServer } from '../src/server/serve.js';
import { openBatchedRunner } from '../src/server/worker-runner.js';
import { Network } from '../src/train/network.js';

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '1,8,64' },
    models: { type: 'string', default: 'demo,mobilenetv2' },
    threads: { type: 'string' },
    'max-batch': { type: 'string', default: '32' },
    delay: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '1' },
    // child mode: serve one model with one runner and print the URL
    serve: { type: 'string' },
    file: { type: 'string' },
    name: { type: 'string' },
  },
});
const threads = args.threads ? Number(args.threads) : defaultThreads();
const maxBatch = Number(args['max-batch']);
const delay = Number(args.delay);
const log = (s: string) => process.stdout.write(`${s}\n`);

if (args.serve) {
  // a child: one server, until the parent closes stdin
  const server = await startServer({
    sources: [{ kind: 'file', name: args.name!, version: '1', file: args.file! }],
    port: 0,
    pollMs: 0,
    openRunner: args.serve === 'batched' ? openBatchedRunner : openDirectRunner,
    runner: { threads, maxBatchSize: maxBatch, maxQueueDelayMs: delay, maxQueue: 1024 },
    metrics: createServeMetrics(),
  });
  process.stdout.write(`URL ${server.url}\n`);
  process.stdin.resume();
  process.stdin.on('end', () => void server.close().then(() => process.exit(0)));
} else {
  await main();
}

interface Child {
  url: string;
  proc: ChildProcess;
}

async function startChild(runner: string, name: string, file: string): Promise<Child> {
  const script = fileURLToPath(import.meta.url);
  const proc = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      script,
      '--serve',
      runner,
      '--name',
      name,
      '--file',
      file,
      '--threads',
      String(threads),
      '--max-batch',
      String(maxBatch),
      '--delay',
      String(delay),
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const lines = createInterface({ input: proc.stdout! });
  const url = await new Promise<string>((resolve, reject) => {
    lines.on('line', (l) => l.startsWith('URL ') && resolve(l.slice(4)));
    proc.on('exit', (code) => reject(new Error(`the ${runner} server for ${name} exited (code ${code}) before listening`)));
  });
  return { url, proc };
}

async function stopChild(c: Child): Promise<void> {
  const exited = new Promise((r) => c.proc.on('exit', r));
  c.proc.stdin!.end();
  await exited;
}

/** Rows, runs and compute seconds so far, from the child's /metrics. */
async function counts(url: string): Promise<{ rows: number; execs: number; compute: number }> {
  return countsOf(await (await fetch(`${url}/metrics`)).text());
}

async function metricCounts(metrics: ServeMetrics): Promise<{ rows: number; execs: number; compute: number }> {
  return countsOf((await metrics.render()).body);
}

function countsOf(body: string): { rows: number; execs: number; compute: number } {
  const v = (name: string) => Number(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(body)?.[1] ?? 0);
  return { rows: v('graft_inference_count'), execs: v('graft_inference_exec_count'), compute: v('graft_inference_compute_duration_seconds_sum') };
}

interface Row {
  model: string;
  c: number;
  runner: string;
  rps: number;
  p50: number;
  p99: number;
  failed: number;
  batch: number;
  /** Compute (session.run) ms per row inside the server. */
  msRow: number;
}

async function drive(url: string, model: string, jpeg: Buffer, connections: number, duration: number): Promise<Omit<Row, 'model' | 'c' | 'runner'>> {
  const before = await counts(url);
  const r = await autocannon({
    url: `${url}/v2/models/${model}/classify`,
    method: 'POST',
    headers: { 'content-type': 'image/jpeg' },
    body: jpeg,
    connections,
    duration,
    // a slow answer under load is latency, not a failure: only refusals (non-2xx) and broken sockets count
    timeout: 120,
  });
  const after = await counts(url);
  return {
    rps: r.requests.average,
    p50: r.latency.p50,
    p99: r.latency.p99,
    failed: r.non2xx + r.errors,
    batch: (after.rows - before.rows) / Math.max(1, after.execs - before.execs),
    msRow: (1000 * (after.compute - before.compute)) / Math.max(1, after.rows - before.rows),
  };
}

/**
 * ms per row of onnxruntime alone at batch 1 and at batch `b`, in one session: blocks of `b` runs at batch 1 and
 * one run at batch `b` (the same rows) alternate for `rounds` rounds after a warm-up, and each side keeps its best
 * block. Blocks of equal work keep a loaded machine from favouring the short runs.
 */
async function msPerRow(file: string, dims: number[], b: number, rounds = 4): Promise<{ one: number; many: number }> {
  const session = await createSession(loadModel(file), { threads });
  const per = dims.reduce((a, d) => a * d, 1);
  const feed = (n: number) => ({ [session.inputNames[0]!]: new ort.Tensor('float32', new Float32Array(n * per).fill(0.5), [n, ...dims]) });
  const [x1, xb] = [feed(1), feed(b)];
  await session.run(x1);
  await session.run(xb);
  let one = Number.POSITIVE_INFINITY;
  let many = Number.POSITIVE_INFINITY;
  for (let r = 0; r < rounds; r++) {
    let t0 = performance.now();
    for (let i = 0; i < b; i++) await session.run(x1);
    one = Math.min(one, (performance.now() - t0) / b);
    t0 = performance.now();
    await session.run(xb);
    many = Math.min(many, (performance.now() - t0) / b);
  }
  await session.release();
  return { one, many };
}

/**
 * Rows/s of a runner alone (no HTTP, no image decoding): `c` in-process clients each send one-row requests of
 * constant data for `duration` s. Returns rows/s, the average batch and compute ms/row from the runner's metrics.
 */
async function driveRunner(
  open: typeof openDirectRunner,
  m: { name: string; file: string; dims: number[] },
  c: number,
  duration: number,
): Promise<{ rps: number; batch: number; msRow: number }> {
  const metrics = createServeMetrics();
  const runner = await open(m.file, { model: m.name, version: '1', threads, maxBatchSize: maxBatch, maxQueueDelayMs: delay, maxQueue: 1024, metrics });
  const input = runner.info.inputs[0]!.name;
  const per = m.dims.reduce((a, d) => a * d, 1);
  const one = async () => runner.infer({ [input]: { datatype: 'FP32', shape: [1, ...m.dims], data: new Float32Array(per).fill(0.5) } });
  await Promise.all(Array.from({ length: c }, one)); // warm-up
  const before = await metricCounts(metrics);
  let done = 0;
  const t0 = performance.now();
  const stop = t0 + duration * 1000;
  await Promise.all(
    Array.from({ length: c }, async () => {
      while (performance.now() < stop) {
        await one();
        done++;
      }
    }),
  );
  const rps = done / ((performance.now() - t0) / 1000);
  const after = await metricCounts(metrics);
  await runner.drain();
  const rows = Math.max(1, after.rows - before.rows);
  return { rps, batch: rows / Math.max(1, after.execs - before.execs), msRow: (1000 * (after.compute - before.compute)) / rows };
}

async function main(): Promise<void> {
  const duration = Number(args.duration);
  const levels = args.concurrency.split(',').map(Number);
  const rounds = Number(args.rounds);
  log(
    `load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}; cores ${availableParallelism()}; ort threads ${threads}; max batch ${maxBatch}; max queue delay ${delay} ms; ${duration} s per point`,
  );
  const dir = await mkdtemp(join(tmpdir(), 'graft-bench-serve-'));
  try {
    const models: { name: string; file: string; dims: number[] }[] = [];
    for (const m of args.models.split(',')) {
      const file = join(dir, m, 'model.onnx');
      if (m === 'demo') {
        const net = new Network(smallCNN({ classes: 10 }).build({ inputShape: ['N', 1, 28, 28], seed: 0 }), {
          labels: Array.from({ length: 10 }, (_, i) => String(i)),
          preprocess: parsePreprocessConfig({ size: 28, channels: 1, resize: 'stretch' }),
        });
        net.save(file);
        models.push({ name: m, file, dims: [1, 28, 28] });
      } else if (m === 'mobilenetv2') {
        Network.load('nsfwjs:MobileNetV2').save(file);
        models.push({ name: m, file, dims: [3, 224, 224] });
      } else throw new Error(`unknown model "${m}"; use demo and/or mobilenetv2`);
    }
    // one photo-like 256×256 JPEG (gradients + noise), the body of every request
    const raw = Buffer.alloc(256 * 256 * 3);
    for (let i = 0; i < raw.length; i++) raw[i] = ((i % 768) / 3 + ((i * 7919) % 41)) & 255;
    const jpeg = await sharp(raw, { raw: { width: 256, height: 256, channels: 3 } })
      .jpeg({ quality: 90 })
      .toBuffer();

    log('\n## onnxruntime alone (one session.run, ms per row)\n');
    log(`| model | batch 1 | batch ${maxBatch} | gain |`);
    log('|---|---|---|---|');
    for (const m of models) {
      const { one, many } = await msPerRow(m.file, m.dims, maxBatch);
      log(`| ${m.name} | ${one.toFixed(3)} | ${many.toFixed(3)} | ${(one / many).toFixed(2)}× |`);
    }

    const top = Math.max(...levels);
    log(`\n## the runners alone (no HTTP, no decoding; ${top} in-process clients, one-row requests, ${duration} s)\n`);
    log('| model | runner | rows/s | avg batch | compute ms/row | batched/direct |');
    log('|---|---|---|---|---|---|');
    for (const m of models) {
      const d = await driveRunner(openDirectRunner, m, top, duration);
      log(`| ${m.name} | direct | ${d.rps.toFixed(1)} | ${d.batch.toFixed(2)} | ${d.msRow.toFixed(2)} | |`);
      const b = await driveRunner(openBatchedRunner, m, top, duration);
      log(`| ${m.name} | batched | ${b.rps.toFixed(1)} | ${b.batch.toFixed(2)} | ${b.msRow.toFixed(2)} | ${(b.rps / d.rps).toFixed(2)}× |`);
    }

    const rows: Row[] = [];
    for (const m of models) {
      const direct = await startChild('direct', m.name, m.file);
      const batched = await startChild('batched', m.name, m.file);
      try {
        // warm-up at the highest concurrency, so neither server pays first-run costs inside a measured point
        for (const s of [direct, batched]) await drive(s.url, m.name, jpeg, Math.max(...levels), 2);
        for (const c of levels) {
          for (let round = 0; round < rounds; round++) {
            for (const [runner, s] of [
              ['direct', direct],
              ['batched', batched],
            ] as const) {
              const r = await drive(s.url, m.name, jpeg, c, duration);
              rows.push({ model: m.name, c, runner, ...r });
              log(
                `${m.name} c=${c} ${runner}: ${r.rps.toFixed(1)} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms, failed ${r.failed}, avg batch ${r.batch.toFixed(2)}, compute ${r.msRow.toFixed(2)} ms/row`,
              );
            }
          }
        }
      } finally {
        await Promise.all([stopChild(direct), stopChild(batched)]);
      }
    }

    log('\n## through the server (POST /v2/models/{m}/classify, one 256×256 JPEG)\n');
    log('| model | concurrency | runner | req/s | p50 ms | p99 ms | p99/p50 | failed | avg batch | compute ms/row | batched/direct |');
    log('|---|---|---|---|---|---|---|---|---|---|---|');
    for (const [i, r] of rows.entries()) {
      // each batched point is paired with the direct point measured just before it
      const base = rows[i - 1];
      const ratio = r.runner === 'batched' && base ? `${(r.rps / base.rps).toFixed(2)}×` : '';
      log(
        `| ${r.model} | ${r.c} | ${r.runner} | ${r.rps.toFixed(1)} | ${r.p50} | ${r.p99} | ${(r.p99 / Math.max(r.p50, 1e-9)).toFixed(2)} | ${r.failed} | ${r.batch.toFixed(2)} | ${r.msRow.toFixed(2)} | ${ratio} |`,
      );
    }
    log(
      `\nload average at the end ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}`,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
