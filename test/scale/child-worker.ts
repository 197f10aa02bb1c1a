/**
 * A worker process for the kill -9 tests: `node --import tsx child-worker.ts <redis-url> <lockMs> <delayMs> [s3-endpoint]`.
 * Decoding sleeps `delayMs` per image so a shard is still running when the test kills it; prints `active <id>` when
 * it takes a shard and `trial <id>` when it takes a tune trial. With an S3 endpoint, `s3://` stores are opened there
 * (credentials from the environment).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeImage } from '../../src/data/image.js';
import { startWorker } from '../../src/scale/worker.js';

const [url, lockMs, delayMs, s3Endpoint] = process.argv.slice(2);
const w = await startWorker({
  queue: url!,
  lockDuration: Number(lockMs),
  stalledInterval: Number(lockMs),
  threads: 1,
  s3Endpoint,
  decoder: async (path, cfg, out, offset) => {
    await sleep(Number(delayMs));
    await decodeImage(path, cfg, { out, offset });
  },
});
w.worker.on('active', (job) => process.stdout.write(`active ${job.id}\n`));
w.trials.on('active', (job) => process.stdout.write(`trial ${job.id}\n`));
process.stdout.write('ready\n');
