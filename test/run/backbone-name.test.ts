/**
 * A registry name works wherever a model path does: the config leaves `model.backbone: mobilenetv2` or
 * `nsfwjs:MobileNetV2` as a name (from a flag or a file) instead of resolving it against the cwd, while a real
 * path is still resolved; the library fetches a named model into the cache on first use with one note, and
 * `Network.load(name)` then finds it. A loopback server (127.0.0.1, port 0) stands in for the internet.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import type http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { resolveModelRef } from '../../src/models/resolve.js';
import { conv2d, flatten, globalAvgPool, linear, relu, sequential } from '../../src/nn/index.js';
import { encodeModel } from '../../src/onnx/io.js';
import { loadConfig, parseConfig } from '../../src/run/config.js';
import type { RunEvent } from '../../src/run/events.js';
import { runTraining } from '../../src/run/train.js';
import { Network } from '../../src/train/network.js';
import { startLoopback, stopLoopback } from '../loopback.js';
import { buildModel } from '../onnx/helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-backbone-name-'));
const onnx = Buffer.from(encodeModel(buildModel()));
/** An image backbone [N,3,8,8] → 4 features → 3 logits, served as the registry entry `tinyconv`. */
const conv = Buffer.from(
  encodeModel(
    (() => {
      const m = sequential(conv2d(3, 4, 3, { padding: 1 }), relu(), globalAvgPool(), flatten(), linear(4, 3)).build({ inputShape: ['N', 3, 8, 8], seed: 1 });
      m.metadata['graft.preprocess'] = JSON.stringify({ size: [8, 8], resize: 'stretch' });
      return m;
    })(),
  ),
);
let server: http.Server;
let requests = 0;
const saved = { ...process.env };

before(async () => {
  let base: string;
  ({ server, base } = await startLoopback((req, res) => {
    requests++;
    const body = req.url === '/conv.onnx' ? conv : onnx;
    res.writeHead(200, { 'content-length': body.length }).end(body);
  }));
  const registry = path.join(tmp, 'registry.json');
  const sha256 = createHash('sha256').update(onnx).digest('hex');
  fs.writeFileSync(
    registry,
    JSON.stringify({
      models: [
        { name: 'tinynet', preprocess: { size: 4, channels: 1, resize: 'stretch' }, download: { url: `${base}/tiny.onnx`, sha256, size: onnx.length } },
        { name: 'tinyconv', preprocess: { size: 8, resize: 'stretch' }, download: { url: `${base}/conv.onnx` } },
      ],
    }),
  );
  Object.assign(process.env, { GRAFT_REGISTRY: registry, GRAFT_MODELS_DIR: path.join(tmp, 'cache'), GRAFT_MODEL_MIRROR: '' });
});
after(() => {
  process.env = saved;
  stopLoopback(server);
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

test('runTraining with model.backbone set to a registry name fetches it on first use and says so in one note event', async () => {
  const data = path.join(tmp, 'photos');
  for (const [c, rgb] of [
    ['red', [220, 30, 30]],
    ['blue', [30, 30, 220]],
  ] as const) {
    fs.mkdirSync(path.join(data, c), { recursive: true });
    for (let i = 0; i < 6; i++)
      await sharp({ create: { width: 10, height: 10, channels: 3, background: { r: rgb[0] + i, g: rgb[1], b: rgb[2] } } })
        .png()
        .toFile(path.join(data, c, `${i}.png`));
  }
  const cfg = parseConfig({
    data: { train: data, valSplit: 0 },
    model: { backbone: 'tinyconv', head: { type: 'linear' } },
    train: { mode: 'head', epochs: 1, batchSize: 4, earlyStopping: false },
    run: { dir: path.join(tmp, 'runs'), name: 'named', seed: 1 },
  });
  const events: RunEvent[] = [];
  await runTraining(cfg, { source: 'test', onEvent: (e) => events.push(e) });
  const fetched = events.filter((e) => e.type === 'note' && /tinyconv is not in the model cache yet: fetching it/.test(e.message));
  assert.equal(fetched.length, 1, events.map((e) => JSON.stringify(e)).join('\n'));
  assert.ok(fs.existsSync(path.join(tmp, 'cache', 'tinyconv.onnx')));
  assert.ok(fs.existsSync(path.join(tmp, 'runs', 'named', 'model.onnx')));
});
