/**
 * Distributed feature extraction on this machine: `npm run bench:scale [-- --n 384 --shard 32 --workers 1,2,4]`.
 *
 * Starts a loopback redis-server, generates N JPEGs, and extracts the features of a small ResNet-18 (width 16,
 * 64×64 input) over them (a) locally in this process with one onnxruntime thread (the per-image cost), then
 * (b) with 1, 2 and 4 `graft worker` processes (one thread each) through `distributedFeatures`, a fresh store
 * each time. Prints wall time, images/s, speed-up over one worker, and the per-job overhead: what one worker's
 * run costs beyond the local run, divided by its shard jobs (queueing, the extractor load per worker, the
 * store's per-shard files, the coordinator's read-back). On a 2-core machine 4 workers cannot beat 2.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Queue } from 'bullmq';
import sharp from 'sharp';
import { parsePreprocessConfig } from '../src/data/preprocess.js';
import { cachedFeatures } from '../src/features/cache.js';
import { extractSubgraph, findCut } from '../src/ir/surgery.js';
import { resnet18 } from '../src/nn/index.js';
import { EXTRACT_QUEUE, QUEUE_PREFIX, redisConnection } from '../src/scale/connection.js';
import { distributedFeatures } from '../src/scale/extract.js';
import { queueStatus } from '../src/scale/status.js';
import { Rng } from '../src/tensor.js';
import { GRAFT_BIN } from '../test/cli-run.js';
import { startRedis } from '../test/redis.js';

const { values: args } = parseArgs({
  options: { n: { type: 'string', default: '384' }, shard: { type: 'string', default: '32' }, workers: { type: 'string', default: '1,2,4' } },
});
const N = Number(args.n);
const SHARD = Number(args.shard);
const COUNTS = args.workers.split(',').map(Number);
const log = (s: string) => process.stdout.write(`${s}\n`);
const load = () =>
  loadavg()
    .map((x) => x.toFixed(1))
    .join(' ');
log(`bench:scale — ${N} images, shards of ${SHARD}, cores ${availableParallelism()}, load average ${load()}`);

const dir = await mkdtemp(join(tmpdir(), 'graft-bench-scale-'));
const redis = await startRedis();
try {
  const rng = new Rng(1);
  const files: string[] = [];
  const raw = Buffer.alloc(96 * 96 * 3);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < raw.length; j++) raw[j] = rng.int(256);
    const f = join(dir, `img${i}.jpg`);
    await writeFile(
      f,
      await sharp(raw, { raw: { width: 96, height: 96, channels: 3 } })
        .jpeg()
        .toBuffer(),
    );
    files.push(f);
  }
  const full = resnet18({ classes: 10, width: 16 }).build({ inputShape: ['N', 3, 64, 64], seed: 1 });
  const model = extractSubgraph(full, findCut(full).value);
  const preprocess = parsePreprocessConfig({ size: 64 });
  const items = files.map((path) => ({ path }));

  let t0 = performance.now();
  await cachedFeatures({ model, preprocess, items, batchSize: 32, cacheDir: join(dir, 'local'), threads: 1 });
  const local = (performance.now() - t0) / 1000;
  log(`local, 1 process × 1 thread: ${local.toFixed(2)} s, ${(N / local).toFixed(1)} images/s, ${((1000 * local) / N).toFixed(2)} ms/image`);

  const rows: { k: number; s: number; jobMs: number; busy: number }[] = [];
  for (const [round, k] of COUNTS.entries()) {
    const url = `${redis.url}/${round + 1}`;
    const env = { ...process.env, GRAFT_FROM_SOURCE: '1', NODE_OPTIONS: '' };
    const workers = Array.from({ length: k }, (_, i) =>
      spawn(process.execPath, [GRAFT_BIN, 'worker', '--queue', url, '--name', `w${i}`, '--threads', '1'], { env, stdio: 'ignore' }),
    );
    try {
      while ((await queueStatus(url)).workers.length < k) await sleep(100);
      t0 = performance.now();
      await distributedFeatures({ queue: url, model, preprocess, items, shardSize: SHARD, batchSize: 32, cacheDir: join(dir, `shared-${k}`) });
      const s = (performance.now() - t0) / 1000;
      // each shard job's time on its worker (processedOn → finishedOn): their mean, and their sum over the wall time
      // (how many workers were busy on average)
      const q = new Queue(EXTRACT_QUEUE, { connection: redisConnection(url), prefix: QUEUE_PREFIX });
      const shards = (await q.getJobs(['completed'], 0, 9999)).filter((j) => j.name === 'shard');
      await q.close();
      const ran = shards.map((j) => (j.finishedOn ?? 0) - (j.processedOn ?? 0));
      const jobMs = ran.reduce((a, b) => a + b, 0) / Math.max(1, ran.length);
      const busy = ran.reduce((a, b) => a + b, 0) / 1000 / s;
      rows.push({ k, s, jobMs, busy });
      log(
        `${k} worker${k === 1 ? '' : 's'} × 1 thread: ${s.toFixed(2)} s, ${(N / s).toFixed(1)} images/s; a shard job ${jobMs.toFixed(0)} ms on its worker, ${busy.toFixed(2)} workers busy on average (load ${load()})`,
      );
    } finally {
      for (const w of workers) w.kill('SIGTERM');
      await Promise.all(workers.map((w) => new Promise((r) => (w.exitCode !== null ? r(null) : w.once('exit', r)))));
    }
  }
  const jobs = Math.ceil(N / SHARD) + 1;
  const one = rows.find((r) => r.k === 1);
  log('\n| workers | wall s | images/s | vs 1 worker | shard job ms | busy workers | overhead per shard ms |');
  log('|---|---|---|---|---|---|---|');
  const perImage = (1000 * local) / N;
  for (const r of rows)
    log(
      `| ${r.k} | ${r.s.toFixed(2)} | ${(N / r.s).toFixed(1)} | ${one ? (one.s / r.s).toFixed(2) : '-'}x | ${r.jobMs.toFixed(0)} | ${r.busy.toFixed(2)} | ${(r.jobMs - SHARD * perImage).toFixed(0)} |`,
    );
  if (one)
    log(
      `\nper-image cost (local) ${perImage.toFixed(2)} ms; per-job overhead from wall times, (1 worker − local) / ${jobs} jobs (${jobs - 1} shards + the parent): ${((1000 * (one.s - local)) / jobs).toFixed(0)} ms`,
    );
} finally {
  await redis.stop();
  await rm(dir, { recursive: true, force: true });
}
