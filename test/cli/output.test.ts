/** Output hygiene of the graft executable: a reader of stdout that goes away (`graft … | head`) ends graft quietly. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { GRAFT_BIN } from '../cli-run.js';

test('graft models with stdout closed by its reader: no EPIPE stack trace, exit code 0', async () => {
  const p = spawn(process.execPath, [GRAFT_BIN, 'models'], {
    env: { ...process.env, GRAFT_FROM_SOURCE: '1', GRAFT_DEBUG: '', NODE_OPTIONS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // the reader goes away before graft writes its table, like `graft models | head -0`
  p.stdout.destroy();
  let stderr = '';
  p.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => p.on('close', resolve));
  assert.doesNotMatch(stderr, /EPIPE|at .*\.(ts|js):\d+/, stderr);
  assert.equal(stderr, '');
  assert.equal(code, 0);
});
