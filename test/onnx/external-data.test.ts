import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { loadModel, saveModel } from '../../src/onnx/io.js';
import { onnx } from '../../src/onnx/tensor-proto.js';
import { fromOrt, ort, toOrt } from '../../src/runtime/session.js';
import { buildModel, describe, run, sampleInput } from './helpers.js';

const F = 300; // scale (1.2 KB) and W (3.6 KB) go external; B and the int64 tensors stay inline
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-ext-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Saves the model with external data into a fresh folder and returns the model path. */
function saveExternal(name: string): string {
  const file = path.join(tmp, name, 'model.onnx');
  saveModel(buildModel(17, F), file, { externalData: true });
  return file;
}

/** Rewrites the model file at `file` with `edit` applied to its decoded proto. */
function editProto(file: string, edit: (p: InstanceType<typeof onnx.ModelProto>) => void): void {
  const p = onnx.ModelProto.decode(fs.readFileSync(file));
  edit(p);
  fs.writeFileSync(file, onnx.ModelProto.encode(p).finish());
}

function externalTensors(file: string) {
  const p = onnx.ModelProto.decode(fs.readFileSync(file));
  return p.graph!.initializer.filter((t) => t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL);
}

test('external data: writes model + model.onnx.data, loads back identically, onnxruntime reads it from disk', async () => {
  const file = saveExternal('ok');
  assert.deepStrictEqual(fs.readdirSync(path.dirname(file)).sort(), ['model.onnx', 'model.onnx.data']);
  const ext = externalTensors(file);
  assert.deepStrictEqual(ext.map((t) => t.name).sort(), ['W', 'scale']);
  assert.equal(fs.statSync(`${file}.data`).size, (F + 3 * F) * 4);
  assert.ok(fs.statSync(file).size < 2000, 'weights are not inline');

  const m = buildModel(17, F);
  const back = loadModel(file);
  assert.deepStrictEqual(describe(back), describe(m));

  const x = sampleInput(4, F);
  const ref = await run(m, x);
  assert.deepStrictEqual((await run(back, x)).data, ref.data);
  const session = await ort.InferenceSession.create(file);
  try {
    const y = fromOrt((await session.run({ x: toOrt(x) })).y!);
    assert.deepStrictEqual(y.data, ref.data, 'onnxruntime loading the file from disk gives the same outputs');
  } finally {
    await session.release();
  }
});

test('external data: a location outside the model folder is refused', () => {
  for (const loc of ['../x.bin', '/etc/passwd', 'sub/../../x.bin']) {
    const file = saveExternal(`escape${loc.length}`);
    editProto(file, (p) => {
      for (const t of p.graph!.initializer) for (const kv of t.externalData) if (kv.key === 'location') kv.value = loc;
    });
    assert.throws(
      () => loadModel(file),
      (e: Error) => {
        assert.ok(e.message.startsWith(file), e.message);
        assert.match(e.message, /external data path ".*" escapes the model's folder/);
        assert.match(e.message, /Put the weight file beside the model/);
        return true;
      },
    );
  }
});

test('external data: a missing data file is a clear error', () => {
  const file = saveExternal('missing');
  fs.rmSync(`${file}.data`);
  assert.throws(
    () => loadModel(file),
    (e: Error) => {
      assert.ok(e.message.startsWith(`${file}: initializer "`), e.message);
      assert.match(e.message, /Could not open external data file .*model\.onnx\.data: no such file or folder \(ENOENT\)/);
      assert.match(e.message, /must sit beside the model/);
      return true;
    },
  );
});

test('external data: a truncated data file is a clear error', () => {
  const file = saveExternal('truncated');
  const size = fs.statSync(`${file}.data`).size;
  for (const keep of [0, 100, size - 1]) {
    fs.truncateSync(`${file}.data`, keep);
    assert.throws(
      () => loadModel(file),
      /external data file .*model\.onnx\.data is truncated \(\d+ bytes; the tensor needs bytes \d+–\d+\)\. Copy or download it again/,
    );
  }
});

test('external data: a length that does not match the tensor is a clear error', () => {
  const file = saveExternal('badlen');
  editProto(file, (p) => {
    for (const kv of p.graph!.initializer.find((t) => t.name === 'W')!.externalData) if (kv.key === 'length') kv.value = '12';
  });
  assert.throws(() => loadModel(file), /initializer "W": external data length is 12 bytes but the tensor needs 3600/);
});

test('externalData: auto keeps small models in one file', () => {
  const file = path.join(tmp, 'auto', 'model.onnx');
  saveModel(buildModel(17, F), file);
  assert.deepStrictEqual(fs.readdirSync(path.dirname(file)), ['model.onnx']);
  assert.equal(externalTensors(file).length, 0);
});
