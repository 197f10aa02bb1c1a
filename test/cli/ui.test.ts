/** `graft ui` as a user starts it: it prints a 127.0.0.1 URL with a token, serves the page with it and not without, and stops on SIGTERM. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { GRAFT_BIN, runGraft } from '../cli-run.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-cli-ui-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('graft ui prints a 127.0.0.1 URL with a session token; the page needs it', async () => {
  const p = spawn(process.execPath, [GRAFT_BIN, 'ui', tmp, '--port', '0', '--runs-dir', path.join(tmp, 'runs')], {
    cwd: tmp,
    env: { ...process.env, GRAFT_FROM_SOURCE: '1', NODE_OPTIONS: '' },
  });
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    p.stdout.on('data', (d) => {
      out += d;
      const m = /open (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    p.on('exit', (code) => reject(new Error(`graft ui exited (${code}) before printing its URL: ${out}`)));
  });
  const u = new URL(url);
  assert.equal(u.hostname, '127.0.0.1');
  assert.match(u.searchParams.get('token') ?? '', /^[\w-]{40,}$/);
  assert.equal((await fetch(url)).status, 200);
  assert.equal((await fetch(`${u.origin}/`)).status, 401);
  assert.equal((await fetch(`${u.origin}/api/info?token=wrong`)).status, 401);
  const exited = new Promise((r) => p.on('exit', r));
  p.kill('SIGTERM');
  assert.equal(await exited, 0);
});

test('graft ui refuses a folder that does not exist, saying what to give', async () => {
  const r = await runGraft(['ui', path.join(tmp, 'nope')], tmp);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /graft ui: .*nope is not a folder; give an image folder/);
});
