/**
 * graft serve in-process on port 0: every OIP endpoint, the classification extension, base64 images, /classify,
 * the error paths (each a 4xx with {"error"}), queue-full 503, bearer tokens and graceful close.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ModelRunner, OpenRunner } from '../../src/server/contract.js';
import { QueueFullError } from '../../src/server/contract.js';
import { openDirectRunner } from '../../src/server/direct-runner.js';
import { resolveSources } from '../../src/server/repository.js';
import { type RunningServer, startServer } from '../../src/server/serve.js';
import { openBatchedRunner } from '../../src/server/worker-runner.js';
import { COLOURS, colourPng, LABELS, saveColourModel } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-serve-'));
let srv: RunningServer;
let base: string;
const pngs: Record<string, Buffer> = {};

before(async () => {
  saveColourModel(path.join(tmp, 'colours', 'model.onnx')); // a run folder
  saveColourModel(path.join(tmp, 'fixed', 'fixed.onnx'), { batch: 1, temperature: 2 });
  saveColourModel(path.join(tmp, 'plain', 'model.onnx'), { plain: true }); // no labels or preprocessing: tensors only
  for (const [c, rgb] of Object.entries(COLOURS)) pngs[c] = await colourPng(rgb);
  const sources = await resolveSources([path.join(tmp, 'colours'), path.join(tmp, 'fixed', 'fixed.onnx'), path.join(tmp, 'plain')]);
  // the direct runner here (deterministic, one session); the batched default is checked against it below
  srv = await startServer({ sources, port: 0, maxBodyBytes: 1024 * 1024, runner: { threads: 1 }, openRunner: openDirectRunner });
  base = srv.url;
});
after(async () => {
  await srv?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

// biome-ignore lint/suspicious/noExplicitAny: response JSON, checked field by field below
type Json = any;

async function get(p: string): Promise<{ status: number; body: Json }> {
  const r = await fetch(base + p);
  return { status: r.status, body: await r.json() };
}

async function post(
  p: string,
  body: unknown,
  headers: Record<string, string> = { 'content-type': 'application/json' },
): Promise<{ status: number; body: Json; headers: Headers }> {
  const r = await fetch(base + p, {
    method: 'POST',
    headers,
    body: typeof body === 'string' || Buffer.isBuffer(body) || body instanceof FormData ? (body as never) : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: JSON.parse(text), headers: r.headers };
}

/** A [1, 3, 16, 16] FP32 tensor whose channels are constant `rgb` (so the model's logits are 10 · rgb). */
function constantImage(rgb: number[]): number[] {
  return rgb.flatMap((v) => new Array(256).fill(v));
}

function softmax(x: number[]): number[] {
  const m = Math.max(...x);
  const e = x.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

describe('metadata and health', () => {
  test('health, server metadata, model list', async () => {
    assert.deepEqual(await get('/v2/health/live'), { status: 200, body: { live: true } });
    assert.deepEqual(await get('/v2/health/ready'), { status: 200, body: { ready: true } });
    const meta = await get('/v2');
    assert.equal(meta.status, 200);
    assert.equal(meta.body.name, 'graft');
    assert.match(meta.body.version, /^\d+\.\d+\.\d+/);
    assert.ok(meta.body.extensions.includes('classification'));
    assert.deepEqual(
      (await get('/v2/models')).body.models.map((m: { name: string }) => m.name),
      ['colours', 'fixed', 'plain'],
    );
  });

  test('model metadata: inputs and outputs with datatype and shape; versions; ready', async () => {
    const m = await get('/v2/models/colours');
    assert.equal(m.status, 200);
    assert.deepEqual(m.body.inputs, [{ name: 'input', datatype: 'FP32', shape: [-1, 3, 16, 16] }]);
    assert.deepEqual(
      m.body.outputs.map((o: { name: string; datatype: string; shape: number[] }) => [o.name, o.datatype, o.shape]),
      [
        ['logits', 'FP32', [-1, 3]],
        ['probabilities', 'FP32', [-1, 3]],
      ],
    );
    assert.deepEqual(m.body.versions, ['1']);
    assert.deepEqual(m.body.parameters.labels, LABELS);
    assert.deepEqual((await get('/v2/models/fixed/versions/1')).body.inputs[0].shape, [1, 3, 16, 16]);
    assert.deepEqual(await get('/v2/models/colours/ready'), { status: 200, body: { name: 'colours', version: '1', ready: true } });
    assert.equal((await get('/v2/models/colours/versions/1/ready')).status, 200);
  });

  test('unknown model, version or route: 404 with an error that names what exists', async () => {
    const a = await get('/v2/models/nope');
    assert.equal(a.status, 404);
    assert.match(a.body.error, /No model "nope".*"colours"/);
    const b = await get('/v2/models/colours/versions/7/ready');
    assert.equal(b.status, 404);
    assert.match(b.body.error, /no version "7".*"1"/);
    const c = await get('/v3/whatever');
    assert.equal(c.status, 404);
    assert.match(c.body.error, /No such endpoint/);
  });
});

describe('infer', () => {
  test('FP32 tensors, flat and nested: logits and probabilities of the model, id echoed, outputs selected', async () => {
    const rgb = [0.1, 0.5, 0.2];
    const flat = await post('/v2/models/colours/infer', {
      id: 'req-1',
      inputs: [{ name: 'input', shape: [1, 3, 16, 16], datatype: 'FP32', data: constantImage(rgb) }],
    });
    assert.equal(flat.status, 200, JSON.stringify(flat.body));
    assert.equal(flat.body.id, 'req-1');
    assert.equal(flat.body.model_name, 'colours');
    assert.equal(flat.body.model_version, '1');
    const [logits, probs] = flat.body.outputs;
    assert.deepEqual([logits.name, logits.datatype, logits.shape], ['logits', 'FP32', [1, 3]]);
    for (const [i, v] of rgb.entries()) assert.ok(Math.abs(logits.data[i] - 10 * v) < 1e-4, `logit ${i}: ${logits.data[i]}`);
    for (const [i, p] of softmax(rgb.map((v) => 10 * v)).entries()) assert.ok(Math.abs(probs.data[i] - p) < 1e-5);
    // the same tensor nested [1][3][16][16], two rows, only "probabilities"
    const nested = [rgb, [0.9, 0, 0]].map((c) => c.map((v) => Array.from({ length: 16 }, () => new Array(16).fill(v))));
    const two = await post('/v2/models/colours/infer', {
      inputs: [{ name: 'input', shape: [2, 3, 16, 16], datatype: 'FP32', data: nested }],
      outputs: [{ name: 'probabilities' }],
    });
    assert.equal(two.status, 200, JSON.stringify(two.body));
    assert.equal(two.body.id, undefined);
    assert.deepEqual(
      two.body.outputs.map((o: { name: string }) => o.name),
      ['probabilities'],
    );
    assert.deepEqual(two.body.outputs[0].shape, [2, 3]);
    assert.ok(Math.abs(two.body.outputs[0].data[1] - probs.data[1]) < 1e-6);
    assert.ok(two.body.outputs[0].data[3] > 0.99, 'row 2 is red');
  });

  test('a JSON body without a JSON content type (curl -d) is read as JSON', async () => {
    const body = { inputs: [{ name: 'input', shape: [1, 3, 16, 16], datatype: 'FP32', data: constantImage([0.9, 0, 0]) }] };
    for (const type of ['application/x-www-form-urlencoded', 'text/plain']) {
      const r = await post('/v2/models/colours/infer', JSON.stringify(body), { 'content-type': type });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.ok(r.body.outputs[0].data[0] > 8, type);
    }
  });

  test('classification extension: "score:index:label" with the calibrated probabilities, k per row', async () => {
    const rgb = [0.1, 0.5, 0.2];
    const r = await post('/v2/models/fixed/infer', {
      inputs: [{ name: 'input', shape: [1, 3, 16, 16], datatype: 'FP32', data: constantImage(rgb) }],
      outputs: [{ name: 'logits', parameters: { classification: 2 } }],
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const out = r.body.outputs[0];
    assert.deepEqual([out.name, out.datatype, out.shape], ['logits', 'BYTES', [1, 2]]);
    const p = softmax(rgb.map((v) => (10 * v) / 2)); // the fixed model's temperature is 2
    const parsed = out.data.map((s: string) => s.split(':'));
    assert.deepEqual(
      parsed.map((x: string[]) => [x[1], x[2]]),
      [
        ['1', 'green'],
        ['2', 'blue'],
      ],
    );
    assert.ok(Math.abs(Number(parsed[0][0]) - p[1]!) < 1e-5, `${parsed[0][0]} vs ${p[1]}`);
    // labels on any output with a score per class
    const probs = await post('/v2/models/colours/infer', {
      inputs: [{ name: 'input', shape: [1, 3, 16, 16], datatype: 'FP32', data: constantImage([0.9, 0.1, 0]) }],
      outputs: [{ name: 'probabilities', parameters: { classification: 1 } }],
    });
    assert.match(probs.body.outputs[0].data[0], /^0\.99\d*:0:red$/);
    // a model without labels: "score:index"
    const plain = await post('/v2/models/plain/infer', {
      inputs: [{ name: 'input', shape: [1, 3, 16, 16], datatype: 'FP32', data: constantImage([0.9, 0.1, 0]) }],
      outputs: [{ name: 'probabilities', parameters: { classification: 1 } }],
    });
    assert.equal(plain.status, 200, JSON.stringify(plain.body));
    assert.match(plain.body.outputs[0].data[0], /^0\.99\d*:0$/);
  });

  test('BYTES input: base64 images decoded with the model preprocessing, top-1 the true colour', async () => {
    const names = ['red', 'green', 'blue'];
    const r = await post('/v2/models/colours/infer', {
      inputs: [{ name: 'input', shape: [3], datatype: 'BYTES', data: names.map((c) => pngs[c]!.toString('base64')) }],
      outputs: [{ name: 'logits', parameters: { classification: 1 } }],
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(
      r.body.outputs[0].data.map((s: string) => s.split(':')[2]),
      names,
    );
  });
});

describe('classify', () => {
  test('a raw image body and a multipart upload: rows like graft predict, an undecodable file reported in its row', async () => {
    const one = await post('/v2/models/colours/classify', pngs.blue!, { 'content-type': 'image/png' });
    assert.equal(one.status, 200, JSON.stringify(one.body));
    assert.equal(one.body.length, 1);
    assert.equal(one.body[0].label, 'blue');
    assert.equal(one.body[0].top.length, 3);
    assert.ok(one.body[0].p > 0.9 && one.body[0].p === one.body[0].top[0].p);
    const form = new FormData();
    form.append('a', new Blob([pngs.red!], { type: 'image/png' }), 'red.png');
    form.append('b', new Blob([Buffer.from('not an image at all')]), 'junk.png');
    form.append('c', new Blob([pngs.green!], { type: 'image/png' }), 'green.png');
    const many = await post('/v2/models/fixed/classify?top=2', form, {});
    assert.equal(many.status, 200, JSON.stringify(many.body));
    assert.deepEqual(
      many.body.map((r: { file: string; label: string }) => [r.file, r.label]),
      [
        ['red.png', 'red'],
        ['junk.png', 'unknown'],
        ['green.png', 'green'],
      ],
    );
    assert.match(many.body[1].error, /junk\.png/);
    assert.equal(many.body[0].top.length, 2);
  });

  test('?threshold= labels a low-confidence image "unknown"', async () => {
    // the fixed model divides logits by 2, so a colour's top probability is lower than with "colours"
    const r = await post('/v2/models/fixed/classify?threshold=0.999', pngs.red!, { 'content-type': 'application/octet-stream' });
    assert.equal(r.status, 200);
    assert.equal(r.body[0].label, 'unknown');
    assert.equal(r.body[0].top[0].label, 'red');
    const low = await post('/v2/models/fixed/classify?threshold=0.5', pngs.red!, { 'content-type': 'image/png' });
    assert.equal(low.body[0].label, 'red');
  });
});

describe('error paths: one 4xx with {"error"} each, and the server keeps serving', () => {
  const img = (over: Record<string, unknown>) => ({
    inputs: [{ name: 'input', shape: [1, 3, 16, 16], datatype: 'FP32', data: constantImage([0, 0, 0]), ...over }],
  });
  const cases: [string, string, unknown, number, RegExp, Record<string, string>?][] = [
    ['wrong datatype', 'colours/infer', img({ datatype: 'INT32' }), 400, /is INT32, but model "colours" takes FP32/],
    ['unknown datatype', 'colours/infer', img({ datatype: 'FLOAT' }), 400, /inputs\[0\]\.datatype/],
    ['wrong shape', 'colours/infer', img({ shape: [1, 3, 8, 32] }), 400, /shape \[1, 3, 8, 32\].*expects \[\?, 3, 16, 16\]/],
    ['data size not the shape', 'colours/infer', img({ shape: [2, 3, 16, 16] }), 400, /holds 1536 element\(s\), but "data" has 768/],
    ['a string among numbers', 'colours/infer', img({ data: ['x', ...constantImage([0, 0, 0]).slice(1)] }), 400, /element 0 is "x", not a number/],
    ['data not an array', 'colours/infer', img({ data: 5 }), 400, /"data" must be an array/],
    ['unknown input', 'colours/infer', img({ name: 'pixels' }), 400, /no input "pixels"; its inputs are "input"/],
    ['no inputs', 'colours/infer', { inputs: [] }, 400, /inputs/],
    ['unknown output', 'colours/infer', { ...img({}), outputs: [{ name: 'features' }] }, 400, /no output "features"/],
    ['binary_data asked', 'colours/infer', { ...img({}), outputs: [{ name: 'logits', parameters: { binary_data: true } }] }, 400, /binary_data/],
    [
      'too many rows for a fixed batch',
      'fixed/infer',
      img({ shape: [2, 3, 16, 16], data: constantImage([0, 0, 0]).concat(constantImage([0, 0, 0])) }),
      400,
      /more than the model's batch of 1/,
    ],
    [
      'truncated base64',
      'colours/infer',
      { inputs: [{ name: 'input', shape: [1], datatype: 'BYTES', data: ['iVBORw0KGgoAAAANSUhEUgAAA'] }] },
      400,
      /not valid base64/,
    ],
    [
      'base64 of a non-image',
      'colours/infer',
      { inputs: [{ name: 'input', shape: [1], datatype: 'BYTES', data: [Buffer.from('hello world!').toString('base64')] }] },
      400,
      /Cannot decode image #0: it is not an image.*Send the image file itself/,
    ],
    [
      'images to a model without preprocessing',
      'plain/infer',
      { inputs: [{ name: 'input', shape: [1], datatype: 'BYTES', data: ['AAAA'] }] },
      400,
      /only a model with preprocessing/,
    ],
    [
      'classify on a model without preprocessing',
      'plain/classify',
      'x',
      400,
      /cannot classify images: .*no preprocessing config/,
      { 'content-type': 'image/png' },
    ],
    ['classify a non-image', 'colours/classify', 'GIF89a but not really', 400, /body/, { 'content-type': 'image/gif' }],
    ['classify with a bad threshold', 'colours/classify?threshold=2', 'x', 400, /threshold=2 is not a number in \[0, 1\]/, { 'content-type': 'image/png' }],
    ['classify text', 'colours/classify', 'hello', 400, /Cannot decode image body: it is not an image/, { 'content-type': 'text/plain' }],
    ['classify JSON', 'colours/classify', '{"inputs": []}', 400, /this body is JSON/],
    ['infer a form-encoded body that is not JSON', 'colours/infer', 'a=1&b=2', 400, /not valid JSON/, { 'content-type': 'application/x-www-form-urlencoded' }],
    ['invalid JSON', 'colours/infer', '{"inputs": [', 400, /not valid JSON|Unexpected|JSON/],
    ['JSON that is not an object', 'colours/infer', '[1, 2]', 400, /expected object/],
    [
      'body over --max-body',
      'colours/classify',
      Buffer.alloc(2 * 1024 * 1024),
      413,
      /over the limit of 1048576 bytes.*--max-body/,
      { 'content-type': 'image/png' },
    ],
  ];
  for (const [name, route, body, status, msg, headers] of cases) {
    test(name, async () => {
      const r = await post(`/v2/models/${route}`, body, headers);
      assert.equal(r.status, status, JSON.stringify(r.body));
      assert.equal(typeof r.body.error, 'string');
      assert.match(r.body.error, msg);
    });
  }
  test('a multipart file over --max-body: 413', async () => {
    const form = new FormData();
    form.append('image', new Blob([Buffer.alloc(1024 * 1024 + 10)]), 'big.png');
    const r = await post('/v2/models/colours/classify', form, {});
    assert.equal(r.status, 413, JSON.stringify(r.body));
    assert.match(r.body.error, /over the limit of 1048576 bytes/);
  });
  test('a multipart request without files: 400', async () => {
    const form = new FormData();
    form.append('note', 'no image here');
    const r = await post('/v2/models/colours/classify', form, {});
    assert.equal(r.status, 400);
    assert.match(r.body.error, /holds no file/);
  });
  test('still serving after all of the above', async () => {
    assert.equal((await get('/v2/health/ready')).status, 200);
  });
});

test('GET /metrics: Prometheus text with the requests, rows and runs of each model version', async () => {
  const r = await fetch(`${base}/metrics`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type') ?? '', /text\/plain/);
  const text = await r.text();
  const value = (line: string) =>
    Number(
      text
        .split('\n')
        .find((l) => l.startsWith(line))
        ?.split(' ')
        .at(-1),
    );
  // every test above ran before this one: colours answered infer and classify requests, and refused some
  assert.ok(value('graft_inference_request_success{model="colours",version="1"}') >= 4, text);
  assert.ok(value('graft_inference_request_failure{model="colours",version="1"}') >= 10);
  assert.ok(value('graft_inference_count{model="colours",version="1"}') >= 6);
  assert.ok(value('graft_inference_exec_count{model="fixed",version="1"}') >= 3, 'the fixed-batch model runs one image per execution');
  assert.equal(text.includes('model="plain",version="1"'), true);
});

/** A runner whose inferences wait until `release()`: to hold requests in flight. */
function gatedRunner(): { open: OpenRunner; release: () => void; started: () => number } {
  let gate!: () => void;
  let open = new Promise<void>((r) => (gate = r));
  let started = 0;
  return {
    open: async (file, opts) => {
      const inner = await openDirectRunner(file, opts);
      let inFlight = 0;
      const runner: ModelRunner = {
        info: inner.info,
        async infer(inputs, outputs) {
          if (inFlight >= (opts.maxQueue ?? 256)) throw new QueueFullError(opts.model, 3);
          inFlight++;
          started++;
          try {
            await open;
            return await inner.infer(inputs, outputs);
          } finally {
            inFlight--;
          }
        },
        drain: () => inner.drain(),
      };
      return runner;
    },
    release: () => {
      gate();
      open = Promise.resolve();
    },
    started: () => started,
  };
}

describe('limits and lifecycle', () => {
  test('a full queue answers 503 with Retry-After; graceful close finishes the requests in flight', async () => {
    const gated = gatedRunner();
    const s = await startServer({
      sources: await resolveSources([path.join(tmp, 'colours')]),
      port: 0,
      openRunner: gated.open,
      runner: { maxQueue: 1, threads: 1 },
    });
    const body = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 3, 16, 16], datatype: 'FP32', data: constantImage([0, 1, 0]) }] });
    const req = () => fetch(`${s.url}/v2/models/colours/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const first = req();
    while (gated.started() < 1) await new Promise((r) => setTimeout(r, 10));
    const second = await req();
    assert.equal(second.status, 503);
    assert.equal(second.headers.get('retry-after'), '3');
    assert.match((await second.json()).error, /queue is full/);
    // close while the first request is in flight: it still gets its answer, then the server stops
    const closed = s.close();
    let done = false;
    void closed.then(() => (done = true));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(done, false, 'close waits for the request in flight');
    gated.release();
    const r = await first;
    assert.equal(r.status, 200);
    assert.ok((await r.json()).outputs[0].data[1] > 5);
    await closed;
    await assert.rejects(fetch(`${s.url}/v2/health/live`));
  });

  test('--token: every endpoint but health needs "Authorization: Bearer <token>"', async () => {
    const s = await startServer({ sources: await resolveSources([path.join(tmp, 'colours')]), port: 0, token: 's3cret', runner: { threads: 1 } });
    try {
      assert.equal((await fetch(`${s.url}/v2/health/ready`)).status, 200);
      const no = await fetch(`${s.url}/v2/models/colours`);
      assert.equal(no.status, 401);
      assert.match((await no.json()).error, /bearer token/i);
      assert.equal((await fetch(`${s.url}/v2/models/colours`, { headers: { authorization: 'Bearer wrong!' } })).status, 401);
      assert.equal((await fetch(`${s.url}/v2/models/colours`, { headers: { authorization: 'Bearer s3cret' } })).status, 200);
    } finally {
      await s.close();
    }
  });
});

test('openRunner: the batched runner plugs into the same server and answers as the direct one', async () => {
  const s = await startServer({
    sources: await resolveSources([path.join(tmp, 'colours'), path.join(tmp, 'fixed', 'fixed.onnx')]),
    port: 0,
    openRunner: openBatchedRunner,
    runner: { threads: 1 },
  });
  try {
    for (const model of ['colours', 'fixed']) {
      const form = new FormData();
      for (const c of ['red', 'green', 'blue']) form.append('image', new Blob([pngs[c]!]), `${c}.png`);
      const ask = async (u: string) =>
        (await (await fetch(`${u}/v2/models/${model}/classify`, { method: 'POST', body: form })).json()) as { label: string; p: number }[];
      const [batched, direct] = await Promise.all([ask(s.url), ask(base)]);
      assert.deepEqual(
        batched.map((r) => r.label),
        ['red', 'green', 'blue'],
      );
      for (const [i, r] of batched.entries()) assert.ok(Math.abs(r.p - direct[i]!.p) < 1e-6, `${model} row ${i}: ${r.p} vs ${direct[i]!.p}`);
    }
  } finally {
    await s.close();
  }
});

test('a fault of the model or runner: 500 with {"error"}, reported to onError, and the server keeps serving', async () => {
  const errors: string[] = [];
  const broken: OpenRunner = async (file, opts) => {
    const inner = await openDirectRunner(file, opts);
    return { info: inner.info, infer: async () => Promise.reject(new Error('onnxruntime exploded')), drain: () => inner.drain() };
  };
  const s = await startServer({ sources: await resolveSources([path.join(tmp, 'colours')]), port: 0, openRunner: broken, onError: (m) => errors.push(m) });
  try {
    const r = await fetch(`${s.url}/v2/models/colours/classify`, { method: 'POST', body: pngs.red! });
    assert.equal(r.status, 500);
    assert.match(((await r.json()) as { error: string }).error, /graft serve failed on POST \/v2\/models\/colours\/classify: onnxruntime exploded/);
    assert.deepEqual(errors, ['POST /v2/models/colours/classify failed: onnxruntime exploded']);
    assert.equal((await fetch(`${s.url}/v2/health/live`)).status, 200);
  } finally {
    await s.close();
  }
});
