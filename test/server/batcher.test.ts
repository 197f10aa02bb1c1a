import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FeedError } from '../../src/runtime/feeds.js';
import { type BatchExecutor, type Clock, DynamicBatcher, ExecutorUnavailableError } from '../../src/server/batcher.js';
import { type HostTensor, QueueFullError, type RunnerInfo, type ServeMetrics } from '../../src/server/contract.js';

/** A clock whose time moves only when the test says; timers fire in order on advance. */
class FakeClock implements Clock {
  t = 1000;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private nextId = 1;
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.timers = this.timers.filter((x) => x.id !== h);
  }
  get armed(): number {
    return this.timers.length;
  }
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.timers.shift();
      this.t = next.at;
      next.fn();
    }
    this.t = Math.max(this.t, end);
  }
}

interface Call {
  inputs: Record<string, HostTensor>;
  outputs: readonly string[];
  finish: () => void;
  fail: (e: Error) => void;
}

/**
 * A model of x [b, 3] → y = 2x [b, 3] and s = row sums [b, 1]. Runs wait until the test finishes them (or run at
 * once with `auto`); a row whose first value is negative makes the run fail (a data-dependent failure).
 */
class FakeExecutor implements BatchExecutor {
  calls: Call[] = [];
  closed = false;
  auto = false;
  /** Clock time a run takes when finished automatically. */
  constructor(private readonly clock?: FakeClock) {}
  run(inputs: Record<string, HostTensor>, outputs: readonly string[]): Promise<Record<string, HostTensor>> {
    return new Promise((resolve, reject) => {
      const finish = () => {
        if (this.clock) this.clock.t += 5;
        const x = inputs.x!;
        const b = x.shape[0]!;
        const xs = x.data as Float32Array;
        for (let i = 0; i < b; i++) if (xs[i * 3]! < 0) return reject(new Error(`bad value in row ${i}`));
        const out: Record<string, HostTensor> = {};
        if (outputs.includes('y')) out.y = { datatype: 'FP32', shape: [b, 3], data: xs.map((v) => 2 * v) };
        if (outputs.includes('s')) {
          const s = new Float32Array(b);
          for (let i = 0; i < b; i++) s[i] = xs[i * 3]! + xs[i * 3 + 1]! + xs[i * 3 + 2]!;
          out.s = { datatype: 'FP32', shape: [b, 1], data: s };
        }
        resolve(out);
      };
      this.calls.push({ inputs, outputs, finish, fail: reject });
      if (this.auto) finish();
    });
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

const info = (maxBatchSize: number, batchDim = -1): RunnerInfo => ({
  inputs: [{ name: 'x', datatype: 'FP32', shape: [batchDim, 3] }],
  outputs: [
    { name: 'y', datatype: 'FP32', shape: [batchDim, 3] },
    { name: 's', datatype: 'FP32', shape: [batchDim, 1] },
  ],
  maxBatchSize,
});

/** A request of `rows` rows whose values are base, base+1, … */
const req = (rows: number, base: number): Record<string, HostTensor> => ({
  x: { datatype: 'FP32', shape: [rows, 3], data: Float32Array.from({ length: rows * 3 }, (_, i) => base + i) },
});

const flush = () => new Promise<void>((r) => setImmediate(r));

test('requests arriving within the delay run as one batch, and each gets back exactly its own rows', async () => {
  const clock = new FakeClock();
  const ex = new FakeExecutor();
  const b = new DynamicBatcher(info(8), ex, { model: 'm', version: '1', maxQueueDelayMs: 5, clock });
  const p1 = b.infer(req(1, 0));
  clock.advance(2);
  const p2 = b.infer(req(2, 100), ['s']);
  const p3 = b.infer(req(1, 200), ['y']);
  assert.equal(ex.calls.length, 0, 'nothing runs before the oldest request has waited the delay');
  clock.advance(2);
  assert.equal(ex.calls.length, 0);
  clock.advance(1);
  assert.equal(ex.calls.length, 1, 'the batch runs when the oldest request has waited 5 ms');
  const call = ex.calls[0]!;
  assert.deepEqual(call.inputs.x!.shape, [4, 3]);
  assert.deepEqual([...(call.inputs.x!.data as Float32Array)], [0, 1, 2, 100, 101, 102, 103, 104, 105, 200, 201, 202]);
  assert.deepEqual([...call.outputs].sort(), ['s', 'y'], 'the union of the outputs asked for');
  call.finish();
  const [r1, r2, r3] = await Promise.all([p1, p2, p3]);
  assert.deepEqual(Object.keys(r1).sort(), ['s', 'y']);
  assert.deepEqual(r1.y!.shape, [1, 3]);
  assert.deepEqual([...(r1.y!.data as Float32Array)], [0, 2, 4]);
  assert.deepEqual([...(r1.s!.data as Float32Array)], [3]);
  assert.deepEqual(Object.keys(r2), ['s']);
  assert.deepEqual(r2.s!.shape, [2, 1]);
  assert.deepEqual([...(r2.s!.data as Float32Array)], [303, 312]);
  assert.deepEqual(Object.keys(r3), ['y']);
  assert.deepEqual([...(r3.y!.data as Float32Array)], [400, 402, 404]);
});

test('a full batch runs at once without waiting; overflow rows wait for the next batch', async () => {
  const clock = new FakeClock();
  const ex = new FakeExecutor();
  const b = new DynamicBatcher(info(4), ex, { model: 'm', version: '1', maxQueueDelayMs: 50, clock });
  const ps = [b.infer(req(2, 0)), b.infer(req(1, 10)), b.infer(req(2, 20)), b.infer(req(1, 30))];
  assert.equal(ex.calls.length, 1, 'six rows queued: the first batch runs with no delay');
  assert.equal(ex.calls[0]!.inputs.x!.shape[0], 3, 'a request is never split: 2 + 1 rows, the next 2 would exceed 4');
  // the slot is busy: the rest waits, then runs at once when the slot frees (its oldest request is still fresh,
  // but the 3 queued rows are not a full batch, so it waits out the delay)
  ex.calls[0]!.finish();
  await flush();
  assert.equal(ex.calls.length, 1);
  clock.advance(50);
  assert.equal(ex.calls.length, 2);
  assert.deepEqual(ex.calls[1]!.inputs.x!.shape, [3, 3]);
  ex.calls[1]!.finish();
  const rs = await Promise.all(ps);
  assert.deepEqual(
    rs.map((r) => [...(r.s!.data as Float32Array)]),
    [[3, 12], [33], [63, 72], [93]],
  );
});

test('while the executor is busy, requests accumulate and the next batch takes them without waiting again', async () => {
  const clock = new FakeClock();
  const ex = new FakeExecutor();
  const b = new DynamicBatcher(info(32), ex, { model: 'm', version: '1', maxQueueDelayMs: 2, clock });
  const first = b.infer(req(1, 0));
  clock.advance(2);
  assert.equal(ex.calls.length, 1);
  const later = Array.from({ length: 10 }, (_, i) => b.infer(req(1, i)));
  clock.advance(3); // the oldest waiting request is now past its delay
  assert.equal(ex.calls.length, 1, 'one slot: no second run while the first is busy');
  ex.calls[0]!.finish();
  await first;
  await flush();
  assert.equal(ex.calls.length, 2, 'the freed slot runs the accumulated requests at once');
  assert.equal(ex.calls[1]!.inputs.x!.shape[0], 10);
  ex.calls[1]!.finish();
  assert.equal((await Promise.all(later)).length, 10);
});

test('concurrency > 1 runs that many batches at once', async () => {
  const clock = new FakeClock();
  const ex = new FakeExecutor();
  const b = new DynamicBatcher(info(2), ex, { model: 'm', version: '1', maxQueueDelayMs: 10, clock, concurrency: 2 });
  const ps = Array.from({ length: 6 }, (_, i) => b.infer(req(1, i)));
  assert.equal(ex.calls.length, 2, 'two full batches of 2 start; the third waits for a slot');
  ex.calls[0]!.finish();
  await flush();
  assert.equal(ex.calls.length, 3);
  for (const c of ex.calls.slice(1)) c.finish();
  await Promise.all(ps);
});

test('a fixed batch dim pads a partial batch with zero rows and drops their outputs', async () => {
  const clock = new FakeClock();
  const ex = new FakeExecutor();
  ex.auto = true;
  const b = new DynamicBatcher(info(4, 4), ex, { model: 'm', version: '1', maxQueueDelayMs: 1, clock });
  const p = b.infer(req(1, 7));
  clock.advance(1);
  assert.deepEqual(ex.calls[0]!.inputs.x!.shape, [4, 3]);
  assert.deepEqual([...(ex.calls[0]!.inputs.x!.data as Float32Array)], [7, 8, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  const r = await p;
  assert.deepEqual(r.y!.shape, [1, 3]);
  assert.deepEqual([...(r.y!.data as Float32Array)], [14, 16, 18]);
  await assert.rejects(b.infer(req(5, 0)), (e: Error) => e instanceof FeedError && /5 rows, more than the model's batch of 4/.test(e.message));
});

test('a bad request fails alone with a clear error, before it can join a batch', async () => {
  const clock = new FakeClock();
  const ex = new FakeExecutor();
  ex.auto = true;
  const b = new DynamicBatcher(info(8), ex, { model: 'cats', version: '1', maxQueueDelayMs: 1, clock });
  const good = b.infer(req(2, 0));
  const bad = [
    b.infer({ x: { datatype: 'FP32', shape: [1, 4], data: new Float32Array(4) } }),
    b.infer({ x: { datatype: 'INT32', shape: [1, 3], data: new Int32Array(3) } }),
    b.infer({ x: { datatype: 'FP32', shape: [1, 3], data: new Float32Array(2) } }),
    b.infer({ z: { datatype: 'FP32', shape: [1, 3], data: new Float32Array(3) } }),
    b.infer(req(1, 0), ['nope']),
    b.infer(req(9, 0)),
  ];
  const msgs = await Promise.all(
    bad.map((p) =>
      p.then(
        () => 'resolved',
        (e: Error) => `${e.name}: ${e.message}`,
      ),
    ),
  );
  assert.match(msgs[0]!, /FeedError: .*"x".*\[1, 4\].*model "cats".*\[\?, 3\]/);
  assert.match(msgs[1]!, /FeedError: .*"x".*int32.*float32/);
  assert.match(msgs[2]!, /FeedError: .*\[1, 3\] \(3 values\) but 2 values/);
  assert.match(msgs[3]!, /FeedError: .*"x"/);
  assert.match(msgs[4]!, /FeedError: .*output "nope".*"y", "s"/);
  assert.match(msgs[5]!, /FeedError: .*9 rows, more than the model's batch of 8.*--max-batch-size/);
  clock.advance(1);
  assert.equal(ex.calls.length, 1);
  assert.deepEqual(ex.calls[0]!.inputs.x!.shape, [2, 3], 'only the good request ran');
  assert.equal((await good).y!.shape[0], 2);
});

test('when a batch fails on one request data, each request is re-run alone and only the culprit fails', async () => {
  const clock = new FakeClock();
  const ex = new FakeExecutor();
  ex.auto = true;
  const b = new DynamicBatcher(info(8), ex, { model: 'm', version: '1', maxQueueDelayMs: 1, clock });
  const ps = [b.infer(req(1, 0)), b.infer(req(1, -5)), b.infer(req(2, 10))];
  clock.advance(1);
  const settled = await Promise.allSettled(ps);
  assert.equal(ex.calls.length, 4, 'one batch, then each of the three alone');
  assert.equal(settled[0]!.status, 'fulfilled');
  assert.equal(settled[1]!.status, 'rejected');
  assert.match(String((settled[1] as PromiseRejectedResult).reason), /bad value in row 0/);
  assert.equal(settled[2]!.status, 'fulfilled');
  assert.deepEqual([...((settled[2] as PromiseFulfilledResult<Record<string, HostTensor>>).value.s!.data as Float32Array)], [33, 42]);
});

test('an unavailable executor (a crashed worker) fails the whole batch at once, without re-runs', async () => {
  const clock = new FakeClock();
  const ex = new FakeExecutor();
  const b = new DynamicBatcher(info(8), ex, { model: 'm', version: '1', maxQueueDelayMs: 1, clock });
  const ps = [b.infer(req(1, 0)), b.infer(req(1, 1))];
  clock.advance(1);
  ex.calls[0]!.fail(new ExecutorUnavailableError('worker crashed'));
  const settled = await Promise.allSettled(ps);
  assert.deepEqual(
    settled.map((s) => s.status),
    ['rejected', 'rejected'],
  );
  assert.equal(ex.calls.length, 1);
  // the batcher keeps serving afterwards
  ex.auto = true;
  const next = b.infer(req(1, 3));
  clock.advance(1);
  assert.equal((await next).y!.shape[0], 1);
});

test('a full queue refuses with QueueFullError and a Retry-After; requests below the limit all succeed', async () => {
  const clock = new FakeClock();
  const ex = new FakeExecutor(clock);
  const b = new DynamicBatcher(info(2), ex, { model: 'm', version: '1', maxQueueDelayMs: 0, maxQueue: 3, clock });
  const running = b.infer(req(2, 0)); // runs at once, holding the only slot
  const queued = [b.infer(req(1, 0)), b.infer(req(1, 1)), b.infer(req(2, 2))];
  assert.equal(b.pending, 3);
  await assert.rejects(b.infer(req(1, 9)), (e: unknown) => e instanceof QueueFullError && e.retryAfterS >= 1 && /model "m" is busy/.test(e.message));
  ex.auto = true;
  ex.calls[0]!.finish();
  const all = await Promise.allSettled([running, ...queued]);
  assert.ok(
    all.every((s) => s.status === 'fulfilled'),
    'no request below the queue limit fails',
  );
  assert.equal(b.pending, 0);
});

test('drain refuses new requests, runs the queued ones without waiting out the delay, then closes the executor', async () => {
  const clock = new FakeClock();
  const ex = new FakeExecutor();
  const b = new DynamicBatcher(info(8), ex, { model: 'm', version: '1', maxQueueDelayMs: 1000, clock });
  const p = b.infer(req(1, 0));
  let drained = false;
  const d = b.drain().then(() => {
    drained = true;
  });
  assert.equal(ex.calls.length, 1, 'the queued request runs at once');
  await assert.rejects(b.infer(req(1, 0)), (e: Error) => e instanceof ExecutorUnavailableError && /shutting down or reloading/.test(e.message));
  await flush();
  assert.equal(drained, false, 'not drained while a request is in flight');
  ex.calls[0]!.finish();
  await d;
  assert.equal((await p).y!.shape[0], 1);
  assert.ok(ex.closed);
  assert.equal(clock.armed, 0, 'no timer left behind');
});

test('requests batch only with others of the same inner dims (a dynamic non-batch dim)', async () => {
  const clock = new FakeClock();
  const ex = new FakeExecutor();
  ex.auto = true;
  const dyn: RunnerInfo = {
    inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, -1] }],
    outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, -1] }],
    maxBatchSize: 8,
  };
  const b = new DynamicBatcher(dyn, ex, { model: 'm', version: '1', maxQueueDelayMs: 1, clock });
  const mk = (w: number) => ({ x: { datatype: 'FP32' as const, shape: [1, w], data: new Float32Array(w).fill(1) } });
  const ps = [b.infer(mk(3)), b.infer(mk(4)), b.infer(mk(3))];
  clock.advance(1);
  await Promise.all(ps);
  assert.deepEqual(
    ex.calls.map((c) => c.inputs.x!.shape),
    [
      [2, 3],
      [1, 4],
    ],
  );
});

test('each run reports rows, requests, queue times and compute time to the metrics', async () => {
  const clock = new FakeClock();
  const ex = new FakeExecutor(clock);
  ex.auto = true;
  const seen: unknown[][] = [];
  const metrics: ServeMetrics = {
    request: () => {},
    execution: (...args) => void seen.push(args),
    render: async () => ({ contentType: '', body: '' }),
  };
  const b = new DynamicBatcher(info(8), ex, { model: 'm', version: '3', maxQueueDelayMs: 4, clock, metrics });
  const p1 = b.infer(req(2, 0));
  clock.advance(3);
  const p2 = b.infer(req(1, 0));
  clock.advance(1);
  await Promise.all([p1, p2]);
  assert.deepEqual(seen, [['m', '3', 3, 2, [0.004, 0.001], 0.005]]);
});
