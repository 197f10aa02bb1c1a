/**
 * Transformer text encoders (src/models/transformer.ts): a small BERT built by graft's builder (src/nn/arch/bert.ts),
 * saved with a real WordPiece tokenizer.json, becomes a graft text encoder (token ids in, pooled embedding out).
 * Its embeddings equal the raw encoder's hidden states pooled in JS, and padding a text in a batch does not change
 * them (the mask is computed inside the graph from the pad id).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { makeTokenizer } from '../../src/data/tokenize.js';
import { resolveTextEncoder, type TextEncoderEntry } from '../../src/models/text-registry.js';
import { bertEncoder } from '../../src/nn/arch/bert.js';
import { encodeModel, saveModel } from '../../src/onnx/io.js';
import { startLoopback, stopLoopback } from '../loopback.js';
import { wordPieceTokenizerJson } from '../text-fixtures.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-transformer-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const encFile = path.join(tmp, 'tiny-bert', 'onnx', 'model.onnx'); // the hub layout: tokenizer.json one folder up
const H = 16;

before(() => {
  fs.mkdirSync(path.dirname(encFile), { recursive: true });
  saveModel(bertEncoder({ vocabSize: 30522, hidden: H, heads: 2, layers: 2, seed: 3 }), encFile);
  fs.writeFileSync(path.join(tmp, 'tiny-bert', 'tokenizer.json'), JSON.stringify(wordPieceTokenizerJson()));
});

const texts = ['I like strawberries', 'a much longer sentence about graft and onnx models', 'hi'];

async function run(model: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<ort.Tensor> {
  const s = await ort.InferenceSession.create(model);
  const r = await s.run(feeds);
  await s.release();
  return r[s.outputNames[0]!]!;
}

test('a BERT-style .onnx with its tokenizer.json is a text encoder: mean and CLS pooling of the raw hidden states', async () => {
  for (const pooling of ['mean', 'cls'] as const) {
    const enc = await resolveTextEncoder(encFile, { pooling });
    assert.equal(enc.tokenizer.kind, 'hf');
    assert.deepEqual(
      enc.model.graph.inputs.map((i) => i.name),
      ['input_ids'],
    );
    const tok = makeTokenizer(enc.tokenizer);
    const b = tok.encodeBatch(texts);
    const [n, T] = b.dims;
    const got = await run(encodeModel(enc.model), { input_ids: new ort.Tensor('int64', b.ids, b.dims) });
    assert.deepEqual(got.dims, [n, H]);
    // the raw encoder, fed the mask and token types a user of the hub model would build
    const mask = BigInt64Array.from(b.ids, (v) => (v === 0n ? 0n : 1n));
    const hidden = await run(fs.readFileSync(encFile), {
      input_ids: new ort.Tensor('int64', b.ids, b.dims),
      attention_mask: new ort.Tensor('int64', mask, b.dims),
      token_type_ids: new ort.Tensor('int64', new BigInt64Array(n * T), b.dims),
    });
    const h = hidden.data as Float32Array;
    for (let i = 0; i < n; i++)
      for (let d = 0; d < H; d++) {
        let want = 0;
        if (pooling === 'cls') want = h[i * T * H + d]!;
        else {
          let count = 0;
          for (let t = 0; t < T; t++)
            if (mask[i * T + t]) {
              want += h[(i * T + t) * H + d]!;
              count++;
            }
          want /= count;
        }
        assert.ok(Math.abs((got.data as Float32Array)[i * H + d]! - want) < 1e-5, `${pooling} row ${i} dim ${d}`);
      }
  }
});

test("padding does not change a text's embedding: alone or beside a longer text, the same vector", async () => {
  const enc = await resolveTextEncoder(encFile, {});
  const tok = makeTokenizer(enc.tokenizer);
  const bytes = encodeModel(enc.model);
  const alone = tok.encodeBatch(['hi']);
  const a = (await run(bytes, { input_ids: new ort.Tensor('int64', alone.ids, alone.dims) })).data as Float32Array;
  const both = tok.encodeBatch(['hi', texts[1]!]);
  assert.ok(both.dims[1] > alone.dims[1]);
  const b = (await run(bytes, { input_ids: new ort.Tensor('int64', both.ids, both.dims) })).data as Float32Array;
  for (let d = 0; d < H; d++) assert.ok(Math.abs(a[d]! - b[d]!) < 1e-5, `dim ${d}: ${a[d]} vs ${b[d]}`);
});

test('a transformer .onnx without a tokenizer beside it is one error naming both places to look', async () => {
  const lone = path.join(tmp, 'lone', 'x', 'model.onnx');
  fs.mkdirSync(path.dirname(lone), { recursive: true });
  fs.copyFileSync(encFile, lone);
  await assert.rejects(resolveTextEncoder(lone), /has no tokenizer beside it: neither graft's model\.tokenizer\.json nor a Hugging Face tokenizer\.json/);
});

test('a hub transformer entry is fetched into the model cache once, checked against its size and SHA-256', async () => {
  const files: Record<string, Buffer> = {
    '/enc/model.onnx': fs.readFileSync(encFile),
    '/enc/tokenizer.json': fs.readFileSync(path.join(tmp, 'tiny-bert', 'tokenizer.json')),
  };
  const requests: string[] = [];
  const { server, base } = await startLoopback((req, res) => {
    requests.push(req.url!);
    const body = files[req.url!];
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-length': body.length }).end(body);
  });
  try {
    const pin = (p: string) => ({ url: `${base}${p}`, size: files[p]!.length, sha256: createHash('sha256').update(files[p]!).digest('hex') });
    const entry: TextEncoderEntry = {
      name: 'tiny-hub',
      kind: 'transformer',
      description: 'test',
      dims: H,
      maxTokens: 32,
      files: { model: pin('/enc/model.onnx'), tokenizer: pin('/enc/tokenizer.json') },
    };
    const dir = path.join(tmp, 'cache');
    const notes: string[] = [];
    const enc = await resolveTextEncoder('TINY-HUB', { entries: [entry], dir, onNote: (m) => notes.push(m) });
    assert.deepEqual(requests.sort(), ['/enc/model.onnx', '/enc/tokenizer.json']);
    assert.equal(enc.tokenizer.maxTokens, 32);
    assert.ok(fs.existsSync(path.join(dir, 'text', 'tiny-hub', 'model.onnx')));
    await resolveTextEncoder('tiny-hub', { entries: [entry], dir });
    assert.equal(requests.length, 2, 'the second use reads the cache');
    assert.match(notes.join('\n'), /tiny-hub is not in the model cache yet: fetching http:\/\/127\.0\.0\.1/);
    // a file that is not the pinned one is refused, and nothing is kept
    const wrong = { ...entry, name: 'tiny-wrong', files: { model: { ...entry.files!.model, sha256: '0'.repeat(64) }, tokenizer: entry.files!.tokenizer } };
    await assert.rejects(
      resolveTextEncoder('tiny-wrong', { entries: [wrong], dir }),
      /Cannot fetch the model of text encoder tiny-wrong:.*GRAFT_MODEL_MIRROR/s,
    );
    assert.equal(fs.existsSync(path.join(dir, 'text', 'tiny-wrong', 'model.onnx')), false);
  } finally {
    stopLoopback(server);
  }
});
