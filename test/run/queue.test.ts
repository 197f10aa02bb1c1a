/**
 * The run queue (run/queue.ts) over a stand-in for startRun: runs start one at a time in the order they were
 * added, a queued run can be dropped and a running one cancelled, a folder cannot be queued twice, late listeners
 * find the events kept (the latest step only), and the ETA follows the pace of the steps.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from '../../src/run/config.js';
import { RunCancelled, type RunEvent, type TrainSummary } from '../../src/run/events.js';
import { type QueueMessage, RunQueue } from '../../src/run/queue.js';
import type { RunHandle } from '../../src/run/train.js';

/** A controllable run: the test emits its events and ends it. */
interface FakeRun {
  name: string;
  emit(e: RunEvent): void;
  finish(): void;
  cancelled: boolean;
}

function fakeStarter(started: FakeRun[]) {
  return ((cfg: ReturnType<typeof parseConfig>): RunHandle => {
    const listeners = new Set<(e: RunEvent) => void>();
    let resolve!: (s: TrainSummary) => void;
    let reject!: (e: Error) => void;
    const done = new Promise<TrainSummary>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const run: FakeRun = {
      name: cfg.run.name!,
      emit: (e) => {
        for (const l of listeners) l(e);
      },
      finish: () => resolve({ run: cfg.run.name! } as TrainSummary),
      cancelled: false,
    };
    started.push(run);
    return {
      on: (l) => {
        listeners.add(l);
        return () => listeners.delete(l);
      },
      cancel: () => {
        run.cancelled = true;
        reject(new RunCancelled(cfg.run.name!));
      },
      done,
    };
  }) as unknown as ConstructorParameters<typeof RunQueue>[0];
}

const cfg = (name: string) => parseConfig({ data: { train: 'photos' }, model: { arch: 'small-cnn' }, run: { name, dir: '/tmp/graft-queue-runs' } });
const tick = () => new Promise((r) => setImmediate(r));
const step = (batch: number): RunEvent => ({ type: 'step', phase: 'head', epoch: 1, epochs: 1, batch, batches: 10, step: batch, loss: 1, lr: 0.1 });

test('runs queue: one at a time, in order; drop a queued run, cancel the running one; no folder twice', async () => {
  const started: FakeRun[] = [];
  const q = new RunQueue(fakeStarter(started));
  const seen: QueueMessage[] = [];
  q.on((m) => seen.push(m));
  q.add(cfg('a'), 'test');
  q.add(cfg('b'), 'test');
  q.add(cfg('c'), 'test');
  assert.deepEqual(
    q.list().map((r) => [r.name, r.state]),
    [
      ['a', 'running'],
      ['b', 'queued'],
      ['c', 'queued'],
    ],
  );
  assert.throws(() => q.add(cfg('b'), 'test'), /The run b is already queued/);
  assert.equal(q.cancel('b'), true);
  assert.equal(q.get('b')?.state, 'cancelled');
  assert.deepEqual(
    started.map((r) => r.name),
    ['a'],
  );

  started[0]!.emit({ type: 'note', message: 'hello' });
  for (let b = 1; b <= 3; b++) started[0]!.emit(step(b));
  assert.deepEqual(
    q.get('a')!.events.map((e) => (e.type === 'step' ? `step ${e.batch}` : e.type)),
    ['note', 'step 3'],
    'a late listener finds the note and the latest step',
  );
  assert.ok(q.get('a')!.eta! >= 0, 'an ETA once two steps were seen');
  started[0]!.finish();
  await tick();
  assert.equal(q.get('a')?.state, 'finished');
  assert.deepEqual(
    started.map((r) => r.name),
    ['a', 'c'],
    'b was dropped, c runs next',
  );
  assert.equal(q.cancel('c'), true);
  await tick();
  assert.ok(started[1]!.cancelled);
  assert.equal(q.get('c')?.state, 'cancelled');
  assert.equal(q.cancel('c'), false, 'nothing to cancel any more');
  q.add(cfg('c'), 'test'); // resumed
  assert.equal(q.get('c')?.state, 'running');
  assert.deepEqual(
    seen.filter((m) => 'state' in m && m.run === 'a').map((m) => ('state' in m ? m.state : '')),
    ['queued', 'running', 'finished'],
  );
});

test('runs queue: a long task gets an ETA from its own pace once it has moved, and a new task starts its pace over', async () => {
  const started: FakeRun[] = [];
  const q = new RunQueue(fakeStarter(started));
  const seen: QueueMessage[] = [];
  q.on((m) => seen.push(m));
  q.add(cfg('t'), 'test');
  const progress = (task: string, done: number): RunEvent => ({ type: 'progress', task, done, total: 100, unit: 'KiB' });
  const etaOf = () => {
    const m = seen.at(-1)!;
    return 'event' in m ? m.eta : undefined;
  };
  const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
  started[0]!.emit(progress('fetching x', 0));
  assert.equal(etaOf(), undefined, 'no pace from one report');
  await wait(20);
  started[0]!.emit(progress('fetching x', 20));
  const first = etaOf();
  // 20 KiB in ≥ 20 ms: the other 80 KiB take ≥ 80 ms at that pace (and not minutes)
  assert.ok(first !== undefined && first >= 0.08 && first < 60, `ETA ${first} s`);
  await wait(20);
  started[0]!.emit(progress('fetching x', 60));
  const second = etaOf()!;
  assert.ok(second < first!, `ETA falls as the task moves: ${first} → ${second}`);
  started[0]!.emit(progress('hashing images', 5));
  assert.equal(etaOf(), undefined, 'another task starts its own pace');
  started[0]!.emit(step(1));
  assert.equal(etaOf(), undefined, "a step's ETA is its phase's (none after one step), not the task's");
  started[0]!.finish();
  await tick();
});
