/**
 * Hot reload of a model repository folder (`<name>/<version>/model.onnx`): a new version is loaded once its files
 * stop changing and becomes the default; a version rewritten in place is swapped atomically while the old runner
 * drains; a broken file is reported and what was served stays; a removed version is unloaded.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import type { OpenRunner } from '../../src/server/contract.js';
import { openDirectRunner } from '../../src/server/direct-runner.js';
import { resolveSources } from '../../src/server/repository.js';
import { startServer } from '../../src/server/serve.js';
import { COLOURS, colourPng, saveColourModel } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-reload-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Saves a colour model into `dir` elsewhere, then moves it into place (as a deployment would). */
function deploy(repo: string, version: string, order?: number[]): void {
  const staging = path.join(tmp, `staging-${version}-${Date.now()}`);
  saveColourModel(path.join(staging, 'model.onnx'), { order });
  const target = path.join(repo, 'colours', version);
  fs.mkdirSync(target, { recursive: true });
  // sidecar first, then the model: the server sees a complete version once model.onnx appears
  fs.renameSync(path.join(staging, 'model.json'), path.join(target, 'model.json'));
  fs.renameSync(path.join(staging, 'model.onnx'), path.join(target, 'model.onnx'));
}

async function until(what: string, cond: () => Promise<boolean>, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

test('repository folder: new version loaded and made the default, in-place swap drains the old runner, broken and removed versions', async () => {
  const repo = path.join(tmp, 'repo');
  deploy(repo, '1');
  const drained: string[] = [];
  const opened: string[] = [];
  const spy: OpenRunner = async (file, opts) => {
    const r = await openDirectRunner(file, opts);
    opened.push(opts.version);
    return { info: r.info, infer: (i, o) => r.infer(i, o), drain: () => r.drain().then(() => void drained.push(opts.version)) };
  };
  const notes: string[] = [];
  const s = await startServer({
    sources: await resolveSources([repo]),
    port: 0,
    pollMs: 40,
    openRunner: spy,
    runner: { threads: 1 },
    onNote: (m) => notes.push(m),
  });
  const red = await colourPng(COLOURS.red!);
  const classify = async (v?: string) => {
    const r = await fetch(`${s.url}/v2/models/colours${v ? `/versions/${v}` : ''}/classify`, {
      method: 'POST',
      headers: { 'content-type': 'image/png' },
      body: red,
    });
    return r.status === 200 ? ((await r.json()) as { label: string }[])[0]!.label : `HTTP ${r.status}`;
  };
  const meta = async () => (await (await fetch(`${s.url}/v2/models/colours`)).json()) as { versions: string[] };
  try {
    assert.equal(await classify(), 'red');
    assert.deepEqual((await meta()).versions, ['1']);

    // version 2 swaps the first two classes: red pixels now read as "green"
    deploy(repo, '2', [1, 0, 2]);
    await until('version 2', async () => (await meta()).versions.includes('2'));
    assert.equal(await classify(), 'green', 'the newest version answers unversioned requests');
    assert.equal(await classify('1'), 'red', 'version 1 is still served by number');
    assert.deepEqual(drained, []);

    // version 1 rewritten in place: a new runner is swapped in, the old one drained and released
    const before = s.repository.get('colours', '1');
    deploy(repo, '1', [2, 1, 0]);
    await until('version 1 reloaded', async () => (await classify('1')) === 'blue');
    await until('old version 1 drained', async () => drained.includes('1'));
    assert.deepEqual(opened, ['1', '2', '1']);
    // a request that looked the old version up just before the swap is answered by the new one, not refused
    const x = { input: { datatype: 'FP32' as const, shape: [1, 3, 16, 16], data: new Float32Array(768).fill(1) } };
    await assert.rejects(before.runner.infer(x), /shutting down or reloading/);
    const late = await s.repository.infer(before, x, ['logits'], true);
    assert.deepEqual([...(late.logits!.data as Float32Array)], [10, 10, 10]);

    // a broken file is reported once, and the version stays as it was
    fs.writeFileSync(path.join(repo, 'colours', '2', 'model.onnx'), 'not a model');
    await until('the failure note', async () => notes.some((n) => /could not load .*2.*model\.onnx.*still serving/.test(n)));
    assert.equal(await classify('2'), 'green');

    // a removed version is unloaded (and drained)
    fs.rmSync(path.join(repo, 'colours', '2'), { recursive: true });
    await until('version 2 unloaded', async () => !(await meta()).versions.includes('2'));
    await until('version 2 drained', async () => drained.includes('2'));
    assert.equal(await classify(), 'blue');
    assert.equal(await classify('2'), 'HTTP 404');
  } finally {
    await s.close();
  }
  assert.equal(drained.filter((v) => v === '1').length, 2, 'close drains the current version 1 too');
});
