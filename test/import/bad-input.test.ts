/**
 * Broken inputs through the commands a user runs: each is one `graft: error:` line (exit 1) naming the file and
 * the fix — a missing weight shard, a truncated shard, an unknown layer class, a graph-model op without a
 * mapping, and an ONNX file whose external-data path leaves its folder (`graft inspect`, `graft import`,
 * `Network.load`). The importer's own messages are checked in detail in files.test.ts and graph.test.ts.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { saveModel } from '../../src/onnx/io.js';
import { onnx } from '../../src/onnx/tensor-proto.js';
import { Network } from '../../src/train/network.js';
import { type CliRun, runGraft } from '../cli-run.js';
import { buildModel } from '../onnx/helpers.js';
import { randomizeWeights, saveToMemory, tf, writeModelDir } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-bad-input-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function graft(args: string[]): Promise<CliRun> {
  return runGraft(args, tmp);
}

/** Exit 1, nothing on stdout, exactly one `graft: error:` line matching `re`. */
function oneError(r: { code: number | null; stdout: string; stderr: string }, re: RegExp, what: string): void {
  assert.equal(r.code, 1, `${what}: ${r.stderr}`);
  assert.equal(r.stdout, '', what);
  assert.match(r.stderr, /^graft: error: [^\n]+\n$/, `${what}: one line: ${r.stderr}`);
  assert.match(r.stderr, re, what);
}

/** `v` with regular-expression metacharacters escaped. */
const esc = (v: string) => v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A small classifier saved as model.json + 200-byte shards in `dir`. */
async function modelDir(dir: string): Promise<string> {
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [8, 8, 3], filters: 4, kernelSize: 3, padding: 'same', activation: 'relu' }),
      tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same' }),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({ units: 3, activation: 'softmax' }),
    ],
  });
  randomizeWeights(model, 1);
  return writeModelDir(await saveToMemory(model), dir, 200);
}

/** A TensorFlow.js graph model (model.json + one shard) that uses Cumsum, an op graft has no mapping for. */
function graphModelDir(dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'group1-shard1of1.bin'), new Uint8Array(new Int32Array([1]).buffer));
  const f = { T: { type: 'DT_FLOAT' } };
  const nodes = [
    { name: 'x', op: 'Placeholder', attr: { ...f, dtype: { type: 'DT_FLOAT' }, shape: { shape: { dim: [{ size: '-1' }, { size: '4' }] } } } },
    { name: 'axis', op: 'Const', attr: { dtype: { type: 'DT_INT32' }, value: { tensor: { dtype: 'DT_INT32' } } } },
    { name: 'running_total', op: 'Cumsum', input: ['x', 'axis'], attr: f },
    { name: 'y', op: 'Relu', input: ['running_total'], attr: f },
  ];
  const json = {
    format: 'graph-model',
    modelTopology: { node: nodes, versions: { producer: 1 } },
    weightsManifest: [{ paths: ['group1-shard1of1.bin'], weights: [{ name: 'axis', shape: [], dtype: 'int32' }] }],
  };
  fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
  return path.join(dir, 'model.json');
}

/** An .onnx file with external data whose "location" is `loc` (e.g. "../secret.bin"). */
function escapingOnnx(dir: string, loc: string): string {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'model.onnx');
  saveModel(buildModel(17, 300), file, { externalData: true });
  const p = onnx.ModelProto.decode(fs.readFileSync(file));
  for (const t of p.graph?.initializer ?? []) for (const kv of t.externalData ?? []) if (kv.key === 'location') kv.value = loc;
  fs.writeFileSync(file, onnx.ModelProto.encode(p).finish());
  return file;
}

test('graft import: a missing shard, a truncated shard, a shard outside the folder, an unknown layer and an unmapped graph op are each one clear error', async () => {
  const missing = await modelDir(path.join(tmp, 'missing'));
  const shards = fs
    .readdirSync(path.join(tmp, 'missing'))
    .filter((n) => n.endsWith('.bin'))
    .sort();
  assert.ok(shards.length >= 2, `several shards: ${shards}`);
  fs.rmSync(path.join(tmp, 'missing', shards[1]!));
  const short = await modelDir(path.join(tmp, 'short'));
  const shard = path.join(tmp, 'short', shards[0]!);
  fs.writeFileSync(shard, fs.readFileSync(shard).subarray(0, 150));
  const fancy = await modelDir(path.join(tmp, 'fancy'));
  fs.writeFileSync(fancy, fs.readFileSync(fancy, 'utf8').replace('"class_name":"DepthwiseConv2D"', '"class_name":"FancyConv2D"'));
  const graph = graphModelDir(path.join(tmp, 'graph'));
  const outside = await modelDir(path.join(tmp, 'escape'));
  fs.writeFileSync(outside, fs.readFileSync(outside, 'utf8').replace(`"${shards[0]!}"`, `"../secret-${shards[0]!}"`));
  fs.copyFileSync(path.join(tmp, 'escape', shards[0]!), path.join(tmp, `secret-${shards[0]!}`)); // readable, but outside the folder

  const [m, s, f, g, x] = await Promise.all([
    graft(['import', missing]),
    graft(['import', short]),
    graft(['import', fancy]),
    graft(['import', graph]),
    graft(['import', outside]),
  ]);
  oneError(x, new RegExp(`weight shard "\\.\\./secret-${esc(shards[0]!)}" escapes the model's folder.*Copy the shard there`), 'escaping shard');
  oneError(
    m,
    new RegExp(
      `weight shard .*${esc(shards[1]!)} \\(listed in weightsManifest\\) cannot be read: no such file or folder \\(ENOENT\\)\\..*Keep every shard file beside model\\.json`,
    ),
    'missing shard',
  );
  oneError(s, new RegExp(`needs \\d+ bytes.*50 missing.*${esc(shards[0]!)} is probably truncated`), 'truncated shard');
  oneError(f, /layer FancyConv2D "depthwise_conv2d_\w+" is not supported by graft's importer\. Supported: .*Replace the layer/, 'unknown layer');
  oneError(
    g,
    /TensorFlow op Cumsum \(node "running_total"\) is not supported by graft's graph importer\. Supported: .*Export the model as a layers model/,
    'unmapped op',
  );
  for (const dir of ['missing', 'short', 'fancy', 'graph', 'escape'])
    assert.ok(!fs.readdirSync(path.join(tmp, dir)).some((n) => n.endsWith('.onnx')), `${dir}: nothing written`);
});

test('an ONNX file whose external data path escapes its folder is refused by graft inspect, graft import and Network.load', async () => {
  fs.writeFileSync(path.join(tmp, 'secret.bin'), Buffer.alloc(4096, 1)); // a file the model must not be able to read
  const up = escapingOnnx(path.join(tmp, 'ext-up'), '../secret.bin');
  const abs = escapingOnnx(path.join(tmp, 'ext-abs'), path.join(tmp, 'secret.bin'));

  const [i1, i2, imp] = await Promise.all([graft(['inspect', up]), graft(['--json', 'inspect', abs]), graft(['import', up])]);
  for (const [r, file, loc] of [
    [i1, up, '../secret.bin'],
    [i2, abs, path.join(tmp, 'secret.bin')],
  ] as const)
    oneError(
      r,
      new RegExp(`${esc(file)}: initializer "\\w+": external data path "${esc(loc)}" escapes the model's folder .*Put the weight file beside the model`),
      `inspect ${loc}`,
    );
  oneError(imp, /model\.onnx is already an ONNX model; graft import converts TensorFlow\.js models \(model\.json\)\. Use it directly\./, 'import of an .onnx');

  for (const file of [up, abs])
    assert.throws(
      () => Network.load(file),
      (e: Error) => e.message.startsWith(file) && /external data path ".*" escapes the model's folder/.test(e.message) && !e.message.includes('\n'),
    );
});
