import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { decodeModel, encodeModel, loadModel, saveModel } from '../../src/onnx/io.js';
import { onnx } from '../../src/onnx/tensor-proto.js';
import { buildModel, describe, run, sampleInput } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-io-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('round trip keeps structure, every attribute kind, metadata, and gives identical outputs', async () => {
  const m = buildModel();
  const file = path.join(tmp, 'tiny.onnx');
  saveModel(m, file);
  const back = loadModel(file);
  assert.deepStrictEqual(describe(back), describe(m));
  // each attribute kind really is written with its ONNX type
  const proto = onnx.ModelProto.decode(fs.readFileSync(file));
  const AT = onnx.AttributeProto.AttributeType;
  const kinds = new Set(proto.graph!.node.flatMap((n) => n.attribute.map((a) => AT[a.type])));
  for (const k of ['INT', 'FLOAT', 'INTS', 'FLOATS', 'STRING', 'TENSOR']) assert.ok(kinds.has(k), `attribute kind ${k} written`);
  const gemm = proto.graph!.node.find((n) => n.opType === 'Gemm')!;
  assert.equal(gemm.attribute.find((a) => a.name === 'beta')!.type, AT.FLOAT, 'integer-valued float attribute stays FLOAT');
  assert.equal(back.graph.initializers.get('pads')!.dtype, 'int64');
  assert.deepStrictEqual(back.graph.initializers.get('pads')!.toNumbers(), [0, 1, 0, 1]);
  const x = sampleInput();
  const [a, b] = [await run(m, x), await run(back, x)];
  assert.deepStrictEqual(b.dims, [3, 7]);
  assert.deepStrictEqual(b.data, a.data, 'outputs are bit-identical');
  // bytes are stable: saving the loaded model again gives the same file
  assert.deepStrictEqual(encodeModel(back), encodeModel(m));
});

test('Constant nodes, value_info and symbolic dims survive a round trip', () => {
  const back = decodeModel(encodeModel(buildModel()));
  assert.deepStrictEqual(
    back.graph.nodes.filter((n) => n.op === 'Constant').map((n) => n.name),
    ['const_floats', 'const_tensor'],
  );
  assert.deepStrictEqual(back.graph.inputs[0]!.shape, ['N', 4]);
  assert.deepStrictEqual(back.graph.outputs[0]!.shape, [3, 'M']);
  assert.deepStrictEqual(back.graph.valueInfo.get('h'), { name: 'h', dtype: 'float32', shape: ['N', 3] });
  assert.deepStrictEqual(back.graph.valueInfo.get('t')!.shape, [3, 'N']);
});

test('a file whose nodes are out of order is sorted on load; an ordered file keeps its order', () => {
  const m = buildModel();
  const order = m.graph.nodes.map((n) => n.name);
  m.graph.nodes.reverse();
  const back = decodeModel(encodeModel(m));
  const pos = new Map(back.graph.nodes.map((n, i) => [n.name, i]));
  assert.ok(pos.get('gemm')! < pos.get('relu')! && pos.get('relu')! < pos.get('transpose')!);
  assert.deepStrictEqual(
    decodeModel(encodeModel(buildModel())).graph.nodes.map((n) => n.name),
    order,
  );
});

test('opsets 13 and 21 load and run; 6 and 22 are refused with a clear error (7–12 are upgraded: test/onnx/upgrade.test.ts)', async () => {
  const x = sampleInput(2);
  const ref = await run(buildModel(17), x);
  for (const opset of [13, 21]) {
    const back = decodeModel(encodeModel(buildModel(opset)), { modelPath: `m${opset}.onnx` });
    assert.equal(back.opset, opset);
    assert.deepStrictEqual((await run(back, x)).data, ref.data);
  }
  for (const opset of [6, 22]) {
    const bytes = encodeModel(buildModel(opset));
    assert.throws(
      () => decodeModel(bytes, { modelPath: `m${opset}.onnx` }),
      (e: Error) => {
        assert.match(e.message, new RegExp(`^m${opset}\\.onnx uses opset ${opset}; graft supports opsets 13–21 \\(and reads 7–12 as 13\\)\\. Re-export`));
        return true;
      },
    );
  }
});

test('other-domain opsets and header fields are kept', () => {
  const m = buildModel();
  m.otherOpsets.push({ domain: 'com.microsoft', version: 1 });
  const back = decodeModel(encodeModel(m));
  assert.deepStrictEqual(back.otherOpsets, [{ domain: 'com.microsoft', version: 1 }]);
  assert.equal(back.producer, 'graft-test');
  assert.equal(back.metadata['graft.preprocess'], JSON.stringify({ mean: [0.5], std: [0.25] }));
});

test('typed-field tensors (float_data, int64_data) decode like raw_data', async () => {
  const proto = onnx.ModelProto.decode(encodeModel(buildModel()));
  for (const t of proto.graph!.initializer) {
    if (t.dataType === onnx.TensorProto.DataType.FLOAT) t.floatData = Array.from(new Float32Array(new Uint8Array(t.rawData).buffer));
    else t.int64Data = Array.from(new BigInt64Array(new Uint8Array(t.rawData).buffer), Number);
    t.rawData = new Uint8Array(0);
  }
  const back = decodeModel(onnx.ModelProto.encode(proto).finish());
  assert.deepStrictEqual(describe(back), describe(buildModel()));
});

test('a tensor that declares elements but holds no data is an error, not zeros', () => {
  const proto = onnx.ModelProto.decode(encodeModel(buildModel()));
  proto.graph!.initializer.find((t) => t.name === 'W')!.rawData = new Uint8Array(0);
  const bytes = onnx.ModelProto.encode(proto).finish();
  assert.throws(() => decodeModel(bytes, { modelPath: 'w.onnx' }), /^Error: w\.onnx: initializer "W" holds 0 values but dims \[3,4\] need 12\./);
});

test('saving over an existing model replaces it; nothing is left behind', () => {
  const file = path.join(tmp, 'replace', 'm.onnx');
  saveModel(buildModel(), file);
  const m2 = buildModel();
  m2.metadata.version = '2';
  saveModel(m2, file);
  assert.equal(loadModel(file).metadata.version, '2');
  assert.deepStrictEqual(fs.readdirSync(path.dirname(file)), ['m.onnx']);
});
