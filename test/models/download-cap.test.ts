/**
 * Download size cap: a loopback server (127.0.0.1, port 0) that streams without Content-Length forever, or
 * announces more than the cap. The download stops at the cap with one clear error, the partial file never
 * grows past the cap, and nothing is left on disk. The CLI's --max-size sets the cap.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import type http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { DEFAULT_MAX_DOWNLOAD_BYTES, downloadFile } from '../../src/models/download.js';
import { parseBytes } from '../../src/util/bytes.js';
import { runGraft } from '../cli-run.js';
import { startLoopback, stopLoopback } from '../loopback.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-download-cap-'));
let server: http.Server;
let base = '';
let streamed = 0;

before(async () => {
  ({ server, base } = await startLoopback((req, res) => {
    if (req.url === '/endless') {
      // no Content-Length: chunked, as long as the client keeps reading (ends at 64 MiB, so that a regression
      // fails the test instead of filling the disk)
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(64 * 1024, 7);
      let sent = 0;
      const pump = () => {
        while (!res.destroyed && sent < 64 * 1024 ** 2) {
          sent += chunk.length;
          streamed += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        if (!res.destroyed) res.end();
      };
      res.on('close', () => res.removeAllListeners('drain'));
      pump();
    } else if (req.url === '/announced') {
      res.writeHead(200, { 'content-length': String(3 * 1024 ** 3) }); // 3 GiB announced, then a trickle
      res.write(Buffer.alloc(1024));
    } else res.writeHead(404).end();
  }));
});
after(() => {
  stopLoopback(server);
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Runs `fn` while sampling the largest file in `dir` every few ms; returns that largest size seen. */
async function largestWhile(dir: string, fn: () => Promise<unknown>): Promise<number> {
  let top = 0;
  const sample = () => {
    for (const n of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
      try {
        top = Math.max(top, fs.statSync(path.join(dir, n)).size);
      } catch {
        // removed between readdir and stat
      }
    }
  };
  const timer = setInterval(sample, 2);
  try {
    await fn();
  } finally {
    clearInterval(timer);
    sample();
  }
  return top;
}

test('a stream without Content-Length stops at the cap with a clear error; nothing bigger than the cap is on disk', async () => {
  const dir = path.join(tmp, 'endless');
  const dest = path.join(dir, 'm.onnx');
  const cap = 3 * 1024 * 1024 + 123;
  let err: Error | undefined;
  const top = await largestWhile(dir, () =>
    downloadFile(`${base}/endless`, dest, { maxBytes: cap, raiseCap: 'graft models fetch m --max-size 8MB' }).catch((e) => (err = e)),
  );
  assert.ok(err, 'the download fails');
  assert.match(
    err.message,
    /^Download of http:\/\/127\.0\.0\.1:\d+\/endless stopped: more than \d+ bytes, over the cap of 3\.0 MB \(3145851 bytes\); nothing was kept\./,
  );
  assert.match(err.message, /raise the cap: graft models fetch m --max-size 8MB\.$/);
  assert.ok(top <= cap, `a file of ${top} bytes was on disk, over the cap of ${cap}`);
  assert.ok(top > 0, 'the sampler saw the part file');
  assert.deepEqual(fs.readdirSync(dir), [], 'the partial file is removed');
  const sent = streamed;
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(streamed - sent < 4 * 1024 * 1024, 'the connection was dropped (the server is not read any more)');
});

test('a pinned size is the default cap; without one the default is 2 GiB, and an announced length over the cap fails before any byte is written', async () => {
  const dest = path.join(tmp, 'pinned', 'm.onnx');
  await assert.rejects(downloadFile(`${base}/endless`, dest, { size: 5000 }), (e: Error) => {
    assert.match(e.message, /stopped: more than \d+ bytes, over the cap of 4\.9 KB \(5000 bytes\), the size the registry entry pins\./);
    assert.match(e.message, /update the entry's "size" and "sha256", or fetch it with --url and --max-size/);
    return true;
  });
  assert.deepEqual(fs.readdirSync(path.dirname(dest)), []);
  assert.equal(DEFAULT_MAX_DOWNLOAD_BYTES, 2 * 1024 ** 3);
  const dest2 = path.join(tmp, 'announced', 'm.onnx');
  await assert.rejects(downloadFile(`${base}/announced`, dest2), /stopped: 3221225472 bytes announced, over the cap of 2\.0 GB \(2147483648 bytes\)/);
  assert.deepEqual(fs.readdirSync(path.dirname(dest2)), []);
});

test('a local file over the cap is refused before it is copied', async () => {
  const src = path.join(tmp, 'big.onnx');
  fs.writeFileSync(src, Buffer.alloc(10_000));
  const dest = path.join(tmp, 'local', 'm.onnx');
  await assert.rejects(downloadFile(src, dest, { maxBytes: 4096 }), /big\.onnx stopped: 10000 bytes announced, over the cap of 4\.0 KB \(4096 bytes\)/);
  assert.deepEqual(fs.readdirSync(path.dirname(dest)), []);
});

test('parseBytes reads plain byte counts and KB/MB/GB (units of 1024)', () => {
  assert.equal(parseBytes('2000000'), 2_000_000);
  assert.equal(parseBytes('500MB'), 500 * 1024 ** 2);
  assert.equal(parseBytes('1.5 gb'), 1.5 * 1024 ** 3);
  assert.equal(parseBytes('64k'), 65536);
  for (const bad of ['', 'lots', '-5', '0', '5 parsecs', '1e9']) assert.equal(parseBytes(bad), undefined, bad);
});

test('graft models fetch --max-size caps a download from --url; a bad value is one clear error', async () => {
  const cache = path.join(tmp, 'cache');
  const env = { GRAFT_MODELS_DIR: cache };
  const [capped, bad] = await Promise.all([
    runGraft(['models', 'fetch', 'resnet18', '--url', `${base}/endless`, '--max-size', '2MB'], tmp, env),
    runGraft(['models', 'fetch', 'resnet18', '--max-size', 'huge'], tmp, env),
  ]);
  assert.equal(capped.code, 1, capped.stderr);
  const lines = capped.stderr.split('\n').filter((l) => l.startsWith('graft: error:'));
  assert.equal(lines.length, 1, capped.stderr);
  assert.match(
    lines[0]!,
    /endless stopped: more than \d+ bytes, over the cap of 2\.0 MB \(2097152 bytes\); nothing was kept\. If the file really is that large, raise the cap: graft models fetch resnet18 --url http:\/\/127\.0\.0\.1:\d+\/endless --max-size 4MB\./,
  );
  assert.deepEqual(fs.existsSync(cache) ? fs.readdirSync(cache) : [], [], 'nothing in the cache');
  assert.equal(bad.code, 1);
  assert.match(
    bad.stderr,
    /graft: error: --max-size must be a positive size in bytes or with a unit \(KB, MB, GB; 1 MB = 1024² bytes\), e\.g\. 500MB or 4GB; got "huge"\./,
  );
});
