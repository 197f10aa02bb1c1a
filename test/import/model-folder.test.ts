/**
 * Nothing leaves the model's folder. Every file graft reads on a model's behalf (ONNX external data, TensorFlow.js
 * weight shards, nsfwjs-style wrapped shards, the sidecar beside an .onnx, Teachable Machine's metadata.json, the
 * model file found in a folder) must really lie inside the model's folder after symbolic links are resolved: a
 * `leak.bin -> ../secret` link would otherwise copy the secret's bytes into a converted model (CVE-2024-27318 in
 * Python's onnx). A real file whose name merely starts with two dots (`..weights.bin`) still loads.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { loadAnyModel, loadWrappedModelJson, readTeachableMetadata } from '../../src/import/index.js';
import { loadModel, saveModel } from '../../src/onnx/io.js';
import { onnx } from '../../src/onnx/tensor-proto.js';
import { Network } from '../../src/train/network.js';
import { resolveInsideFolder } from '../../src/util/safe-path.js';
import { runGraft } from '../cli-run.js';
import { buildModel, describe } from '../onnx/helpers.js';
import { saveToMemory, tf, writeModelDir } from './helpers.js';

const tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'graft-model-folder-')));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const SECRET = Buffer.alloc(300 * 4 * 4, 7); // as many bytes as the external tensors need, so only the check can stop it
fs.writeFileSync(path.join(tmp, 'secret'), SECRET);

/** `v` with regular-expression metacharacters escaped. */
const esc = (v: string) => v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A refusal that names the file (as written in the model), the folder and the symbolic link. */
function linkRefusal(name: string, folder: string): RegExp {
  return new RegExp(`"${esc(name)}" escapes the model's folder ${esc(folder)} through a symbolic link \\(it resolves to ${esc(path.join(tmp, 'secret'))}`);
}

/** An .onnx with all its external tensors in one file named `location` (moved there from model.onnx.data). */
function onnxWithData(dir: string, location: string): string {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'model.onnx');
  saveModel(buildModel(17, 300), file, { externalData: true });
  const p = onnx.ModelProto.decode(fs.readFileSync(file));
  for (const t of p.graph?.initializer ?? []) for (const kv of t.externalData ?? []) if (kv.key === 'location') kv.value = location;
  fs.writeFileSync(file, onnx.ModelProto.encode(p).finish());
  return file;
}

test('ONNX external data: a symbolic link out of the folder (file or folder on the way) is refused; ..weights.bin and links inside load', async () => {
  const leak = onnxWithData(path.join(tmp, 'onnx-leak'), 'leak.bin');
  fs.rmSync(`${leak}.data`);
  fs.symlinkSync('../secret', path.join(tmp, 'onnx-leak', 'leak.bin'));
  const viaDir = onnxWithData(path.join(tmp, 'onnx-dir'), 'up/secret');
  fs.rmSync(`${viaDir}.data`);
  fs.symlinkSync('..', path.join(tmp, 'onnx-dir', 'up'));
  for (const [file, name] of [
    [leak, 'leak.bin'],
    [viaDir, 'up/secret'],
  ] as const) {
    const folder = path.dirname(file);
    assert.throws(() => loadModel(file), linkRefusal(name, folder), name);
    assert.throws(() => Network.load(file), linkRefusal(name, folder), name);
    assert.throws(() => loadModel(file), /Put the weight file beside the model \(a copy, not a symbolic link\)/, name);
  }
  const r = await runGraft(['inspect', leak], tmp);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^graft: error: [^\n]+\n$/);
  assert.match(r.stderr, linkRefusal('leak.bin', path.dirname(leak)));

  const dots = onnxWithData(path.join(tmp, 'onnx-dots'), '..weights.bin');
  fs.renameSync(`${dots}.data`, path.join(tmp, 'onnx-dots', '..weights.bin'));
  assert.deepStrictEqual(describe(loadModel(dots)), describe(buildModel(17, 300)), '..weights.bin is a file inside the folder');
  const inner = onnxWithData(path.join(tmp, 'onnx-inner'), 'link.bin');
  fs.symlinkSync('model.onnx.data', path.join(tmp, 'onnx-inner', 'link.bin'));
  assert.deepStrictEqual(describe(loadModel(inner)), describe(buildModel(17, 300)), 'a link to a file inside the folder is fine');
});

/** A small tfjs layers model as model.json + one shard `shard` in `dir`; returns model.json's path. */
async function tfjsDir(dir: string, shard = 'group1-shard1of1.bin'): Promise<string> {
  const m = tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 3, activation: 'softmax' })] });
  const file = writeModelDir(await saveToMemory(m), dir);
  if (shard !== 'group1-shard1of1.bin') {
    fs.renameSync(path.join(dir, 'group1-shard1of1.bin'), path.join(dir, shard));
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('"group1-shard1of1.bin"', JSON.stringify(shard)));
  }
  return file;
}

test('TensorFlow.js shards: a symbolic link out of the folder is refused by graft import and loadAnyModel; ..weights.bin loads', async () => {
  const leak = await tfjsDir(path.join(tmp, 'tfjs-leak'));
  const shard = path.join(tmp, 'tfjs-leak', 'group1-shard1of1.bin');
  fs.copyFileSync(shard, path.join(tmp, 'secret-shard')); // same size: only the containment check can refuse it
  fs.rmSync(shard);
  fs.symlinkSync('../secret-shard', shard);
  const folder = path.dirname(leak);
  const r = await runGraft(['import', path.dirname(leak)], tmp);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^graft: error: [^\n]+\n$/);
  assert.match(r.stderr, new RegExp(`weight shard "group1-shard1of1\\.bin" escapes the model's folder ${esc(folder)} through a symbolic link`));
  assert.ok(!fs.readdirSync(folder).some((f) => f.endsWith('.onnx')), 'nothing written');
  assert.throws(() => loadAnyModel(leak), /escapes the model's folder .* through a symbolic link.*Copy the shard there/);

  const dots = await tfjsDir(path.join(tmp, 'tfjs-dots'), '..weights.bin');
  const model = loadAnyModel(dots);
  assert.equal(model.graph.parameterCount(), 4 * 3 + 3, '..weights.bin was read');
});

test('nsfwjs-style folders: a wrapped shard linking out, or named "../x" in the manifest, is refused', () => {
  const dir = path.join(tmp, 'wrapped');
  fs.mkdirSync(dir);
  const manifest = (p: string) => `weightsManifest:[{paths:[${JSON.stringify(p)}],weights:[{name:"w",shape:[3],dtype:"float32"}]}]`;
  const write = (p: string) =>
    fs.writeFileSync(path.join(dir, 'model.min.js'), `module.exports={modelTopology:{class_name:"Sequential",config:{layers:[]}},${manifest(p)}};`);
  fs.writeFileSync(path.join(tmp, 'secret.min.js'), 'module.exports="AAAAAAAAAAAAAAAA"');
  fs.symlinkSync('../secret.min.js', path.join(dir, 'group1-shard1of1.min.js'));
  const read = (p: string) => {
    write(p);
    const m = loadWrappedModelJson(path.join(dir, 'model.min.js'));
    return () => m.readShard(p);
  };
  assert.throws(read('group1-shard1of1'), /weight shard "group1-shard1of1\.min\.js" escapes the model's folder .* through a symbolic link/);
  assert.throws(read('../secret'), /weight shard "\.\.\/secret\.min\.js" escapes the model's folder/);
  fs.writeFileSync(path.join(dir, '..w.min.js'), 'module.exports="AAAAAAAAAAAAAAAA"');
  assert.equal(read('..w')().length, 12, 'a shard named ..w.min.js inside the folder is read');
});

test("sidecar, Teachable Machine metadata.json and a folder's model.json that link out of the folder are refused", async () => {
  const dir = path.join(tmp, 'side');
  fs.mkdirSync(dir);
  const file = path.join(dir, 'model.onnx');
  saveModel(buildModel(17, 4), file);
  fs.writeFileSync(path.join(tmp, 'secret.json'), JSON.stringify({ labels: ['a', 'b', 'c'] }));
  fs.symlinkSync('../secret.json', path.join(dir, 'model.json'));
  assert.throws(() => Network.load(file), new RegExp(`model\\.onnx: sidecar "model\\.json" escapes the model's folder ${esc(dir)} through a symbolic link`));

  const tm = await tfjsDir(path.join(tmp, 'tm'));
  fs.symlinkSync('../secret.json', path.join(tmp, 'tm', 'metadata.json'));
  assert.throws(() => readTeachableMetadata(tm), /Teachable Machine metadata "metadata\.json" escapes the model's folder .* through a symbolic link/);
  assert.throws(() => loadAnyModel(tm), /metadata\.json" escapes/);

  const outer = path.join(tmp, 'outer');
  fs.mkdirSync(outer);
  fs.symlinkSync(tm, path.join(outer, 'model.json'));
  assert.throws(() => loadAnyModel(outer), /model file "model\.json" escapes the model's folder .* through a symbolic link/);
});

test('resolveInsideFolder: lexical escapes and absolute paths are refused, names starting with ".." are not', () => {
  const msg = { what: 'x', fix: 'Fix it.' };
  for (const bad of ['../a', 'a/../../b', '/etc/passwd', 'C:\\x', 'file:///etc/passwd', '..'])
    assert.throws(() => resolveInsideFolder(tmp, bad, msg), /escapes the model's folder/, bad);
  for (const ok of ['..a', '...', 'a/..b', 'a/../b']) assert.equal(resolveInsideFolder(tmp, ok, msg), path.resolve(tmp, ok), ok);
});
