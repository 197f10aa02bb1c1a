/** The session thread default: set explicitly by the process (the CLI's --threads), else env GRAFT_THREADS, else all cores. */
import assert from 'node:assert/strict';
import os from 'node:os';
import { test } from 'node:test';
import { defaultThreads, setDefaultThreads } from '../../src/runtime/session.js';

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
