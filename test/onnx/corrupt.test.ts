import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { decodeModel, encodeModel, loadModel, saveModel } from '../../src/onnx/io.js';
import { Rng } from '../../src/tensor.js';
import { buildModel } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-corrupt-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Asserts that loading `file` fails with exactly one single-line error that names the file and says how to fix it. */
function expectClearError(file: string, pattern?: RegExp): string {
  let err: unknown;
  try {
    loadModel(file);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof Error, `loading ${file} must throw an Error`);
  const msg = err.message;
  assert.ok(msg.includes(file), `error names the file: ${msg}`);
  assert.ok(!msg.includes('\n'), `error is one line: ${msg}`);
  assert.match(msg, /(Re-export|re-download|Re-download|Check the path|Pass the|Run |Decompress|Export |Download )/, `error says how to fix: ${msg}`);
  if (pattern) assert.match(msg, pattern);
  return msg;
}

test('a truncated model (cut at 10%, 50%, 90% and at every byte) is always refused', () => {
  const file = path.join(tmp, 'full.onnx');
  saveModel(buildModel(), file);
  const bytes = fs.readFileSync(file);
  for (const frac of [0.1, 0.5, 0.9]) {
    const cut = path.join(tmp, `cut${frac}.onnx`);
    fs.writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length * frac)));
    expectClearError(cut, /truncated/);
  }
  // exhaustive: no prefix of a graft-written file decodes into a partial model
  for (let n = 1; n < bytes.length; n++) assert.throws(() => decodeModel(bytes.subarray(0, n), { modelPath: 'cut.onnx' }), /^Error: cut\.onnx/, `cut at ${n}`);
});

test('random bytes and bit-flipped files give a named error, never a crash', () => {
  const rng = new Rng(11);
  const good = encodeModel(buildModel());
  let refused = 0;
  for (let trial = 0; trial < 3000; trial++) {
    let b: Uint8Array;
    if (trial % 2) {
      b = new Uint8Array(1 + rng.int(3000));
      for (let i = 0; i < b.length; i++) b[i] = rng.int(256);
    } else {
      b = new Uint8Array(good);
      for (let k = 0; k < 3; k++) b[rng.int(b.length)] = rng.int(256);
    }
    try {
      decodeModel(b, { modelPath: 'fuzz.onnx' });
    } catch (e) {
      assert.ok(e instanceof Error && e.message.startsWith('fuzz.onnx'), `trial ${trial}: ${e}`);
      refused++;
    }
  }
  assert.ok(refused > 2000, `most corrupt inputs are refused (${refused})`);
  const rnd = path.join(tmp, 'random.onnx');
  fs.writeFileSync(rnd, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 251)));
  expectClearError(rnd);
});

test('an empty file, a missing path and a folder each give one clear error', () => {
  const empty = path.join(tmp, 'empty.onnx');
  fs.writeFileSync(empty, '');
  expectClearError(empty, /is empty \(0 bytes\)/);
  expectClearError(path.join(tmp, 'nope.onnx'), /no such file or folder \(ENOENT\)\. Check the path/);
  const dir = path.join(tmp, 'a-folder');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'inner.onnx'), '');
  expectClearError(dir, /it is a folder, not a file\. Pass the path of the \.onnx file inside it\. It contains: inner\.onnx/);
});

test('common non-ONNX files are recognized', () => {
  const cases: [string, string | Uint8Array, RegExp][] = [
    ['lfs.onnx', 'version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n', /Git LFS pointer.*git lfs pull/],
    ['page.onnx', '<!DOCTYPE html><html><body>Not found</body></html>', /HTML\/XML page/],
    ['ckpt.onnx', Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), Buffer.alloc(200, 7)]), /zip archive.*torch\.onnx\.export/],
  ];
  for (const [name, content, re] of cases) {
    const f = path.join(tmp, name);
    fs.writeFileSync(f, content);
    expectClearError(f, re);
  }
});

test('a model whose graph reads an undefined value or has no nodes is refused', () => {
  const m = buildModel();
  m.graph.nodes.find((n) => n.name === 'relu')!.inputs = ['ghost'];
  assert.throws(() => decodeModel(encodeModel(m), { modelPath: 'g.onnx' }), /^Error: g\.onnx: node "relu" \(Relu\) reads "ghost", which is neither/);
  const empty = buildModel();
  empty.graph.nodes = [];
  assert.throws(() => decodeModel(encodeModel(empty), { modelPath: 'e.onnx' }), /^Error: e\.onnx: the graph has no nodes/);
});
