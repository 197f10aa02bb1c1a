/** onnxruntime's failures in graft's words: no ANSI-coloured log lines of its own, out-of-memory errors with advice. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { formatError } from '../../src/cli/context.js';
import { buildProgram } from '../../src/cli/index.js';
import { isOrtOutOfMemory, OOM_ADVICE, withOomAdvice } from '../../src/runtime/ort-errors.js';

test('a model that makes onnxruntime fail: the error is thrown, and onnxruntime writes no ANSI log line to stderr', () => {
  const script = fileURLToPath(new URL('./fixtures/ort-fail.ts', import.meta.url));
  const r = spawnSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', env: { ...process.env, GRAFT_DEBUG: '', NODE_OPTIONS: '' } });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /MatMul dimension mismatch/, 'the failure still reaches the caller');
  assert.ok(!r.stderr.includes('\u001b['), `ANSI escape on stderr: ${JSON.stringify(r.stderr)}`);
  assert.doesNotMatch(r.stderr, /onnxruntime/, r.stderr);
});

test("onnxruntime's out-of-memory errors get graft's advice; other errors are unchanged", () => {
  const texts = [
    'std::bad_alloc',
    "Non-zero status code returned while running Conv node. Name:'conv1' Status Message: bfc_arena.cc:376 AllocateRawInternal Failed to allocate memory for requested buffer of size 4294967296",
  ];
  for (const t of texts) {
    assert.ok(isOrtOutOfMemory(t), t);
    const e = withOomAdvice(new Error(t)) as Error;
    assert.ok(e.message.startsWith(`onnxruntime ran out of memory (${t})`), e.message);
    assert.ok(e.message.endsWith(OOM_ADVICE), e.message);
    assert.equal((e.cause as Error).message, t);
    assert.equal(withOomAdvice(e), e, 'advice is added once');
    assert.match(formatError(new Error(`batch 3: ${t}`)), /^graft: error: onnxruntime ran out of memory \(batch 3: .*\)\. Use a smaller --batch-size/);
  }
  const other = new Error(
    "Non-zero status code returned while running MatMul node. Name:'mm' Status Message: matmul_helper.h:59 Compute MatMul dimension mismatch",
  );
  assert.equal(isOrtOutOfMemory(other.message), false);
  assert.equal(withOomAdvice(other), other);
  assert.equal(formatError(other), `graft: error: ${other.message}`);
});

test('the out-of-memory advice names flags that exist', () => {
  const program = buildProgram();
  const train = program.commands.find((c) => c.name() === 'train')!;
  const flags = new Set([...program.options, ...train.options].map((o) => o.long));
  const named = OOM_ADVICE.match(/--[a-z-]+/g)!;
  assert.deepEqual(named, ['--batch-size', '--threads', '--mode']);
  for (const f of named) assert.ok(flags.has(f), f);
});
