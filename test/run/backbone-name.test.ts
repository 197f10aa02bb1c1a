/**
 * A registry name works wherever a model path does: the config leaves `model.backbone: mobilenetv2` or
 * `nsfwjs:MobileNetV2` as a name (from a flag or a file) instead of resolving it against the cwd, while a real
 * path is still resolved; the library fetches a named model into the cache on first use with one note, and
 * `Network.load(name)` then finds it. A loopback server (127.0.0.1, port 0) stands in for the internet.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { resolveModelRef } from '../../src/models/resolve.js';
import { encodeModel } from '../../src/onnx/io.js';
import { loadConfig } from '../../src/run/config.js';
import { Network } from '../../src/train/network.js';
import { buildModel } from '../onnx/helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-backbone-name-'));
const onnx = Buffer.from(encodeModel(buildModel()));
let server: http.Server;
let requests = 0;
const saved = { ...process.env };

before(async () => {
  server = http.createServer((_req, res) => {
    requests++;
    res.writeHead(200, { 'content-length': onnx.length }).end(onnx);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const registry = path.join(tmp, 'registry.json');
  const sha256 = createHash('sha256').update(onnx).digest('hex');
  fs.writeFileSync(
    registry,
    JSON.stringify({
      models: [{ name: 'tinynet', preprocess: { size: 4, channels: 1, resize: 'stretch' }, download: { url: `${base}/tiny.onnx`, sha256, size: onnx.length } }],
    }),
  );
  Object.assign(process.env, { GRAFT_REGISTRY: registry, GRAFT_MODELS_DIR: path.join(tmp, 'cache'), GRAFT_MODEL_MIRROR: '' });
});
after(() => {
  process.env = saved;
  server.closeAllConnections();
  server.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('model.backbone keeps a registry name (flag or file) and still resolves a path', () => {
  const flag = (value: string) =>
    loadConfig({ cwd: tmp, flags: { 'model.backbone': { value, flag: '--backbone' }, 'data.train': { value: 'photos', flag: '--data' } } }).config;
  assert.equal(flag('nsfwjs:MobileNetV2').model.backbone, 'nsfwjs:MobileNetV2');
  assert.equal(flag('mobilenetv2').model.backbone, 'mobilenetv2');
  assert.equal(flag('models/resnet.onnx').model.backbone, path.join(tmp, 'models/resnet.onnx'));
  assert.equal(flag('mobilenetv2').data.train, path.join(tmp, 'photos'), 'other path keys are resolved as before');
  const file = path.join(tmp, 'graft.yaml');
  fs.writeFileSync(file, 'data:\n  train: photos\nmodel:\n  backbone: nsfwjs:MobileNetV2\n');
  assert.equal(loadConfig({ file }).config.model.backbone, 'nsfwjs:MobileNetV2');
  fs.writeFileSync(file, 'data:\n  train: photos\nmodel:\n  backbone: mine.onnx\n');
  assert.equal(loadConfig({ file }).config.model.backbone, path.join(tmp, 'mine.onnx'));
});

test('a registry name is fetched into the cache on first use with one note; Network.load(name) then finds it', async () => {
  assert.throws(
    () => Network.load('tinynet'),
    /tinynet is a registry model that is not in the model cache .*await Network\.fetch\('tinynet'\).*graft models fetch tinynet/,
  );
  const notes: string[] = [];
  const file = await resolveModelRef('tinynet', { onNote: (m) => notes.push(m), progress: false });
  assert.equal(file, path.join(tmp, 'cache', 'tinynet.onnx'));
  assert.equal(notes.length, 1, notes.join('\n'));
  assert.match(notes[0]!, /tinynet is not in the model cache yet: fetching it from http:\/\/127\.0\.0\.1:\d+\/tiny\.onnx \(first use only\)/);
  const again: string[] = [];
  const net = await Network.fetch('TinyNet', { onNote: (m) => again.push(m), progress: false });
  assert.deepEqual(again, [], 'cached: no note, no download');
  assert.equal(requests, 1);
  assert.deepEqual(net.preprocess?.size, [4, 4]);
  assert.deepEqual(Network.load('tinynet').preprocess?.size, [4, 4]);
  assert.equal(await resolveModelRef('nsfwjs:MobileNetV2'), 'nsfwjs:MobileNetV2', 'nsfwjs names are converted in-process by Network.load');
  await assert.rejects(resolveModelRef('tinynett'), /Unknown model "tinynett"\. Did you mean tinynet\?/);
});
