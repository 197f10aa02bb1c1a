/**
 * A download's `onProgress(received, total)` against a loopback server (nothing from the internet): it starts at
 * 0 (or at the bytes a resumed download already has), grows with every chunk and ends at the file's size; through
 * `fetchModel` and `resolveModelRef` too; and `downloadTaskProgress` turns it into a run's `progress` reports in KiB
 * (one per percent, the last one whole).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import type http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { downloadFile, partPaths } from '../../src/models/download.js';
import { fetchModel } from '../../src/models/fetch.js';
import type { ModelEntry } from '../../src/models/registry.js';
import { downloadTaskProgress, resolveModelRef } from '../../src/models/resolve.js';
import { encodeModel } from '../../src/onnx/io.js';
import type { TaskProgress } from '../../src/util/progress.js';
import { startLoopback, stopLoopback } from '../loopback.js';
import { buildModel } from '../onnx/helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-download-progress-'));
/** 200 KiB in 10 chunks: enough for several progress reports. */
const blob = Buffer.from(Array.from({ length: 200 * 1024 }, (_, i) => (i * 31) % 251));
const onnx = Buffer.from(encodeModel(buildModel()));
let server: http.Server;
let base = '';

before(async () => {
  ({ server, base } = await startLoopback(async (req, res) => {
    const body = req.url === '/model.onnx' ? onnx : blob;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const from = m ? Number(m[1]) : 0;
    if (m) res.writeHead(206, { 'content-length': body.length - from, 'content-range': `bytes ${from}-${body.length - 1}/${body.length}` });
    else res.writeHead(200, { 'content-length': body.length });
    const step = Math.ceil(body.length / 10);
    for (let at = from; at < body.length; at += step) {
      res.write(body.subarray(at, Math.min(at + step, body.length)));
      await new Promise((r) => setTimeout(r, 5));
    }
    res.end();
  }));
});
after(() => {
  stopLoopback(server);
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Checks a sequence of (received, total) calls: from `start`, never shrinking, ending at the whole size. */
function assertProgress(calls: [number, number | undefined][], size: number, start = 0): void {
  assert.ok(calls.length >= 3, `several reports: ${JSON.stringify(calls)}`);
  assert.deepEqual(calls[0], [start, size]);
  assert.deepEqual(calls.at(-1), [size, size]);
  for (let i = 1; i < calls.length; i++) assert.ok(calls[i]![0] >= calls[i - 1]![0], `grows: ${JSON.stringify(calls)}`);
  assert.ok(
    calls.every(([, t]) => t === size),
    'the total is known throughout',
  );
}

test('downloadFile reports the bytes received of the total, from the first byte to the last', async () => {
  const calls: [number, number | undefined][] = [];
  const r = await downloadFile(`${base}/blob`, path.join(tmp, 'a', 'blob.bin'), { onProgress: (n, t) => calls.push([n, t]) });
  assert.equal(r.bytes, blob.length);
  assertProgress(calls, blob.length);
});

test('a resumed download reports from the bytes it already had', async () => {
  const dest = path.join(tmp, 'b', 'blob.bin');
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  const p = partPaths(dest);
  const have = 50_000;
  fs.writeFileSync(p.part, blob.subarray(0, have));
  fs.writeFileSync(p.note, JSON.stringify({ source: `${base}/blob` }));
  const calls: [number, number | undefined][] = [];
  const r = await downloadFile(`${base}/blob`, dest, { onProgress: (n, t) => calls.push([n, t]) });
  assert.equal(r.resumed, have);
  assertProgress(calls, blob.length, have);
  assert.deepEqual(fs.readFileSync(dest), blob);
});

test('fetchModel and resolveModelRef pass onProgress through (a registry name, fetched on first use)', async () => {
  const sha256 = createHash('sha256').update(onnx).digest('hex');
  const entry: ModelEntry = {
    name: 'progress-net',
    family: 'onnx',
    description: 'test',
    preprocess: { size: 4, channels: 1, resize: 'stretch' },
    download: { url: `${base}/model.onnx`, sha256, size: onnx.length },
  };
  const calls: [number, number | undefined][] = [];
  await fetchModel(entry, { dir: path.join(tmp, 'c'), mirror: '', onProgress: (n, t) => calls.push([n, t]) });
  assert.deepEqual(calls[0], [0, onnx.length]);
  assert.deepEqual(calls.at(-1), [onnx.length, onnx.length]);

  const registry = path.join(tmp, 'registry.json');
  fs.writeFileSync(registry, JSON.stringify({ models: [entry] }));
  const saved = { r: process.env.GRAFT_REGISTRY, m: process.env.GRAFT_MODEL_MIRROR };
  process.env.GRAFT_REGISTRY = registry;
  delete process.env.GRAFT_MODEL_MIRROR;
  try {
    const viaRef: [number, number | undefined][] = [];
    const notes: string[] = [];
    const file = await resolveModelRef('progress-net', {
      dir: path.join(tmp, 'd'),
      progress: false,
      onNote: (m) => notes.push(m),
      onProgress: (n, t) => viaRef.push([n, t]),
    });
    assert.deepEqual(fs.readFileSync(file), onnx);
    assert.deepEqual(viaRef.at(-1), [onnx.length, onnx.length]);
    assert.match(notes.join('\n'), /progress-net is not in the model cache yet: fetching it from http:\/\/127\.0\.0\.1:\d+\/model\.onnx/);
    // cached now: no download, no progress
    const again: [number, number | undefined][] = [];
    await resolveModelRef('progress-net', { dir: path.join(tmp, 'd'), progress: false, onProgress: (n, t) => again.push([n, t]) });
    assert.deepEqual(again, []);
  } finally {
    if (saved.r === undefined) delete process.env.GRAFT_REGISTRY;
    else process.env.GRAFT_REGISTRY = saved.r;
    if (saved.m !== undefined) process.env.GRAFT_MODEL_MIRROR = saved.m;
  }
});

test('downloadTaskProgress: KiB reports, one per percent at most, never whole before the last byte, the last one whole', () => {
  const reports: TaskProgress[] = [];
  const on = downloadTaskProgress('net', (p) => reports.push(p));
  const total = 3_000_000;
  for (let n = 0; n < total; n += 4096) on(n, total);
  on(total - 1, total);
  on(total, total);
  const kib = Math.ceil(total / 1024);
  assert.ok(reports.length <= 102 && reports.length >= 50, `${reports.length} reports`);
  assert.ok(reports.every((r) => r.task === 'fetching net' && r.unit === 'KiB' && r.total === kib));
  assert.deepEqual(reports.at(-1), { task: 'fetching net', done: kib, total: kib, unit: 'KiB' });
  assert.ok(
    reports.slice(0, -1).every((r) => r.done < kib),
    'done = total only once the last byte is in',
  );
  for (let i = 1; i < reports.length; i++) assert.ok(reports[i]!.done >= reports[i - 1]!.done);
  // a size that is not known: nothing to draw a bar of
  const none: TaskProgress[] = [];
  downloadTaskProgress('net', (p) => none.push(p))(1000, undefined);
  assert.deepEqual(none, []);
});
