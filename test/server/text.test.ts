/**
 * graft serve on text models (a tokenizer beside the .onnx): /classify takes {"text"} or {"texts"} and answers the
 * calibrated top-k of `graft predict` (the same tokenize and classify code); the OIP infer request takes a BYTES
 * input of texts on the token-id input; the batched runner batches texts of different lengths, padding each to
 * the batch's longest, with the same answers; bad input gets one clear 4xx.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ServeMetrics } from '../../src/server/contract.js';
import { openDirectRunner } from '../../src/server/direct-runner.js';
import { resolveSources } from '../../src/server/repository.js';
import { type RunningServer, startServer } from '../../src/server/serve.js';
import { openBatchedRunner } from '../../src/server/worker-runner.js';
import { classifyTexts, loadTextClassifier } from '../../src/train/classify-text.js';
import { SENTIMENT, saveTextModels, sentimentTexts } from '../text-fixtures.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-serve-text-'));
let models: { tfidf: string; bert: string };
let direct: RunningServer;
let batched: RunningServer;
/** Session runs of the batched server: rows and requests per run. */
const runs: { rows: number; requests: number }[] = [];
const TEXTS = sentimentTexts(12).texts.concat(['Great!', 'an awful, awful film and a very sad ending for everyone who watched it today']);
/** What `graft predict` gives for TEXTS, per model. */
const expected: Record<string, Float32Array> = {};

before(async () => {
  models = await saveTextModels(tmp);
  for (const [name, file] of Object.entries(models)) {
    const clf = await loadTextClassifier(file);
    expected[name] = (await classifyTexts(clf, TEXTS, { batchSize: 4 })).probabilities;
    await clf.session.release();
  }
  const sources = await resolveSources([path.dirname(models.tfidf), path.dirname(models.bert)]);
  direct = await startServer({ sources, port: 0, maxBodyBytes: 64 * 1024, runner: { threads: 1 }, openRunner: openDirectRunner });
  const metrics: ServeMetrics = {
    request() {},
    execution(_m, _v, rows, requests) {
      runs.push({ rows, requests });
    },
    render: async () => ({ contentType: 'text/plain', body: '' }),
  };
  batched = await startServer({ sources, port: 0, metrics, runner: { threads: 1, maxQueueDelayMs: 200, maxBatchSize: 8 }, openRunner: openBatchedRunner });
});
after(async () => {
  await direct?.close();
  await batched?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

// biome-ignore lint/suspicious/noExplicitAny: response JSON, checked field by field below
type Json = any;

async function post(
  base: string,
  p: string,
  body: unknown,
  headers: Record<string, string> = { 'content-type': 'application/json' },
): Promise<{ status: number; body: Json }> {
  const r = await fetch(base + p, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: r.status, body: JSON.parse(await r.text()) };
}

/** Asserts a /classify answer row by row against `graft predict`'s probabilities (top-2 of 2 classes). */
function assertRows(rows: Json[], probs: Float32Array, from: number, tol: number): void {
  rows.forEach((row, i) => {
    assert.equal(row.index, i);
    const p = [probs[(from + i) * 2]!, probs[(from + i) * 2 + 1]!];
    const best = p[1]! > p[0]! ? 1 : 0;
    assert.equal(row.label, SENTIMENT.labels[best]);
    assert.ok(Math.abs(row.p - p[best]!) <= tol, `text ${from + i}: ${row.p} vs ${p[best]}`);
    assert.deepEqual(
      row.top.map((t: Json) => t.label),
      best ? ['positive', 'negative'] : ['negative', 'positive'],
    );
    assert.ok(Math.abs(row.top[1].p - p[1 - best]!) <= tol);
  });
}

describe('the direct runner', () => {
  test('/classify {"texts"} answers graft predict\'s calibrated probabilities, for TF-IDF and a BERT encoder', async () => {
    for (const name of ['tfidf', 'bert']) {
      const r = await post(direct.url, `/v2/models/${name}/classify`, { texts: TEXTS });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.length, TEXTS.length);
      assertRows(r.body, expected[name]!, 0, 1e-6);
    }
  });

  test('/classify {"text"} (also without a JSON content type), ?top and ?threshold', async () => {
    const one = await post(direct.url, '/v2/models/tfidf/classify?top=1', { text: TEXTS[3] }, { 'content-type': 'text/plain' });
    assert.equal(one.status, 200, JSON.stringify(one.body));
    assert.equal(one.body.length, 1);
    assert.equal(one.body[0].top.length, 1);
    const p3 = [expected.tfidf![6]!, expected.tfidf![7]!];
    assert.equal(one.body[0].label, SENTIMENT.labels[p3[1]! > p3[0]! ? 1 : 0]);
    assert.ok(Math.abs(one.body[0].p - Math.max(...p3)) < 1e-6);
    const unsure = await post(direct.url, '/v2/models/tfidf/classify?threshold=0.99', { text: TEXTS[3] });
    assert.equal(unsure.body[0].label, 'unknown');
  });

  test('model metadata names the text input and the tokenizer', async () => {
    const r = await fetch(`${direct.url}/v2/models/bert`);
    const meta = (await r.json()) as Json;
    assert.deepEqual(meta.inputs, [{ name: 'input_ids', datatype: 'INT64', shape: [-1, -1] }]);
    assert.equal(meta.parameters.text_input, 'input_ids');
    assert.equal(meta.parameters.tokenizer, 'hf');
    assert.deepEqual(meta.parameters.labels, SENTIMENT.labels);
  });

  test('OIP infer with a BYTES input of texts is tokenized server-side; classification gives calibrated labels', async () => {
    const r = await post(direct.url, '/v2/models/bert/infer', {
      inputs: [{ name: 'input_ids', shape: [3], datatype: 'BYTES', data: TEXTS.slice(0, 3) }],
      outputs: [{ name: 'logits', parameters: { classification: 2 } }],
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const out = r.body.outputs[0];
    assert.deepEqual(out.shape, [3, 2]);
    for (let i = 0; i < 3; i++) {
      const [score, index, label] = out.data[i * 2].split(':');
      assert.equal(label, SENTIMENT.labels[Number(index)]);
      assert.ok(Math.abs(Number(score) - expected.bert![i * 2 + Number(index)]!) < 1e-6, out.data[i * 2]);
    }
  });

  test('bad text input gets one clear 4xx each', async () => {
    const cases: [string, unknown, number, RegExp][] = [
      ['empty text', { text: '' }, 400, /"text" is empty/],
      ['white space', { texts: ['fine', '  \n'] }, 400, /"texts"\[1\] is empty/],
      ['not a string', { texts: ['fine', 42] }, 400, /"texts"\[1\] is number, not a string/],
      ['no list', { texts: 'one' }, 400, /"texts" must be a list of strings/],
      ['empty list', { texts: [] }, 400, /empty list/],
      ['neither', { words: ['x'] }, 400, /neither "text" nor "texts"/],
      ['both', { text: 'a', texts: ['b'] }, 400, /Both "text" and "texts"/],
      ['not JSON', 'hello there', 400, /not valid JSON/],
      ['huge body', { texts: [`${'word '.repeat(20_000)}`] }, 413, /over the limit of 65536 bytes.*--max-body/],
    ];
    for (const [what, body, status, re] of cases) {
      const r = await post(direct.url, '/v2/models/tfidf/classify', body, typeof body === 'string' ? { 'content-type': 'text/plain' } : undefined);
      assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
      assert.match(r.body.error, re, what);
    }
    const bytes = await post(direct.url, '/v2/models/tfidf/infer', { inputs: [{ name: 'input_ids', shape: [2], datatype: 'BYTES', data: ['ok', 7] }] });
    assert.equal(bytes.status, 400);
    assert.match(bytes.body.error, /Input "input_ids" \(BYTES\) element 1 is number, not a string/);
    const files = new FormData();
    files.append('t', new Blob(['hello']), 'a.txt');
    const mp = await fetch(`${direct.url}/v2/models/tfidf/classify`, { method: 'POST', body: files });
    assert.equal(mp.status, 400);
    assert.match(((await mp.json()) as Json).error, /is a text model: POST JSON/);
    // the server still answers
    assert.equal((await post(direct.url, '/v2/models/tfidf/classify', { text: 'good' })).status, 200);
  });
});

test('the batched runner batches texts of different lengths together, padded to the longest, with the same answers', async () => {
  // one request per text, all at once, each of a different length: without padding no two could share a run
  const texts = Array.from({ length: 8 }, (_, i) => [...SENTIMENT.fill.slice(0, i), i % 2 ? 'good' : 'sad'].join(' '));
  const clf = await loadTextClassifier(models.bert);
  const want = (await classifyTexts(clf, texts)).probabilities;
  await clf.session.release();
  runs.length = 0;
  const answers = await Promise.all(texts.map((text) => post(batched.url, '/v2/models/bert/classify', { text })));
  answers.forEach((r, i) => {
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assertRows(r.body, want, i, 1e-5);
  });
  assert.ok(
    runs.some((r) => r.requests > 1 && r.rows > 1),
    `runs: ${JSON.stringify(runs)}`,
  );
  assert.ok(runs.length < texts.length, `${runs.length} runs for ${texts.length} requests`);
  // a request of many texts is cut into runs of at most --max-batch-size (8), each padded to its own longest
  const many = await post(batched.url, '/v2/models/tfidf/classify', { texts: TEXTS });
  assertRows(many.body, expected.tfidf!, 0, 1e-6);
});
