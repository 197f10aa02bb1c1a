import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import sharp from 'sharp';
import { applyColorJitter, parseAugmentConfig, sampleResizedCrop } from '../../src/data/augment.js';
import { cropGeometry, decodeBatch, decodeImage, decodeRgb, ImageDecodeError, roundHalfEven } from '../../src/data/image.js';
import { describePreprocess, IMAGENET_MEAN, IMAGENET_STD, parsePreprocessConfig } from '../../src/data/preprocess.js';
import { Rng } from '../../src/tensor.js';

const tmp = await mkdtemp(join(tmpdir(), 'graft-img-'));
after(() => rm(tmp, { recursive: true, force: true }));

const solid = (w: number, h: number, r: number, g: number, b: number) =>
  sharp({ create: { width: w, height: h, channels: 3, background: { r, g, b } } })
    .png()
    .toBuffer();
const near = (a: number, b: number, tol = 1e-5) => Math.abs(a - b) <= tol;

test('solid colour gives (c/255 - mean)/std everywhere, for every policy and layout', async () => {
  const rgb = [200, 100, 30];
  const png = await solid(50, 30, rgb[0]!, rgb[1]!, rgb[2]!);
  for (const resize of ['crop', 'stretch', 'pad'] as const) {
    for (const layout of ['NCHW', 'NHWC'] as const) {
      const cfg = parsePreprocessConfig({ size: [24, 20], resize, layout, mean: IMAGENET_MEAN, std: IMAGENET_STD, padValue: 0 });
      const out = await decodeImage(png, cfg);
      assert.equal(out.length, 3 * 24 * 20);
      const at = (c: number, y: number, x: number) => (layout === 'NCHW' ? out[c * 480 + y * 20 + x]! : out[(y * 20 + x) * 3 + c]!);
      // 'pad' letterboxes 50x30 into 20x24 (w x h): image is 20x12 in the middle rows
      const y = resize === 'pad' ? 12 : 0;
      for (let c = 0; c < 3; c++) {
        const want = (rgb[c]! / 255 - IMAGENET_MEAN[c]!) / IMAGENET_STD[c]!;
        for (const x of [0, 7, 19]) assert.ok(near(at(c, y, x), want), `${resize}/${layout} c${c}: ${at(c, y, x)} vs ${want}`);
        if (resize === 'pad') assert.ok(near(at(c, 0, 0), -IMAGENET_MEAN[c]! / IMAGENET_STD[c]!), 'padding is grey 0');
        else assert.ok(near(at(c, 23, 19), want));
      }
    }
  }
  // BGR, scale 1, one channel (luma)
  const bgr = await decodeImage(png, parsePreprocessConfig({ size: 4, channelOrder: 'BGR', scale: 1, mean: [1, 2, 3] }));
  assert.deepEqual([bgr[0], bgr[16], bgr[32]], [30 - 1, 100 - 2, 200 - 3]);
  const gray = await decodeImage(png, parsePreprocessConfig({ size: 4, channels: 1, mean: [0.5], std: [0.5] }));
  assert.equal(gray.length, 16);
  assert.ok(near(gray[5]!, ((0.299 * 200 + 0.587 * 100 + 0.114 * 30) / 255 - 0.5) / 0.5, 1e-4));
});

test('crop geometry follows torchvision Resize(256) + CenterCrop(224)', () => {
  const cfg = parsePreprocessConfig({ size: 224 });
  assert.deepEqual(cropGeometry(cfg, 500, 375), { resizeW: 341, resizeH: 256, left: 58, top: 16 });
  assert.deepEqual(cropGeometry(cfg, 375, 500), { resizeW: 256, resizeH: 341, left: 16, top: 58 });
  assert.deepEqual(cropGeometry(cfg, 256, 256), { resizeW: 256, resizeH: 256, left: 16, top: 16 });
  assert.equal(roundHalfEven(58.5), 58);
  assert.equal(roundHalfEven(59.5), 60);
  assert.equal(roundHalfEven(2.4), 2);
});

test('EXIF orientation, grayscale, RGBA and first GIF frame become RGB', async () => {
  // 40x20 stored landscape, left red / right blue, orientation 6 (rotate 90° clockwise): displayed 20x40, red on top
  const px = Buffer.alloc(40 * 20 * 3);
  for (let y = 0; y < 20; y++) for (let x = 0; x < 40; x++) px[(y * 40 + x) * 3 + (x < 20 ? 0 : 2)] = 255;
  const rot = join(tmp, 'rot.jpg');
  await sharp(px, { raw: { width: 40, height: 20, channels: 3 } })
    .jpeg({ quality: 95 })
    .withMetadata({ orientation: 6 })
    .toFile(rot);
  const r = await decodeRgb(rot, parsePreprocessConfig({ size: [40, 20], resize: 'stretch' }));
  assert.ok(r.data[0]! > 240 && r.data[2]! < 15, 'top-left is red');
  const last = r.data.length - 3;
  assert.ok(r.data[last]! < 15 && r.data[last + 2]! > 240, 'bottom-right is blue');

  const grayFile = join(tmp, 'gray.png');
  await sharp(Buffer.alloc(36, 77), { raw: { width: 6, height: 6, channels: 1 } })
    .toColourspace('b-w')
    .png()
    .toFile(grayFile);
  assert.equal((await sharp(grayFile).metadata()).channels, 1);
  const g = await decodeRgb(grayFile, parsePreprocessConfig({ size: 3, resize: 'stretch' }));
  assert.deepEqual(Array.from(g.data.subarray(0, 6)), [77, 77, 77, 77, 77, 77]);

  const rgba = await sharp({ create: { width: 6, height: 6, channels: 4, background: { r: 10, g: 20, b: 30, alpha: 0.25 } } })
    .png()
    .toBuffer();
  assert.deepEqual(Array.from((await decodeRgb(rgba, parsePreprocessConfig({ size: 2, resize: 'stretch' }))).data.subarray(0, 3)), [10, 20, 30]);

  const p16 = await sharp(new Uint16Array(4 * 4 * 3).fill(40000), { raw: { width: 4, height: 4, channels: 3 } })
    .toColourspace('rgb16')
    .png()
    .toBuffer();
  assert.equal((await sharp(p16).metadata()).depth, 'ushort');
  assert.deepEqual(Array.from((await decodeRgb(p16, parsePreprocessConfig({ size: 2 }))).data.subarray(0, 3)), [156, 156, 156]); // 40000/65535·255

  const frame = (r: number) =>
    sharp({ create: { width: 4, height: 4, channels: 3, background: { r, g: 0, b: 0 } } })
      .png()
      .toBuffer();
  const gif = await sharp([await frame(200), await frame(50)], { join: { animated: true } })
    .gif()
    .toBuffer();
  const gd = await decodeRgb(gif, parsePreprocessConfig({ size: 4, resize: 'stretch' }));
  assert.ok(Math.abs(gd.data[0]! - 200) <= 2 && gd.data.length === 48);
  const webp = await sharp(await solid(8, 8, 0, 128, 0))
    .webp({ lossless: true })
    .toBuffer();
  assert.equal((await decodeRgb(webp, parsePreprocessConfig({ size: 4 }))).data[1], 128);
});

test('EXIF orientation is applied before resizing: same pixels as the physically rotated image, every policy', async () => {
  // A textured 333x222 photo; the reference is the same decoded pixels rotated for real and stored losslessly.
  const [W, H] = [333, 222];
  const px = Buffer.alloc(W * H * 3);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) px.set([(x * 4) & 255, (y * 5) & 255, ((x >> 3) + (y >> 3)) % 2 ? 200 : 30], (y * W + x) * 3);
  for (const orientation of [3, 6, 8]) {
    const exif = await sharp(px, { raw: { width: W, height: H, channels: 3 } })
      .jpeg({ quality: 95 })
      .withMetadata({ orientation })
      .toBuffer();
    const rotated = await sharp(exif).rotate().png().toBuffer();
    for (const resize of ['stretch', 'pad', 'crop'] as const) {
      for (const size of [
        [37, 23],
        [64, 64],
      ] as [number, number][]) {
        const cfg = parsePreprocessConfig({ size, resize });
        const a = (await decodeRgb(exif, cfg)).data;
        const b = (await decodeRgb(rotated, cfg)).data;
        let worst = 0;
        for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
        assert.ok(worst <= 2, `orientation ${orientation}, ${resize} ${size}: differs from the rotated image by up to ${worst}`);
      }
    }
  }
});

test('corrupt files: ImageDecodeError naming the file; decodeBatch throws or skips', async () => {
  const bad = join(tmp, 'bad.jpg');
  await writeFile(bad, 'definitely not a jpeg');
  const full = await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 1, g: 2, b: 3 } } })
    .jpeg()
    .toBuffer();
  const trunc = join(tmp, 'trunc.jpg');
  await writeFile(trunc, full.subarray(0, full.length >> 1));
  const cfg = parsePreprocessConfig({ size: 4 });
  for (const f of [bad, trunc]) {
    await assert.rejects(
      decodeImage(f, cfg),
      (e: Error) => e instanceof ImageDecodeError && e.file === f && e.message.includes(f) && /Re-encode or remove/.test(e.message),
    );
  }
  const good = join(tmp, 'good.png');
  await writeFile(good, await solid(8, 8, 255, 255, 255));
  await assert.rejects(decodeBatch([good, bad], cfg), ImageDecodeError);
  const out = new Float32Array(200).fill(7);
  const b = await decodeBatch([good, bad, good], cfg, { onError: 'skip', out });
  assert.deepEqual(b.dims, [3, 3, 4, 4]);
  assert.equal(b.data.length, 144);
  assert.deepEqual(
    b.failed.map((f) => [f.index, f.file]),
    [[1, bad]],
  );
  assert.equal(b.data[0], 1);
  assert.ok(b.data.subarray(48, 96).every((v) => v === 0));
  assert.equal(out[144], 7, 'writes only the batch part of the reused buffer');
});

test('augmentation is reproducible from the seed, independent of concurrency', async () => {
  const px = Buffer.alloc(64 * 48 * 3);
  for (let i = 0; i < px.length; i++) px[i] = (i * 37) % 251;
  const files: string[] = [];
  for (let k = 0; k < 6; k++) {
    const f = join(tmp, `noise${k}.png`);
    await sharp(px, { raw: { width: 64, height: 48, channels: 3 } })
      .rotate(k * 90)
      .png()
      .toFile(f);
    files.push(f);
  }
  const cfg = parsePreprocessConfig({ size: 16, mean: IMAGENET_MEAN, std: IMAGENET_STD });
  const augment = parseAugmentConfig({ colorJitter: { brightness: 0.4, contrast: 0.4, saturation: 0.4 } });
  const a = await decodeBatch(files, cfg, { augment, rng: new Rng(11), concurrency: 1 });
  const b = await decodeBatch(files, cfg, { augment, rng: new Rng(11), concurrency: 6 });
  const c = await decodeBatch(files, cfg, { augment, rng: new Rng(12) });
  const plain = await decodeBatch(files, cfg);
  assert.deepEqual(a.data, b.data);
  assert.notDeepEqual(a.data, c.data);
  assert.notDeepEqual(a.data, plain.data);
  await assert.rejects(decodeBatch(files, cfg, { augment }), /needs a seeded rng/);
});

test('random resized crop, flip and jitter parameters', () => {
  const rng = new Rng(3);
  for (let i = 0; i < 200; i++) {
    const c = sampleResizedCrop(rng, 120, 80, [0.08, 1], [3 / 4, 4 / 3]);
    assert.ok(c.left >= 0 && c.top >= 0 && c.left + c.width <= 120 && c.top + c.height <= 80, JSON.stringify(c));
    const frac = (c.width * c.height) / (120 * 80);
    assert.ok(frac > 0.06 && frac <= 1.0001);
  }
  // impossible ratio falls back to a centre crop with the ratio clamped
  assert.deepEqual(sampleResizedCrop(new Rng(1), 100, 10, [0.99, 1], [1, 1]), { top: 0, left: 45, width: 10, height: 10 });
  const px = Float32Array.from([200, 100, 0, 100, 50, 0]);
  applyColorJitter(px, { order: [2, 0, 1], brightness: 2, contrast: 1, saturation: 0 });
  const l0 = 0.2989 * 200 + 0.587 * 100;
  assert.ok(near(px[0]!, Math.min(255, 2 * l0), 1e-3) && near(px[0]!, px[1]!) && near(px[1]!, px[2]!), 'saturation 0 → grey, then brightness');
  assert.throws(() => parseAugmentConfig({ hflip: 2 }), /hflip/);
});

test('config validation and describe()', () => {
  const cfg = parsePreprocessConfig({ size: 224, mean: IMAGENET_MEAN, std: IMAGENET_STD });
  assert.deepEqual(cfg.size, [224, 224]);
  assert.equal(cfg.resize, 'crop');
  const d = describePreprocess(cfg);
  assert.match(d, /NCHW float32, 3x224x224/);
  assert.match(d, /resize shorter side to 256, centre-crop 224x224 \(crop fraction 0.875\)/);
  assert.throws(
    () => parsePreprocessConfig({ size: [224, 0], channels: 2, mean: [1, 2], bogus: 1 }, 'model.json'),
    (e: Error) => /Invalid model\.json/.test(e.message) && /size/.test(e.message) && /channels must be 1 or 3/.test(e.message) && /bogus/.test(e.message),
  );
  assert.throws(() => parsePreprocessConfig({ size: 8, channels: 1, mean: [1, 2, 3] }), /mean has 3 values but channels is 1/);
  assert.deepEqual(parsePreprocessConfig({ size: 8, std: [0.5] }).std, [0.5, 0.5, 0.5]);
});
