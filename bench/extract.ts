/**
 * Feature-extraction throughput: `node --import tsx bench/extract.ts [--n 512] [--batch 32] [--width 64]
 * [--concurrency K] [--threads T] [--sharp-threads S] [--repeat R]`.
 *
 * Generates N 256×256 JPEGs, builds ResNet-18 cut at its pooled features, preprocesses with a 224×224 centre
 * crop and measures
 *   (a) images/s of `extractFeatures` (decode + preprocess + inference, pipelined), and
 *   (b) images/s of bare onnxruntime `session.run` on pre-decoded batches of the same size,
 * then prints the ratio a/b (goal ≥ 0.90). (a) is reported end to end (session creation included) and in
 * steady state (after the first batch). (a) and (b) alternate for `--repeat` rounds and the summary uses the
 * best round of each: on a shared machine other processes only ever slow a round down.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { decodeBatch } from '../src/data/image.js';
import { IMAGENET_MEAN, IMAGENET_STD, parsePreprocessConfig } from '../src/data/preprocess.js';
import { extractFeatures } from '../src/features/extract.js';
import { extractSubgraph, findCut } from '../src/ir/surgery.js';
import { resnet18 } from '../src/nn/index.js';
import { encodeModel } from '../src/onnx/io.js';
import { createSession, defaultThreads, ort } from '../src/runtime/session.js';
import { Rng } from '../src/tensor.js';

const { values: args } = parseArgs({
  options: {
    n: { type: 'string', default: '512' },
    batch: { type: 'string', default: '32' },
    width: { type: 'string', default: '64' },
    concurrency: { type: 'string' },
    threads: { type: 'string' },
    'sharp-threads': { type: 'string' },
    repeat: { type: 'string', default: '3' },
  },
});
const N = Number(args.n);
const B = Number(args.batch);
const threads = args.threads ? Number(args.threads) : defaultThreads();
const concurrency = args.concurrency ? Number(args.concurrency) : undefined;
if (args['sharp-threads']) sharp.concurrency(Number(args['sharp-threads']));
const repeat = Number(args.repeat);

const log = (s: string) => process.stdout.write(`${s}\n`);
log(
  `load average ${loadavg()
    .map((x) => x.toFixed(2))
    .join(
      ' ',
    )}; cores ${availableParallelism()}, ort threads ${threads}, sharp threads ${sharp.concurrency()}, UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE ?? '4 (default)'}, decode concurrency ${concurrency ?? 'default'}`,
);

// 1. images: smooth gradients plus noise, 256x256 JPEG (quality 90)
const dir = await mkdtemp(join(tmpdir(), 'graft-bench-extract-'));
const files: string[] = [];
try {
  const t0 = performance.now();
  const rng = new Rng(1);
  const raw = Buffer.alloc(256 * 256 * 3);
  for (let i = 0; i < N; i++) {
    const [r0, g0, b0] = [rng.int(256), rng.int(256), rng.int(256)];
    for (let y = 0, p = 0; y < 256; y++)
      for (let x = 0; x < 256; x++, p += 3) {
        const noise = rng.int(32);
        raw[p] = (r0 + x + noise) & 255;
        raw[p + 1] = (g0 + y + noise) & 255;
        raw[p + 2] = (b0 + ((x + y) >> 1)) & 255;
      }
    const file = join(dir, `img${String(i).padStart(4, '0')}.jpg`);
    await writeFile(
      file,
      await sharp(raw, { raw: { width: 256, height: 256, channels: 3 } })
        .jpeg({ quality: 90 })
        .toBuffer(),
    );
    files.push(file);
  }
  log(`generated ${N} JPEGs (256x256) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  // 2. model and preprocessing
  const full = resnet18({ classes: 1000, width: Number(args.width) }).build({ seed: 0 });
  const cut = findCut(full).value;
  const model = extractSubgraph(full, cut);
  const cfg = parsePreprocessConfig({ size: 224, resize: 'crop', mean: [...IMAGENET_MEAN], std: [...IMAGENET_STD] });
  log(`model: resnet18 (width ${args.width}) cut at ${cut}; preprocess: resize 256, centre-crop 224; batch ${B}`);

  // (b) bare session.run on pre-decoded batches (same batch sizes as the extraction), with graft's stock
  // session (spinning threads) and with the extraction worker's settings (no spinning); the faster is the baseline
  const stock = await createSession(model, { threads });
  const noSpin = await ort.InferenceSession.create(encodeModel(model), {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
  const input = stock.inputNames[0]!;
  const pre = await decodeBatch(files.slice(0, B), cfg);
  const full_ = new ort.Tensor('float32', pre.data, pre.dims);
  const rest = N % B;
  const part = rest ? new ort.Tensor('float32', pre.data.subarray(0, (rest * pre.data.length) / B), [rest, ...pre.dims.slice(1)]) : undefined;
  for (const s of [stock, noSpin]) await s.run({ [input]: full_ }); // warm-up (arena allocation, kernel selection)
  const results: { bare: number; e2e: number; steady: number }[] = [];
  const bareBatchMs: number[] = [];
  const pipeBatchMs: number[] = [];
  const fmt = (x: number) => x.toFixed(2);
  const cpuMsPerImage: { bare: number[]; pipe: number[] } = { bare: [], pipe: [] };
  const cpuSince = (c: NodeJS.CpuUsage) => {
    const d = process.cpuUsage(c);
    return (d.user + d.system) / 1000 / N;
  };
  const bareRun = async (session: ort.InferenceSession) => {
    const c = process.cpuUsage();
    const t = performance.now();
    for (let k = 0; k + B <= N; k += B) {
      const t1 = performance.now();
      await session.run({ [input]: full_ });
      bareBatchMs.push(performance.now() - t1);
    }
    if (part) await session.run({ [input]: part });
    const ips = N / ((performance.now() - t) / 1000);
    if (session === noSpin) cpuMsPerImage.bare.push(cpuSince(c));
    return ips;
  };

  for (let rep = 0; rep < repeat; rep++) {
    const bareStock = await bareRun(stock);
    const bareNoSpin = await bareRun(noSpin);
    const bare = Math.max(bareStock, bareNoSpin);

    // (a) extractFeatures, decode included; the interval between full batches is the pipeline's batch time
    const stamps: [number, number][] = [];
    const c = process.cpuUsage();
    const t = performance.now();
    const r = await extractFeatures({
      model,
      preprocess: cfg,
      items: files.map((path) => ({ path })),
      batchSize: B,
      threads,
      concurrency,
      onProgress: (done) => stamps.push([done, performance.now()]),
    });
    const end = performance.now();
    cpuMsPerImage.pipe.push(cpuSince(c));
    if (r.indices.length !== N) throw new Error(`bench: ${N - r.indices.length} images failed`);
    for (let k = 1; k < stamps.length; k++) if (stamps[k]![0] - stamps[k - 1]![0] === B) pipeBatchMs.push(stamps[k]![1] - stamps[k - 1]![1]);
    const e2e = N / ((end - t) / 1000);
    const [firstDone, firstAt] = stamps[0]!;
    const steady = N > firstDone ? (N - firstDone) / ((end - firstAt) / 1000) : e2e;
    log(
      `round ${rep + 1}: (b) bare ${fmt(bareStock)} (stock) / ${fmt(bareNoSpin)} (no spin) img/s | (a) end to end ${fmt(e2e)} img/s, steady ${fmt(steady)} img/s | a/b ${(e2e / bare).toFixed(3)} (steady ${(steady / bare).toFixed(3)})`,
    );
    results.push({ bare, e2e, steady });
  }
  const best = (k: 'bare' | 'e2e' | 'steady') => Math.max(...results.map((x) => x[k]));
  const median = (v: number[]) => [...v].sort((x, y) => x - y)[v.length >> 1]!;
  log(`best rounds: (b) bare ${fmt(best('bare'))} img/s, (a) end to end ${fmt(best('e2e'))} img/s, steady ${fmt(best('steady'))} img/s`);
  log(
    `RATIO a/b, best rounds:        end to end ${(best('e2e') / best('bare')).toFixed(3)}, steady ${(best('steady') / best('bare')).toFixed(3)} (goal >= 0.90)`,
  );
  log(
    `RATIO a/b, per-batch time:     median ${(median(bareBatchMs) / median(pipeBatchMs)).toFixed(3)}, fastest ${(Math.min(...bareBatchMs) / Math.min(...pipeBatchMs)).toFixed(3)} (batch of ${B}: bare ${fmt(median(bareBatchMs))} ms, pipeline ${fmt(median(pipeBatchMs))} ms median)`,
  );
  const cb = Math.min(...cpuMsPerImage.bare);
  const cp = Math.min(...cpuMsPerImage.pipe);
  log(`CPU time per image (least of rounds, all threads): bare ${fmt(cb)} ms (no spin), extractFeatures ${fmt(cp)} ms -> ratio ${(cb / cp).toFixed(3)}`);
  log(`load average after: ${loadavg().map(fmt).join(' ')} (other processes on the machine slow single rounds down)`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
