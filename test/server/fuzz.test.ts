/**
 * graft serve under hostile input: seeded random mutations of infer requests (never a 5xx, never a crash),
 * garbage bytes, huge headers (431), a slowloris trickle of headers or body (cut off by the request timeouts),
 * and 2000 concurrent connections; the server answers its health check after each.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { resolveSources } from '../../src/server/repository.js';
import { type RunningServer, startServer } from '../../src/server/serve.js';
import { Rng } from '../../src/tensor.js';
import { COLOURS, colourPng, saveColourModel } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-fuzz-'));
let srv: RunningServer;
let port: number;
let png: Buffer;

before(async () => {
  saveColourModel(path.join(tmp, 'colours', 'model.onnx'));
  png = await colourPng(COLOURS.red!);
  srv = await startServer({
    sources: await resolveSources([path.join(tmp, 'colours')]),
    port: 0,
    requestTimeoutMs: 1000,
    maxBodyBytes: 256 * 1024,
    maxPixels: 1000,
    runner: { threads: 1 },
  });
  port = Number(new URL(srv.url).port);
});
after(async () => {
  await srv?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function healthy(): Promise<void> {
  const r = await fetch(`${srv.url}/v2/health/live`);
  assert.equal(r.status, 200);
}

/** Writes `chunks` to a raw socket (with `gapMs` between them) and collects what comes back until the server closes it. */
function raw(chunks: (string | Buffer)[], gapMs = 0, maxMs = 6000): Promise<{ text: string; closedAfterMs: number }> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const sock = net.connect(port, '127.0.0.1');
    let text = '';
    let timer: NodeJS.Timeout | undefined;
    const guard = setTimeout(() => {
      sock.destroy();
      reject(new Error(`the server kept the connection open for ${maxMs} ms; received: ${text.slice(0, 200)}`));
    }, maxMs);
    sock.on('data', (d) => (text += d.toString('latin1')));
    sock.on('error', () => {}); // a reset after the server's answer is fine: 'close' follows
    sock.on('close', () => {
      clearTimeout(guard);
      clearTimeout(timer);
      resolve({ text, closedAfterMs: Date.now() - t0 });
    });
    let i = 0;
    const next = () => {
      if (i >= chunks.length || sock.destroyed) return;
      sock.write(chunks[i++]!);
      timer = setTimeout(next, gapMs);
    };
    sock.on('connect', next);
  });
}

/** A valid infer request with 0–3 random mutations: wrong names, datatypes, shapes, data, nesting and types. */
function mutant(rng: Rng): unknown {
  const pick = <T>(xs: T[]): T => xs[rng.int(xs.length)]!;
  const junk = (): unknown =>
    pick([null, true, -1, 0, 1e308, -0.5, 'x', '', '🙂', [], {}, [[[]]], { a: 1 }, Number.MAX_SAFE_INTEGER, 'A'.repeat(rng.int(300)), [1, 'a', null]]);
  const n = 1 + rng.int(3);
  const input: Record<string, unknown> = {
    name: 'input',
    shape: [n, 3, 16, 16],
    datatype: 'FP32',
    data: Array.from({ length: n * 768 }, () => rng.next() * 2 - 1),
  };
  const body: Record<string, unknown> = { inputs: [input] };
  if (rng.next() < 0.5)
    body.outputs = [{ name: pick(['logits', 'probabilities']), parameters: rng.next() < 0.5 ? { classification: 1 + rng.int(3) } : undefined }];
  const mutations = [
    () => (input.name = pick(['x', '', junk()])),
    () =>
      (input.shape = pick([[n], [], [1, 3, 16], [-1, 3, 16, 16], [1, 3, 16, 16, 1], [1e9, 1e9], [1.5, 3, 16, 16], [0, 3, 16, 16], [40, 3, 16, 16], junk()])),
    () => (input.datatype = pick(['FP64', 'INT64', 'BYTES', 'BOOL', 'UINT8', 'FP16', 'fp32', junk()])),
    () => Array.isArray(input.data) && (input.data = input.data.slice(0, rng.int(input.data.length))),
    () => Array.isArray(input.data) && input.data.length && (input.data[rng.int(input.data.length)] = junk()),
    () => {
      input.datatype = 'BYTES';
      input.shape = [n];
      input.data = Array.from({ length: n }, () =>
        pick([
          () => png.toString('base64'),
          () => png.toString('base64').slice(0, rng.int(200)),
          () => Buffer.from(Array.from({ length: 64 }, () => rng.int(256))).toString('base64'),
          () => junk(),
        ])(),
      );
    },
    () => (input.data = pick([junk(), JSON.parse(`${'['.repeat(40)}${']'.repeat(40)}`)])),
    () => delete input[pick(['name', 'shape', 'datatype', 'data'])],
    () => (body.inputs = pick([[input, input], [], junk()])),
    () => (body.outputs = pick([[{ name: 'logits', parameters: { classification: pick([0, -2, 99, 'x']) } }], [{ name: 'nope' }], junk()])),
    () => (body.id = junk()),
  ];
  const k = pick([0, 1, 1, 1, 2, 3]);
  for (let i = 0; i < k; i++) pick(mutations)();
  return rng.next() < 0.03 ? junk() : body;
}

test('300 random mutations of valid infer requests: each a 200 or a 4xx with {"error"}, never a 5xx', async () => {
  const rng = new Rng(15);
  const statuses = new Map<number, number>();
  for (let i = 0; i < 300; i++) {
    const body = mutant(rng);
    const r = await fetch(`${srv.url}/v2/models/colours/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const j = (await r.json()) as { error?: string };
    statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
    assert.ok(
      r.status === 200 || (r.status >= 400 && r.status < 500),
      `HTTP ${r.status} for ${JSON.stringify(body).slice(0, 300)}: ${JSON.stringify(j).slice(0, 300)}`,
    );
    if (r.status !== 200) assert.equal(typeof j.error, 'string');
  }
  // both paths are exercised: valid requests (and harmless mutations) answered, broken ones refused
  assert.ok((statuses.get(400) ?? 0) > 100 && (statuses.get(200) ?? 0) > 30, `statuses: ${JSON.stringify([...statuses])}`);
  await healthy();
});

test('--max-pixels: an image with more pixels is refused from its header, before decoding', async () => {
  const big = await colourPng(COLOURS.red!, 40, 40);
  const r = await fetch(`${srv.url}/v2/models/colours/classify`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: big });
  const j = (await r.json()) as { error: string };
  assert.equal(r.status, 400, JSON.stringify(j));
  assert.match(j.error, /40×40 pixels .* over the limit/);
  const inputs = [{ name: 'input', shape: [1], datatype: 'BYTES', data: [big.toString('base64')] }];
  const b64 = await fetch(`${srv.url}/v2/models/colours/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inputs }),
  });
  assert.equal(b64.status, 400, 'a base64 image too');
  assert.match(((await b64.json()) as { error: string }).error, /40×40 pixels .* over the limit/);
  const ok = await fetch(`${srv.url}/v2/models/colours/classify`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: png });
  assert.equal(ok.status, 200, 'a 20×24 image is under the limit');
});

test('malformed multipart bodies: 400 naming the problem', async () => {
  const part = '--xyz\r\nContent-Disposition: form-data; name="a"; filename="a.png"\r\n\r\nabc';
  for (const [type, body] of [
    ['multipart/form-data; boundary=xyz', 'garbage'],
    ['multipart/form-data', '--x\r\n'],
    ['multipart/form-data; boundary=xyz', part],
  ]) {
    const r = await fetch(`${srv.url}/v2/models/colours/classify`, { method: 'POST', headers: { 'content-type': type! }, body });
    const j = (await r.json()) as { error: string };
    assert.equal(r.status, 400, `${type} ${JSON.stringify(body)}: ${j.error}`);
    assert.match(j.error, /multipart body is malformed/);
  }
  await healthy();
});

test('garbage bytes and a huge header: the HTTP parser refuses them (400, 431), the server stays up', async () => {
  const rng = new Rng(3);
  const garbage = await raw([Buffer.from(Array.from({ length: 4096 }, () => rng.int(256)))]);
  assert.match(garbage.text, /^HTTP\/1\.1 400/);
  const huge = await raw([`GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`]);
  assert.match(huge.text, /^HTTP\/1\.1 431/);
  await healthy();
});

test('slowloris: a trickle of headers or of a body, or a silent connection, is cut off by the request timeout while others are served', async () => {
  const trickle = Array.from({ length: 40 }, (_, i) => (i === 0 ? 'GET /v2/health/live HTTP/1.1\r\nHost: x\r\n' : `X-${i}: y\r\n`));
  const body = [
    'POST /v2/models/colours/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n',
    ...Array.from({ length: 40 }, () => '[[[['),
  ];
  const [h, b, silent] = await Promise.all([raw(trickle, 150), raw(body, 150), raw([]), healthy()]);
  for (const r of [h, b, silent]) {
    assert.ok(r.closedAfterMs < 4000, `closed after ${r.closedAfterMs} ms`);
    assert.ok(r.closedAfterMs >= 900, `not before the 1 s timeout: ${r.closedAfterMs} ms`);
    assert.ok(r.text === '' || /^HTTP\/1\.1 408/.test(r.text), r.text.slice(0, 100));
  }
  await healthy();
});

test('2000 concurrent connections are all answered', async () => {
  const N = 2000;
  const results = await Promise.all(
    Array.from(
      { length: N },
      () =>
        new Promise<string>((resolve) => {
          const sock = net.connect(port, '127.0.0.1', () => sock.write('GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
          let text = '';
          sock.on('data', (d) => (text += d));
          sock.on('error', (e) => resolve(`error ${e.message}`));
          sock.on('close', () => resolve(text));
        }),
    ),
  );
  const ok = results.filter((t) => t.startsWith('HTTP/1.1 200')).length;
  assert.equal(ok, N, `first failure: ${results.find((t) => !t.startsWith('HTTP/1.1 200'))?.slice(0, 200)}`);
  await healthy();
});
