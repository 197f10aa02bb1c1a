/**
 * The browser's preprocessing (src/web/preprocess.ts) against graft's decoder (decodeImage, sharp): given the pixels
 * a browser decodes (RGB at natural size, EXIF orientation applied), the model input is the same float32 values,
 * bit for bit, for every resize policy and both kernels.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { decodeImage } from '../../src/data/image.js';
import { parsePreprocessConfig } from '../../src/data/preprocess.js';
import { preprocessPixels } from '../../src/web/preprocess.js';
import { writeTestImage } from './fixtures.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-web-pre-'));
const files: string[] = [];

before(async () => {
  // PNGs that shrink (by 2 and more: box shrink first), grow, or both; JPEGs shrunk by less than 2 or grown
  for (const [w, h, ext] of [
    [9, 7, 'png'],
    [300, 120, 'png'],
    [64, 64, 'png'],
    [40, 90, 'png'],
    [30, 26, 'jpg'],
    [13, 11, 'jpg'],
  ] as const) {
    const f = path.join(tmp, `${w}x${h}.${ext}`);
    await writeTestImage(f, w, h, w + h);
    files.push(f);
  }
  // EXIF orientation 6 (rotate 90°): graft orients before resizing, as createImageBitmap does
  const rotated = path.join(tmp, 'rot6.jpg');
  await sharp(await sharp(files[4]!).toBuffer())
    .withMetadata({ orientation: 6 })
    .toFile(rotated);
  files.push(rotated);
  // RGBA PNG with opaque alpha: alpha is dropped before resizing
  const rgba = path.join(tmp, 'rgba.png');
  await sharp(files[1]!).ensureAlpha().png().toFile(rgba);
  files.push(rgba);
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** What a browser hands the page: RGBA at natural size, oriented. */
async function browserPixels(file: string) {
  const { data, info } = await sharp(file, { autoOrient: true }).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), width: info.width, height: info.height, bands: 4 as const };
}

test('preprocessPixels equals decodeImage for crop, stretch and pad, bilinear and bicubic, NCHW and NHWC', async () => {
  const wrong: string[] = [];
  let compared = 0;
  for (const resize of ['crop', 'stretch', 'pad'] as const) {
    for (const interpolation of ['bilinear', 'bicubic'] as const) {
      const cfg = parsePreprocessConfig({
        size: [20, 24],
        resize,
        interpolation,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
        padValue: 114,
        layout: resize === 'pad' ? 'NHWC' : 'NCHW',
      });
      for (const f of files) {
        const ref = await decodeImage(f, cfg);
        const mine = preprocessPixels(await browserPixels(f), cfg);
        compared++;
        const bad = ref.findIndex((v, i) => !Object.is(v, mine[i]));
        if (mine.length !== ref.length || bad >= 0)
          wrong.push(`${resize} ${interpolation} ${path.basename(f)}: value ${bad} is ${mine[bad]}, graft ${ref[bad]}`);
      }
    }
  }
  assert.equal(compared, 6 * files.length);
  assert.deepEqual(wrong, []);
});
