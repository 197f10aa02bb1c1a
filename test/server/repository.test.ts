/** What `graft serve` arguments name: files, run folders, repository folders, registry names, and the refusals. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { openDirectRunner } from '../../src/server/direct-runner.js';
import { ModelRepository, resolveSources } from '../../src/server/repository.js';
import { exposureWarning, isLoopback } from '../../src/server/serve.js';
import { saveColourModel } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-repo-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('sources: a run folder, a named file, a model.onnx, a repository folder and a registry name', async () => {
  saveColourModel(path.join(tmp, 'runs', 'pets', 'model.onnx'));
  saveColourModel(path.join(tmp, 'exports', 'birds.onnx'));
  saveColourModel(path.join(tmp, 'repo', 'cars', '3', 'model.onnx'));
  const resolved: string[] = [];
  const resolve = async (ref: string) => {
    resolved.push(ref);
    return path.join(tmp, 'exports', 'birds.onnx');
  };
  const s = await resolveSources(
    [
      path.join(tmp, 'runs', 'pets'),
      path.join(tmp, 'exports', 'birds.onnx'),
      path.join(tmp, 'runs', 'pets', 'model.onnx'),
      path.join(tmp, 'repo'),
      'mobilenetv2',
    ],
    { resolve },
  );
  assert.deepEqual(
    s.map((x) => (x.kind === 'file' ? `${x.name}@${x.version}` : `repo ${path.basename(x.dir)}`)),
    ['pets@1', 'birds@1', 'pets@1', 'repo repo', 'mobilenetv2@1'],
  );
  assert.deepEqual(resolved, ['mobilenetv2']);
  const [named] = await resolveSources([path.join(tmp, 'exports', 'birds.onnx')], { name: 'b2' });
  assert.equal(named?.kind === 'file' ? named.name : named?.kind, 'b2');
  // two models of one name are refused when loading
  const repo = new ModelRepository(s.slice(0, 3), { openRunner: openDirectRunner, runner: { threads: 1 } });
  await assert.rejects(repo.load(), /Two models are named "pets"/);
  await repo.close();
  const cars = new ModelRepository([s[3]!], { openRunner: openDirectRunner, pollMs: 0 });
  await cars.load();
  assert.deepEqual(cars.names(), ['cars']);
  assert.equal(cars.get('cars').version, '3');
  await cars.close();
});

test('sources: each wrong argument is one error that says what to pass', async () => {
  fs.mkdirSync(path.join(tmp, 'empty'), { recursive: true });
  fs.writeFileSync(path.join(tmp, 'notes.txt'), 'x');
  await assert.rejects(resolveSources([]), /at least one model/);
  await assert.rejects(resolveSources([path.join(tmp, 'notes.txt')]), /not an \.onnx model/);
  await assert.rejects(resolveSources(['./no/such/file.onnx']), /neither a file, a folder nor a registry model name/);
  await assert.rejects(resolveSources([path.join(tmp, 'exports'), path.join(tmp, 'runs')], { name: 'x' }), /--name names one model, but 2 were given/);
  await assert.rejects(resolveSources(['nsfwjs:MobileNetV2'], { resolve: async (r) => r }), /graft import nsfwjs:MobileNetV2 --out model\.onnx/);
  await assert.rejects(resolveSources([path.join(tmp, 'exports', 'birds.onnx')], { name: 'no spaces' }), /not URL-safe/);
  const empty = new ModelRepository(await resolveSources([path.join(tmp, 'empty')]), { openRunner: openDirectRunner });
  await assert.rejects(empty.load(), /No models to serve in .*<name>\/<version>\/model\.onnx/);
});

test('isLoopback and the exposure warning: only loopback hosts count as local; a token silences the warning', () => {
  for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1']) assert.equal(isLoopback(h), true, h);
  for (const h of ['0.0.0.0', '::', '192.168.1.4', 'example.com']) assert.equal(isLoopback(h), false, h);
  assert.match(exposureWarning('0.0.0.0', undefined) ?? '', /reachable from the network, with no --token.*GRAFT_SERVE_TOKEN/);
  assert.equal(exposureWarning('0.0.0.0', 'secret'), undefined);
  assert.equal(exposureWarning('127.0.0.1', undefined), undefined);
});
