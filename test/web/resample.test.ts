/**
 * The TS port of libvips's resize (src/web/resample.ts) against sharp itself, byte for byte: random images and sizes
 * that shrink, grow, or do one on each axis, both kernels, 'fill' and 'contain', including shrinks by 2 or more
 * (box shrink first) and images of one pixel.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import { type Kernel, type Raster, resizeContain, resizeFill } from '../../src/web/resample.js';

function noise(width: number, height: number, seed: number): Raster {
  let s = seed;
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    data[i] = s >>> 23; // 0..255
  }
  return { data, width, height, bands: 3 };
}

async function viaSharp(r: Raster, w: number, h: number, fit: 'fill' | 'contain', kernel: Kernel, grey: number): Promise<Raster> {
  const { data, info } = await sharp(Buffer.from(r.data), { raw: { width: r.width, height: r.height, channels: 3 } })
    .resize(w, h, { fit, kernel, background: { r: grey, g: grey, b: grey, alpha: 1 } })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), width: info.width, height: info.height, bands: info.channels };
}

function differing(a: Raster, b: Raster): number {
  let n = 0;
  for (let i = 0; i < a.data.length; i++) if (a.data[i] !== b.data[i]) n++;
  return n;
}

test('resizeFill and resizeContain give the bytes of sharp resize for random sizes, both kernels', async () => {
  const sizes = [1, 2, 3, 5, 7, 16, 17, 31, 36, 50, 64, 100, 129, 257, 300];
  let seed = 11;
  const pick = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return sizes[seed % n]!;
  };
  const wrong: string[] = [];
  for (let c = 0; c < 120; c++) {
    const [W, H, w, h] = [pick(sizes.length), pick(sizes.length), pick(10), pick(10)];
    const img = noise(W, H, c + 1);
    for (const kernel of ['linear', 'cubic'] as const) {
      for (const fit of ['fill', 'contain'] as const) {
        const ref = await viaSharp(img, w, h, fit, kernel, 9);
        const mine = fit === 'fill' ? resizeFill(img, w, h, kernel) : resizeContain(img, w, h, kernel, 9);
        const what = `${kernel} ${fit} ${W}x${H} -> ${w}x${h}`;
        if (mine.width !== ref.width || mine.height !== ref.height) wrong.push(`${what}: size ${mine.width}x${mine.height}, sharp ${ref.width}x${ref.height}`);
        else if (differing(mine, ref)) wrong.push(`${what}: ${differing(mine, ref)} of ${ref.data.length} bytes differ`);
      }
    }
  }
  assert.deepEqual(wrong, []);
});

test('photo-sized shrinks (box shrink + reduce) and a large enlargement match sharp exactly', async () => {
  for (const [W, H, w, h] of [
    [1024, 768, 292, 219],
    [800, 600, 257, 700],
    [90, 60, 300, 200],
  ] as const) {
    const img = noise(W, H, W + H);
    for (const kernel of ['linear', 'cubic'] as const) {
      const ref = await viaSharp(img, w, h, 'fill', kernel, 0);
      assert.equal(differing(resizeFill(img, w, h, kernel), ref), 0, `${kernel} ${W}x${H} -> ${w}x${h}`);
    }
  }
});
