/** The session thread default: set explicitly by the process (the CLI's --threads), else env GRAFT_THREADS, else all cores. */
import assert from 'node:assert/strict';
import os from 'node:os';
import { test } from 'node:test';
import { defaultSpinning, defaultThreads, ortSessionOptions, setDefaultThreads, spinningFor } from '../../src/runtime/session.js';

test('setDefaultThreads wins over GRAFT_THREADS, which wins over the core count; clearing restores the env default', () => {
  const saved = process.env.GRAFT_THREADS;
  try {
    process.env.GRAFT_THREADS = '3';
    assert.equal(defaultThreads(), 3);
    setDefaultThreads(2);
    assert.equal(defaultThreads(), 2);
    assert.equal(process.env.GRAFT_THREADS, '3', 'the process default is not written to the environment');
    setDefaultThreads(undefined);
    assert.equal(defaultThreads(), 3);
    process.env.GRAFT_THREADS = 'lots';
    assert.equal(defaultThreads(), Math.max(1, os.availableParallelism?.() ?? os.cpus().length));
  } finally {
    setDefaultThreads(undefined);
    if (saved === undefined) delete process.env.GRAFT_THREADS;
    else process.env.GRAFT_THREADS = saved;
  }
});

test('setDefaultThreads refuses what is not a positive integer, naming --threads', () => {
  for (const bad of [0, -1, 1.5, Number.NaN]) assert.throws(() => setDefaultThreads(bad), /threads must be a positive integer \(e\.g\. --threads 4\)/);
});

test('threads spin-wait only while each has a core no other process uses', () => {
  // quiet 2-core machine, this process's own load included in the load average: spin
  assert.equal(spinningFor(2, { cores: 2, load: 2.3, own: 2 }), true);
  assert.equal(spinningFor(2, { cores: 2, load: 0.4, own: 0 }), true);
  // one other process computing (the "under load" case), or a machine shared by many: block instead
  assert.equal(spinningFor(2, { cores: 2, load: 1.0, own: 0 }), false);
  assert.equal(spinningFor(2, { cores: 2, load: 30, own: 1.5 }), false);
  // a single thread has no idle workers to spin; with cores to spare, more load is fine
  assert.equal(spinningFor(1, { cores: 2, load: 1.0, own: 0 }), true);
  assert.equal(spinningFor(4, { cores: 16, load: 6, own: 0 }), true);
  // own CPU beyond the cores (time spent before the load average's window) does not hide others' load
  assert.equal(spinningFor(2, { cores: 2, load: 1.2, own: 5 }), true);
  assert.equal(spinningFor(2, { cores: 2, load: 3.2, own: 5 }), false);
});

test('GRAFT_ORT_SPIN=0/1 decides spinning outright, and a session without it spins only when told so', () => {
  const saved = process.env.GRAFT_ORT_SPIN;
  const spins = (o: ReturnType<typeof ortSessionOptions>) =>
    (o.extra as { session?: { intra_op?: { allow_spinning?: string } } } | undefined)?.session?.intra_op?.allow_spinning !== '0';
  try {
    process.env.GRAFT_ORT_SPIN = '0';
    assert.equal(defaultSpinning(2), false);
    assert.equal(spins(ortSessionOptions({ threads: 2 })), false);
    assert.equal(spins(ortSessionOptions({ threads: 2, spinning: true })), true, 'an explicit option wins over the environment');
    process.env.GRAFT_ORT_SPIN = '1';
    assert.equal(defaultSpinning(2), true);
    assert.equal(spins(ortSessionOptions({ threads: 2 })), true);
    assert.equal(spins(ortSessionOptions({ threads: 2, spinning: false })), false);
  } finally {
    if (saved === undefined) delete process.env.GRAFT_ORT_SPIN;
    else process.env.GRAFT_ORT_SPIN = saved;
  }
});
