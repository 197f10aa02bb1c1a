import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { Worker } from 'node:worker_threads';
import { Graph } from '../../src/ir/graph.js';
import { Model } from '../../src/ir/model.js';
import { encodeModel } from '../../src/onnx/io.js';
import { createSession, runHost } from '../../src/runtime/session.js';
import { DynamicBatcher, ExecutorUnavailableError } from '../../src/server/batcher.js';
import type { HostTensor } from '../../src/server/contract.js';
import { createServeMetrics } from '../../src/server/metrics.js';
import { runnerInfoOf } from '../../src/server/tensors.js';
import { WORKER_SOURCE, WorkerPool } from '../../src/server/worker-pool.js';
import { openBatchedRunner } from '../../src/server/worker-runner.js';
import { Tensor } from '../../src/tensor.js';

const tmp = await mkdtemp(join(tmpdir(), 'graft-serve-'));
after(() => rm(tmp, { recursive: true, force: true }));

/** x [batch, 4] → logits = x·W [batch, 3], probs = softmax(logits). */
function classifier(batch: number | string): Model {
  const g = new Graph();
  g.inputs.push({ name: 'x', dtype: 'float32', shape: [batch, 4] });
  g.outputs.push({ name: 'logits', dtype: 'float32', shape: [batch, 3] }, { name: 'probs', dtype: 'float32', shape: [batch, 3] });
  g.addInitializer('W', Tensor.f32([4, 3], [0.5, -1, 2, 1.5, 0.25, -0.5, -2, 1, 0.75, 0.1, 0.2, 0.3]));
  g.addNode('MatMul', ['x', 'W'], ['logits']);
  g.addNode('Softmax', ['logits'], ['probs'], { axis: -1 });
  return new Model(g, 17);
}

/** idx int64 [batch] → rows of a 5×2 table: an index out of range fails in onnxruntime, for that batch only. */
function lookup(): Model {
  const g = new Graph();
  g.inputs.push({ name: 'idx', dtype: 'int64', shape: ['N'] });
  g.outputs.push({ name: 'rows', dtype: 'float32', shape: ['N', 2] });
  g.addInitializer('T', Tensor.f32([5, 2], [0, 1, 10, 11, 20, 21, 30, 31, 40, 41]));
  g.addNode('Gather', ['T', 'idx'], ['rows'], { axis: 0 });
  return new Model(g, 17);
}

/** A model that takes a while (chained 512×512 MatMuls), to watch the event loop while it runs. */
function slow(): Model {
  const g = new Graph();
  const n = 512;
  g.inputs.push({ name: 'x', dtype: 'float32', shape: ['N', n] });
  g.addInitializer('W', Tensor.f32([n, n], new Float32Array(n * n).fill(1 / n)));
  let prev = 'x';
  for (let i = 0; i < 100; i++) {
    g.addNode('MatMul', [prev, 'W'], [`h${i}`]);
    prev = `h${i}`;
  }
  g.outputs.push({ name: prev, dtype: 'float32', shape: ['N', n] });
  return new Model(g, 17);
}

/** Runs `work` while a 1 ms interval ticks; returns its time and the longest gap between ticks, in ms. */
async function loopGap(work: () => Promise<unknown>): Promise<{ ms: number; gap: number }> {
  let last = performance.now();
  let gap = 0;
  const tick = setInterval(() => {
    const now = performance.now();
    gap = Math.max(gap, now - last);
    last = now;
  }, 1);
  const t0 = performance.now();
  await work();
  const ms = performance.now() - t0;
  clearInterval(tick);
  return { ms, gap: Math.max(gap, performance.now() - last) };
}

async function save(name: string, m: Model): Promise<string> {
  const file = join(tmp, `${name}.onnx`);
  await writeFile(file, encodeModel(m));
  return file;
}

const x = (rows: number, seed: number): HostTensor => ({
  datatype: 'FP32',
  shape: [rows, 4],
  data: Float32Array.from({ length: rows * 4 }, (_, i) => Math.sin(seed * 7 + i)),
});

const near = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) < 1e-6, `at ${i}: ${a[i]} vs ${b[i]}`);
};

test('concurrent requests run as one batch in a worker and each gets the rows a direct session.run gives it', async () => {
  const model = classifier('N');
  const metrics = createServeMetrics();
  const runner = await openBatchedRunner(await save('cls', model), { model: 'cls', version: '1', threads: 1, maxQueueDelayMs: 50, metrics });
  assert.deepEqual(runner.info, {
    inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }],
    outputs: [
      { name: 'logits', datatype: 'FP32', shape: [-1, 3] },
      { name: 'probs', datatype: 'FP32', shape: [-1, 3] },
    ],
    maxBatchSize: 32,
  });
  const reqs = [x(1, 1), x(3, 2), x(2, 3), x(1, 4)];
  // issued in one tick: all arrive within the delay, so they share one run
  const results = await Promise.all(reqs.map((t, i) => runner.infer({ x: t }, i === 1 ? ['probs'] : undefined)));
  const session = await createSession(model, { threads: 1 });
  for (const [i, t] of reqs.entries()) {
    const want = await runHost(session, { x: new Tensor('float32', t.shape, t.data as Float32Array) });
    const got = results[i]!;
    assert.deepEqual(Object.keys(got).sort(), i === 1 ? ['probs'] : ['logits', 'probs']);
    assert.deepEqual(got.probs!.shape, t.shape.slice(0, 1).concat(3));
    near(got.probs!.data as Float32Array, want.probs!.data as Float32Array);
    if (got.logits) near(got.logits.data as Float32Array, want.logits!.data as Float32Array);
  }
  const body = (await metrics.render()).body;
  assert.match(body, /graft_inference_exec_count\{model="cls",version="1"\} 1\n/);
  assert.match(body, /graft_inference_count\{model="cls",version="1"\} 7\n/);
  // the caller's input buffers are untouched (the batcher concatenates into its own, which it transfers)
  assert.equal(reqs[0]!.data.length, 4);
  await runner.drain();
  await assert.rejects(runner.infer({ x: x(1, 0) }), ExecutorUnavailableError);
});

test('the event loop keeps running while the worker computes (a session.run on the main thread blocks it)', async () => {
  const model = slow();
  const rows = 256;
  const feed = () => ({ x: { datatype: 'FP32' as const, shape: [rows, 512], data: new Float32Array(rows * 512).fill(1) } });
  const runner = await openBatchedRunner(await save('slow', model), {
    model: 'slow',
    version: '1',
    threads: 1,
    maxQueueDelayMs: 0,
    maxBatchSize: rows,
    warmup: false,
  });
  const off = await loopGap(() => runner.infer(feed()));
  await runner.drain();
  // the control: the same run on this thread stalls the loop for about its whole length
  const session = await createSession(model, { threads: 1 });
  const on = await loopGap(() => runHost(session, { x: new Tensor('float32', [rows, 512], feed().x.data) }));
  assert.ok(on.gap > on.ms / 2, `control: a main-thread run of ${on.ms.toFixed(0)} ms left a gap of only ${on.gap.toFixed(0)} ms`);
  assert.ok(off.gap < off.ms / 2, `a worker run of ${off.ms.toFixed(0)} ms stalled the event loop for ${off.gap.toFixed(0)} ms`);
});

test('a model with a fixed batch dim serves a one-row request (padded to the batch)', async () => {
  const runner = await openBatchedRunner(await save('fixed', classifier(2)), { model: 'fixed', version: '1', threads: 1, maxQueueDelayMs: 0 });
  assert.equal(runner.info.maxBatchSize, 2);
  const want = await runHost(await createSession(classifier(1), { threads: 1 }), { x: new Tensor('float32', [1, 4], x(1, 5).data as Float32Array) });
  const r = await runner.infer({ x: x(1, 5) });
  assert.deepEqual(r.logits!.shape, [1, 3]);
  near(r.logits!.data as Float32Array, want.logits!.data as Float32Array);
  await runner.drain();
});

test('an onnxruntime failure names the model, and fails only the request whose data caused it', async () => {
  const runner = await openBatchedRunner(await save('lookup', lookup()), { model: 'lookup', version: '7', threads: 1, maxQueueDelayMs: 50 });
  assert.deepEqual(runner.info.inputs, [{ name: 'idx', datatype: 'INT64', shape: [-1] }]);
  const idx = (v: number[]): Record<string, HostTensor> => ({ idx: { datatype: 'INT64', shape: [v.length], data: BigInt64Array.from(v.map(BigInt)) } });
  const [good, bad, good2] = await Promise.allSettled([runner.infer(idx([1, 4])), runner.infer(idx([9])), runner.infer(idx([0]))]);
  assert.equal(good.status, 'fulfilled');
  assert.deepEqual([...((good as PromiseFulfilledResult<Record<string, HostTensor>>).value.rows!.data as Float32Array)], [10, 11, 40, 41]);
  assert.equal(good2.status, 'fulfilled');
  assert.equal(bad.status, 'rejected');
  assert.match(String((bad as PromiseRejectedResult).reason), /model "lookup" version 7 failed in onnxruntime: .*(indices|out of bounds|idx)/i);
  await runner.drain();
});

test('a model onnxruntime cannot load, or a missing file, is one clear error naming the model', async () => {
  const broken = join(tmp, 'broken.onnx');
  await writeFile(broken, new Uint8Array([1, 2, 3, 4]));
  await assert.rejects(openBatchedRunner(broken, { model: 'broken', version: '1', threads: 1 }), /onnxruntime could not load model "broken" version 1/);
  await assert.rejects(
    openBatchedRunner(join(tmp, 'nope.onnx'), { model: 'nope', version: '2', threads: 1 }),
    /Cannot read model "nope" version 2 from .*nope\.onnx/,
  );
});

test('a worker that dies mid-run fails its batch at once (no hang) with an error naming the model, and is replaced', async () => {
  // a worker that exits on a poison row (x[0] = -1) before running it, as a native crash on some input would
  const source = `${WORKER_SOURCE}\nparentPort.on('message', (m) => { if (m.feeds.x.data[0] === -1) process.exit(3); });`;
  const pool = new WorkerPool(encodeModel(classifier('N')), { label: 'model "cls" version 1', threads: 1, source });
  const info = runnerInfoOf('cls', await pool.open());
  const batcher = new DynamicBatcher(info, pool, { model: 'cls', version: '1', maxQueueDelayMs: 50 });
  const poison: HostTensor = { datatype: 'FP32', shape: [1, 4], data: Float32Array.from([-1, 0, 0, 0]) };
  const victim = pool.workers[0]!;
  const settled = await Promise.allSettled([batcher.infer({ x: poison }), batcher.infer({ x: x(1, 1) })]);
  for (const s of settled) {
    assert.equal(s.status, 'rejected');
    const e = (s as PromiseRejectedResult).reason as Error;
    assert.ok(e instanceof ExecutorUnavailableError, String(e));
    assert.match(e.message, /worker of model "cls" version 1 exited unexpectedly \(code 3\); it is being restarted, retry the request/);
  }
  assert.equal(pool.restarts, 1);
  assert.notEqual(pool.workers[0], victim);
  const r = await batcher.infer({ x: x(2, 2) });
  assert.deepEqual(r.probs!.shape, [2, 3]);
  await batcher.drain();
});

test('warm-up runs one full batch in every worker before it serves, and again in a worker that replaces a crashed one', async () => {
  // each worker reports the batch of every run it is sent, and exits on a poison row
  const source = `${WORKER_SOURCE}\nparentPort.on('message', (m) => { if (m.feeds.x.data[0] === -1) process.exit(3); parentPort.postMessage({ id: -1, seen: m.feeds.x.dims[0] }); });`;
  const pool = new WorkerPool(encodeModel(classifier('N')), { label: 'model "cls" version 1', threads: 1, workers: 2, source });
  const seen: number[][] = [];
  const watch = (i: number, w: Worker): void => {
    w.on('message', (m: { id: number; seen?: number }) => {
      if (m.id === -1) (seen[i] ??= []).push(m.seen!);
    });
  };
  for (const [i, w] of pool.workers.entries()) watch(i, w);
  const info = runnerInfoOf('cls', await pool.open(), 8);
  await pool.warmUp(() => ({ inputs: { x: { datatype: 'FP32', shape: [8, 4], data: new Float32Array(32) } }, outputs: ['probs'] }));
  assert.deepEqual(seen, [[8], [8]]);
  const batcher = new DynamicBatcher(info, pool, { model: 'cls', version: '1', maxQueueDelayMs: 0, concurrency: 2 });
  const before = [...pool.workers];
  await assert.rejects(batcher.infer({ x: { datatype: 'FP32', shape: [1, 4], data: Float32Array.from([-1, 0, 0, 0]) } }), ExecutorUnavailableError);
  const fresh = pool.workers.find((w) => !before.includes(w));
  assert.ok(fresh, 'the crashed worker was replaced');
  seen[2] = [];
  watch(2, fresh);
  // the replacement's first run is the warm-up batch, posted before any request can reach it
  const r = await Promise.all([batcher.infer({ x: x(1, 1) }), batcher.infer({ x: x(1, 2) })]);
  assert.equal(r.length, 2);
  while (!seen[2]!.length) await new Promise((res) => setTimeout(res, 5));
  assert.equal(seen[2]![0], 8);
  await batcher.drain();
});
