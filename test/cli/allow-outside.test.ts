/**
 * A manifest whose paths lead outside its folder is refused with advice that can be followed: the flag it
 * names exists on `graft train` and `graft eval`, and passing it makes the same command succeed.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import sharp from 'sharp';
import { runGraft } from '../cli-run.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-outside-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('manifest paths outside its folder: the advised --allow-outside works for graft train and graft eval', async () => {
  fs.mkdirSync(path.join(tmp, 'imgs'));
  fs.mkdirSync(path.join(tmp, 'sub'));
  for (let i = 0; i < 4; i++) {
    await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: i * 60, g: 0, b: 0 } } })
      .png()
      .toFile(path.join(tmp, 'imgs', `${i}.png`));
  }
  fs.writeFileSync(path.join(tmp, 'sub', 'm.csv'), 'path,label\n../imgs/0.png,a\n../imgs/1.png,a\n../imgs/2.png,b\n../imgs/3.png,b\n');
  const trainArgs = ['train', '--manifest', 'sub/m.csv', '--arch', 'small-cnn', '--width', '4', '--image-size', '8', '--epochs', '1'];
  const refused = await runGraft([...trainArgs, '--val-split', '0', '--batch-size', '4'], tmp);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /line 2: path \.\.\/imgs\/0\.png points outside the manifest's folder/);
  const flag = refused.stderr.match(/allow it explicitly: (--[a-z-]+) \(graft train[^)]*eval\)/)?.[1];
  assert.equal(flag, '--allow-outside', refused.stderr);

  const trained = await runGraft([...trainArgs, '--val-split', '0', '--batch-size', '4', flag], tmp);
  assert.equal(trained.code, 0, trained.stderr);
  const model = path.join(tmp, 'runs', 'train', 'model.onnx');
  assert.ok(fs.existsSync(model));

  const evalRefused = await runGraft(['eval', model, '--data', 'sub/m.csv'], tmp);
  assert.equal(evalRefused.code, 1);
  assert.match(evalRefused.stderr, /points outside the manifest's folder.*--allow-outside/);
  const evaluated = await runGraft(['eval', model, '--data', 'sub/m.csv', flag, '--json'], tmp);
  assert.equal(evaluated.code, 0, evaluated.stderr);
  assert.equal(JSON.parse(evaluated.stdout).n, 4, 'all four outside images evaluated');
});
