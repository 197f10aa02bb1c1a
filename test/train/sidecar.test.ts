/**
 * The JSON sidecar beside an .onnx (labels, preprocessing, feature cut) is untrusted input: a "cut" that names no
 * value of the graph, or "labels" that are not a list of strings, is one clear error (through `Network.load` and
 * the commands that load a model), never silently dropped or split into characters.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import sharp from 'sharp';
import { saveModel } from '../../src/onnx/io.js';
import { Network } from '../../src/train/network.js';
import { runGraft } from '../cli-run.js';
import { buildModel } from '../onnx/helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-sidecar-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** buildModel's graph (Mul → Gemm "h" → Relu "r" → …) saved as `<name>.onnx` with `sidecar` as `<name>.json`. */
function withSidecar(name: string, sidecar: unknown): string {
  const file = path.join(tmp, `${name}.onnx`);
  saveModel(buildModel(17, 4), file);
  fs.writeFileSync(path.join(tmp, `${name}.json`), JSON.stringify(sidecar));
  return file;
}

test('a sidecar "cut" that names no value is an error naming the cut, real candidates and graft inspect', async () => {
  const file = withSidecar('badcut', { labels: ['a', 'b', 'c'], cut: 'hh' });
  assert.throws(
    () => Network.load(file),
    (e: Error) => {
      assert.match(e.message, /badcut\.json: "cut" names "hh", which is not a value in .*badcut\.onnx\./);
      assert.match(e.message, /Candidates: "xs" \(the suggested cut\), "h", /);
      assert.match(e.message, /`graft inspect .*badcut\.onnx` lists the values/);
      return true;
    },
  );
  await sharp({ create: { width: 4, height: 4, channels: 3, background: { r: 9, g: 9, b: 9 } } })
    .png()
    .toFile(path.join(tmp, 'x.png'));
  const r = await runGraft(['predict', file, 'x.png'], tmp);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^graft: error: [^\n]+"cut" names "hh", which is not a value[^\n]+\n$/);
  assert.throws(() => Network.load(withSidecar('numcut', { cut: 3 })), /"cut" must be the name of a value in the model \(a string\), but it is number 3/);
});

test('sidecar "labels" must be a list of strings: a string is not split into characters', () => {
  assert.throws(
    () => Network.load(withSidecar('strlabels', { labels: 'abc' })),
    /strlabels\.json: "labels" must be an array of class names \(strings\), e\.g\. \["cat", "dog"\], but it is the string "abc"\. Fix "labels" in the sidecar\./,
  );
  assert.throws(() => Network.load(withSidecar('numlabels', { labels: ['a', 2] })), /"labels" must be an array .* but it is a list holding number 2/);
  assert.throws(() => Network.load(withSidecar('array', [1, 2])), /array\.json is not a model sidecar: it must be a JSON object/);
});

test('a valid sidecar still gives labels, cut and preprocessing', () => {
  const net = Network.load(withSidecar('good', { labels: ['a', 'b', 'c'], cut: 'h', preprocess: { size: 4, channels: 1 } }));
  assert.deepEqual(net.labels, ['a', 'b', 'c']);
  assert.equal(net.cut, 'h');
  assert.deepEqual(net.preprocess?.size, [4, 4]);
});
