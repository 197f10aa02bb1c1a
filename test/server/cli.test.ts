/**
 * `graft serve` as a user runs it: started by the CLI on port 0 (with --runner batched), the curl and Node client snippets of
 * docs/cli/serve.md run against it as written (only the port changed), /classify's top-1 and probability equal
 * to `graft predict` on the same files, and SIGTERM stopping it with exit code 0.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { GRAFT_BIN, runGraft } from '../cli-run.js';
import { writeColourImages } from '../image-fixtures.js';
import { COLOURS, saveColourModel } from './helpers.js';

const run = promisify(execFile);
const DOC = fileURLToPath(new URL('../../docs/cli/serve.md', import.meta.url));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-serve-cli-'));
const env = { ...process.env, GRAFT_FROM_SOURCE: '1', GRAFT_DEBUG: '', NODE_OPTIONS: '', GRAFT_THREADS: '1' };
let server: ChildProcess;
let url: string;
let stderr = '';

before(async () => {
  saveColourModel(path.join(tmp, 'runs', 'pets', 'model.onnx'));
  const [r, g, b] = COLOURS.red!;
  await sharp({ create: { width: 40, height: 30, channels: 3, background: { r, g, b } } })
    .jpeg()
    .toFile(path.join(tmp, 'cat.jpg'));
  // noisy images, some close to a tie between two colours, for the comparison with graft predict
  await writeColourImages(path.join(tmp, 'imgs'), {
    colours: [
      ['a', [200, 180, 20]],
      ['b', [40, 150, 160]],
      ['c', [120, 120, 120]],
    ],
    perClass: 3,
    size: 18,
    seed: 7,
    noise: 200,
  });
  // the batched runner here (the in-process tests use the default direct one), so --runner is exercised too
  server = spawn(process.execPath, [GRAFT_BIN, 'serve', 'runs/pets', '--port', '0', '--runner', 'batched', '--workers', '1'], { cwd: tmp, env });
  server.stderr!.on('data', (d) => (stderr += d));
  url = await new Promise<string>((resolve, reject) => {
    let out = '';
    server.stdout!.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    server.on('exit', (code) => reject(new Error(`graft serve exited with ${code}: ${stderr}`)));
  });
});
after(() => {
  if (server && server.exitCode === null) server.kill('SIGKILL');
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** The fenced blocks of docs/cli/serve.md in a language. */
function blocks(lang: string): string[] {
  return [...fs.readFileSync(DOC, 'utf8').matchAll(new RegExp(`^\`\`\`${lang}\\n([\\s\\S]*?)^\`\`\`$`, 'gm'))].map((m) => m[1]!);
}

const live = (code: string) => code.replaceAll('http://127.0.0.1:8000', url);

test('the curl snippets of docs/cli/serve.md, as written, against the live server', async () => {
  const snippet = blocks('sh').find((b) => b.includes('curl'));
  assert.ok(snippet, 'docs/cli/serve.md has a curl block');
  const commands = snippet!
    .replace(/\\\n\s*/g, '')
    .split('\n')
    .filter(Boolean);
  assert.ok(commands.length >= 5);
  const outputs = await Promise.all(commands.map(async (c) => (await run('bash', ['-c', live(c)], { cwd: tmp })).stdout));
  const json = outputs.map((o, i) => {
    assert.doesNotMatch(o, /"error"/, `${commands[i]} → ${o}`);
    return JSON.parse(o);
  });
  assert.deepEqual(json[0], { ready: true });
  assert.equal(json[1].name, 'pets');
  assert.equal(json[2][0].label, 'red');
  assert.equal(json[3][0].file, 'cat.jpg');
  assert.equal(json[3][0].top.length, 2);
  assert.match(json[4].outputs[0].data[0], /^0\.9\d*:0:red$/);
});

test('the Node client of docs/cli/serve.md, as written, against the live server', async () => {
  const [snippet] = blocks('js');
  assert.ok(snippet?.includes('fetch('));
  fs.writeFileSync(path.join(tmp, 'client.mjs'), live(snippet!));
  const { stdout } = await run(process.execPath, ['client.mjs'], { cwd: tmp, env });
  const lines = stdout.trim().split('\n');
  assert.match(lines[0]!, /^red 0\.9\d*$/);
  assert.match(lines[1]!, /^cat-1 \[ '0\.9\d*:0:red', '0\.\d+(e-\d+)?:\d:(green|blue)' \]$/);
});

test('/classify gives the top-1 and probability of graft predict on the same files', async () => {
  const files = fs
    .readdirSync(path.join(tmp, 'imgs'), { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.png'))
    .sort()
    .map((f) => path.join('imgs', f));
  const predict = await runGraft(['predict', 'runs/pets/model.onnx', ...files, '--format', 'json', '--top-k', '1'], tmp, { GRAFT_THREADS: '1' });
  assert.equal(predict.code, 0, predict.stderr);
  const expected = JSON.parse(predict.stdout).results as { file: string; top: { label: string; probability: number }[] }[];
  const form = new FormData();
  for (const f of files) form.append('image', new Blob([fs.readFileSync(path.join(tmp, f))]), f);
  const rows = (await (await fetch(`${url}/v2/models/pets/classify?top=1`, { method: 'POST', body: form })).json()) as {
    file: string;
    label: string;
    p: number;
  }[];
  assert.equal(rows.length, files.length);
  const labels = new Set<string>();
  for (const [i, e] of expected.entries()) {
    assert.equal(rows[i]!.file, path.basename(e.file)); // multipart keeps the file name, not its folders
    assert.equal(rows[i]!.label, e.top[0]!.label, e.file);
    assert.ok(Math.abs(rows[i]!.p - e.top[0]!.probability) < 1e-6, `${e.file}: ${rows[i]!.p} vs ${e.top[0]!.probability}`);
    labels.add(e.top[0]!.label);
  }
  assert.ok(labels.size >= 2, 'the images are not all one class');
});

test('SIGTERM: graft serve stops gracefully with exit code 0', async () => {
  const exited = new Promise<number | null>((resolve) => server.on('exit', (code) => resolve(code)));
  server.kill('SIGTERM');
  assert.equal(await exited, 0, stderr);
  assert.match(stderr, /SIGTERM: finishing in-flight requests/);
  assert.match(stderr, /graft serve stopped/);
});
