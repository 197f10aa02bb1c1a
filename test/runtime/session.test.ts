/** ortSessionOptions: the memory settings graft's sessions run with (issue 19 goal 2; bench/memory.ts measures them). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ortSessionOptions } from '../../src/runtime/session.js';

test('no onnxruntime memory pattern (it doubled a training step’s arena); the arena stays on unless asked', () => {
  const o = ortSessionOptions({ threads: 1 });
  assert.equal(o.enableMemPattern, false);
  assert.notEqual(o.enableCpuMemArena, false);
  assert.equal(ortSessionOptions({ threads: 1, arena: false }).enableCpuMemArena, false);
});

test('GRAFT_ORT_ARENA=0 turns the arena off for every session; an explicit option wins', () => {
  const before = process.env.GRAFT_ORT_ARENA;
  process.env.GRAFT_ORT_ARENA = '0';
  try {
    assert.equal(ortSessionOptions({ threads: 1 }).enableCpuMemArena, false);
    assert.notEqual(ortSessionOptions({ threads: 1, arena: true }).enableCpuMemArena, false);
  } finally {
    if (before === undefined) delete process.env.GRAFT_ORT_ARENA;
    else process.env.GRAFT_ORT_ARENA = before;
  }
});
