/** The README's TypeScript quickstart, run as written on a small backbone and a generated image folder. */

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { batchNorm2d, conv2d, flatten, globalAvgPool, linear, loadImageFolder, mlp, Network, relu, sequential, sgd } from '../src/index.js';

test('README quickstart: load backbone, freeze, replaceHead(mlp), fit on an image folder, save', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-quickstart-'));
  process.env.GRAFT_CACHE_DIR = path.join(dir, 'cache');
  // a small "pretrained" backbone with its preprocessing sidecar, standing in for resnet18.onnx
  const backbone = new Network(
    sequential(conv2d(3, 8, 3, { padding: 1 }), batchNorm2d(8), relu(), globalAvgPool(), flatten(), linear(8, 4)).build({
      inputShape: ['N', 3, 16, 16],
      seed: 0,
    }),
    {
      preprocess: {
        size: [16, 16],
        channels: 3,
        resize: 'stretch',
        cropFraction: 1,
        layout: 'NCHW',
        channelOrder: 'RGB',
        scale: 255,
        interpolation: 'bilinear',
        padValue: 0,
      } as never,
    },
  );
  backbone.save(path.join(dir, 'backbone.onnx'));
  const colours: Record<string, [number, number, number]> = { red: [220, 20, 20], green: [20, 200, 30], blue: [30, 40, 210] };
  for (const [name, rgb] of Object.entries(colours)) {
    fs.mkdirSync(path.join(dir, 'photos', name), { recursive: true });
    for (let i = 0; i < 12; i++) {
      const noisy = rgb.map((c) => Math.max(0, Math.min(255, c + ((i * 37) % 40) - 20)));
      await sharp({ create: { width: 20, height: 20, channels: 3, background: { r: noisy[0]!, g: noisy[1]!, b: noisy[2]! } } })
        .png()
        .toFile(path.join(dir, 'photos', name, `${i}.png`));
    }
  }
  // --- the quickstart ---
  const net = Network.load(path.join(dir, 'backbone.onnx'));
  net.freeze().replaceHead(mlp([16, 16], 3, { inFeatures: 8 }));
  const { train, val, classes } = await loadImageFolder(path.join(dir, 'photos'), net.preprocess!);
  await net.fit(train, { epochs: 40, batchSize: 8, optimizer: sgd({ lr: 0.05, momentum: 0.9 }), val });
  net.labels = classes;
  net.save(path.join(dir, 'runs/photos/model.onnx'));
  // ---
  assert.deepEqual(classes, ['blue', 'green', 'red']);
  assert.ok(fs.existsSync(path.join(dir, 'runs/photos/model.json')));
  assert.ok((net.lastFit!.history.at(-1)!.val_acc ?? 0) >= 0.8, `val acc ${net.lastFit!.history.at(-1)!.val_acc}`);
  fs.rmSync(dir, { recursive: true, force: true });
});
