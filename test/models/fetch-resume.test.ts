/**
 * `fetchModel` against a loopback server (127.0.0.1, port 0) serving a small ONNX model graft builds itself; no
 * test touches the internet. A pinned hash lands the file in the cache; a wrong one leaves nothing; a transfer
 * that breaks off keeps its `.part` and the next fetch asks for the rest with `Range: bytes=N-`; a mirror
 * replaces the URL's origin; an opset graft cannot read is named after the download.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { mirrorUrl } from '../../src/models/download.js';
import { fetchModel } from '../../src/models/fetch.js';
import type { ModelEntry } from '../../src/models/registry.js';
import { encodeModel } from '../../src/onnx/io.js';
import { startLoopback, stopLoopback } from '../loopback.js';
import { buildModel } from '../onnx/helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-fetch-resume-'));
const onnx = Buffer.from(encodeModel(buildModel()));
const sha = createHash('sha256').update(onnx).digest('hex');
const old = Buffer.from(encodeModel(buildModel(6)));
const oldSha = createHash('sha256').update(old).digest('hex');
const seen: { url: string; range?: string }[] = [];
let cutOnce = true;
let server: http.Server;
let base = '';

before(async () => {
  ({ server, base } = await startLoopback((req, res) => {
    seen.push({ url: req.url ?? '', range: req.headers.range });
    const body = req.url?.endsWith('/old.onnx') ? old : onnx;
    if (req.url === '/cut.onnx' && !req.headers.range && cutOnce) {
      // announce the whole file, send the first part, then drop the connection
      cutOnce = false;
      res.writeHead(200, { 'content-length': body.length });
      res.write(body.subarray(0, 100), () => setTimeout(() => res.destroy(), 50));
      return;
    }
    if (!/\/(tiny|cut|old)\.onnx$/.test(req.url ?? '')) return void res.writeHead(404).end();
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (m) {
      const from = Number(m[1]);
      res.writeHead(206, { 'content-length': body.length - from, 'content-range': `bytes ${from}-${body.length - 1}/${body.length}` });
      res.end(body.subarray(from));
    } else res.writeHead(200, { 'content-length': body.length }).end(body);
  }));
});
after(() => {
  stopLoopback(server);
  fs.rmSync(tmp, { recursive: true, force: true });
});

const entry = (name: string, url: string, sha256 = sha, size = onnx.length): ModelEntry => ({
  name,
  family: 'onnx',
  description: `test ${name}`,
  preprocess: { size: 4, channels: 1, resize: 'stretch' },
  download: { url, sha256, size },
});
const files = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).sort() : []);

test('a fetch with the right pinned hash lands in the cache; a wrong hash is refused and nothing lands', async () => {
  const dir = path.join(tmp, 'pinned');
  const r = await fetchModel(entry('tiny', `${base}/tiny.onnx`), { dir, mirror: '' });
  assert.equal(r.sha256, sha);
  assert.deepEqual(fs.readFileSync(r.path), onnx);
  assert.deepEqual(files(dir), ['tiny.json', 'tiny.onnx']);

  const bad = path.join(tmp, 'bad');
  await assert.rejects(
    fetchModel(entry('tiny', `${base}/tiny.onnx`, 'f'.repeat(64)), { dir: bad, mirror: '' }),
    /Checksum mismatch .*expected f{64}.*it was deleted/,
  );
  assert.deepEqual(files(bad), [], 'no model, no sidecar, no .part');
});

test('an interrupted download keeps its .part and the next fetch resumes it with a Range request', async () => {
  const dir = path.join(tmp, 'resume');
  const e = entry('cut', `${base}/cut.onnx`);
  await assert.rejects(fetchModel(e, { dir, mirror: '' }), (err: Error) => {
    assert.match(err.message, /Download of .*cut\.onnx broke off/);
    assert.match(err.message, /kept in .*cut\.onnx\.part; the next fetch resumes/);
    return true;
  });
  assert.deepEqual(files(dir), ['cut.onnx.part', 'cut.onnx.part.json']);
  const kept = fs.statSync(path.join(dir, 'cut.onnx.part')).size;
  assert.ok(kept > 0 && kept < onnx.length, `a prefix was kept (${kept} bytes)`);

  let resumedAt = -1;
  const r = await fetchModel(e, { dir, mirror: '', onStart: (_t, resumed) => (resumedAt = resumed) });
  assert.equal(seen.at(-1)?.range, `bytes=${kept}-`, 'the server saw a Range request for the rest');
  assert.equal(resumedAt, kept);
  assert.equal(r.sha256, sha, 'the resumed file verifies against the pinned hash');
  assert.deepEqual(fs.readFileSync(r.path), onnx);
  assert.deepEqual(files(dir), ['cut.json', 'cut.onnx']);
});

test('the mirror setting replaces the origin of the download URL (option and GRAFT_MODEL_MIRROR)', async () => {
  assert.equal(
    mirrorUrl('https://github.com/onnx/models/raw/main/a/b.onnx?x=1', 'http://intranet/graft/'),
    'http://intranet/graft/onnx/models/raw/main/a/b.onnx?x=1',
  );
  assert.throws(() => mirrorUrl('https://github.com/x.onnx', 'intranet/graft'), /GRAFT_MODEL_MIRROR or --mirror\) is not an http/);
  const e = entry('tiny', 'http://models.invalid/tiny.onnx');
  const r = await fetchModel(e, { dir: path.join(tmp, 'mirror'), mirror: base });
  assert.equal(r.source, `${base}/tiny.onnx`);
  assert.equal(seen.at(-1)?.url, '/tiny.onnx');
  const saved = process.env.GRAFT_MODEL_MIRROR;
  process.env.GRAFT_MODEL_MIRROR = `${base}/`;
  try {
    const r2 = await fetchModel(e, { dir: path.join(tmp, 'mirror-env') });
    assert.equal(r2.source, `${base}/tiny.onnx`);
  } finally {
    if (saved === undefined) delete process.env.GRAFT_MODEL_MIRROR;
    else process.env.GRAFT_MODEL_MIRROR = saved;
  }
});

test('offline, the error names the mirror setting', async () => {
  const closed = http.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  await assert.rejects(
    fetchModel(entry('tiny', `http://127.0.0.1:${port}/tiny.onnx`), { dir: path.join(tmp, 'offline'), mirror: '' }),
    /connection was refused.*set GRAFT_MODEL_MIRROR=<url-prefix> \(or pass --mirror\) to fetch tiny/,
  );
});

test('a fetched model in an opset graft cannot read is named after the download, and the verified file is kept', async () => {
  const dir = path.join(tmp, 'old');
  await assert.rejects(
    fetchModel(entry('old', `${base}/old.onnx`, oldSha, old.length), { dir, mirror: '' }),
    /old was fetched and verified \(.*old\.onnx\), but graft cannot load it: .*uses opset 6; graft supports opsets 13–21/,
  );
  assert.deepEqual(files(dir), ['old.json', 'old.onnx']);
});
