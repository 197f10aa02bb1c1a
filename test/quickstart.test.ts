/** The README quickstarts, run as written (the TypeScript block verbatim on nsfwjs:MobileNetV2, the YAML through loadConfig), and the same steps on a small stand-in backbone. */

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { batchNorm2d, conv2d, flatten, globalAvgPool, linear, loadImageFolder, mlp, Network, relu, sequential, sgd } from '../src/index.js';

/** The README's first ```<lang> block after `## Quickstart`. */
function readmeBlock(lang: string): string {
  const readme = fs.readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const from = readme.indexOf('## Quickstart');
  const m = new RegExp(`\`\`\`${lang}\n([\\s\\S]*?)\`\`\``).exec(readme.slice(from));
  assert.ok(m, `README has a ${lang} block under ## Quickstart`);
  return m[1]!;
}

test('README quickstart, verbatim: nsfwjs:MobileNetV2 from npm, freeze, replaceHead(mlp), fit on an image folder, save', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-quickstart-'));
  const saved = { cwd: process.cwd(), cache: process.env.GRAFT_CACHE_DIR };
  process.env.GRAFT_CACHE_DIR = path.join(dir, 'cache');
  const colours: Record<string, [number, number, number]> = { red: [220, 20, 20], green: [20, 200, 30], blue: [30, 40, 210] };
  for (const [name, rgb] of Object.entries(colours)) {
    fs.mkdirSync(path.join(dir, 'photos', name), { recursive: true });
    for (let i = 0; i < 24; i++) {
      const noisy = rgb.map((c) => Math.max(0, Math.min(255, c + ((i * 37) % 40) - 20)));
      await sharp({ create: { width: 32, height: 32, channels: 3, background: { r: noisy[0]!, g: noisy[1]!, b: noisy[2]! } } })
        .png()
        .toFile(path.join(dir, 'photos', name, `${i}.png`));
    }
  }
  // the README's code, character for character, except that it imports the package from this checkout
  const code = readmeBlock('ts');
  assert.match(code, /^import \{ [^}]+ \} from 'graft';\n/);
  assert.match(code, /Network\.load\('nsfwjs:MobileNetV2'\)/, 'the quickstart uses the backbone npm install brings');
  const file = path.join(dir, 'quickstart.mts'); // ESM, as in a package with "type": "module"
  fs.writeFileSync(file, code.replace(/from 'graft';/, `from ${JSON.stringify(new URL('../src/index.js', import.meta.url).href)};`));
  process.chdir(dir);
  try {
    await import(file);
  } finally {
    process.chdir(saved.cwd);
    if (saved.cache === undefined) delete process.env.GRAFT_CACHE_DIR;
    else process.env.GRAFT_CACHE_DIR = saved.cache;
  }
  const side = JSON.parse(fs.readFileSync(path.join(dir, 'runs/photos/model.json'), 'utf8'));
  assert.deepEqual(side.labels, ['blue', 'green', 'red']);
  assert.ok(fs.statSync(path.join(dir, 'runs/photos/model.onnx')).size > 1e6, 'the saved model holds the MobileNetV2 backbone');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('README config quickstart: backbone nsfwjs:MobileNetV2 stays a registry name', async () => {
  const { parse } = await import('yaml');
  const { loadConfig } = await import('../src/run/config.js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-quickstart-yaml-'));
  const file = path.join(dir, 'graft.yaml');
  fs.writeFileSync(file, readmeBlock('yaml'));
  assert.equal((parse(readmeBlock('yaml')) as { model: { backbone: string } }).model.backbone, 'nsfwjs:MobileNetV2');
  const { config } = loadConfig({ file });
  assert.equal(config.model.backbone, 'nsfwjs:MobileNetV2');
  assert.equal(config.data.train, path.join(dir, 'photos'));
  fs.rmSync(dir, { recursive: true, force: true });
});

test('library example: load backbone, freeze, replaceHead(mlp), fit on an image folder, save (a small stand-in backbone)', async () => {
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
