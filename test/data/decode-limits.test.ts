import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, test } from 'node:test';
import { constants, crc32, deflateRawSync } from 'node:zlib';
import sharp from 'sharp';
import { DecodeBudget } from '../../src/data/decode-budget.js';
import { decodeBatch, decodeImage, ImageDecodeError } from '../../src/data/image.js';
import { parsePreprocessConfig } from '../../src/data/preprocess.js';

const tmp = await mkdtemp(join(tmpdir(), 'graft-decode-limits-'));
after(() => rm(tmp, { recursive: true, force: true }));

const cfg = parsePreprocessConfig({ size: 32 });
const png = (width: number, height: number, channels: 3 | 4, r = 200) =>
  sharp({ create: { width, height, channels, background: { r, g: 100, b: 30, alpha: 0.5 } } })
    .png()
    .toBuffer();

/**
 * A valid solid-colour 8-bit RGBA PNG of any size, built in O(height) time and a few bytes per row (sharp takes
 * 12 s to encode 16000×16000): row 0 uses the Sub filter (first pixel, then zeros), every other row the Up
 * filter (all zeros); each row is deflated once after a full flush, so the compressed rows repeat verbatim.
 */
function solidPng(width: number, height: number, rgba: [number, number, number, number]): Buffer {
  const first = Buffer.alloc(1 + width * 4);
  first[0] = 1;
  first.set(rgba, 1);
  const up = Buffer.alloc(1 + width * 4);
  up[0] = 2;
  const flush = { finishFlush: constants.Z_FULL_FLUSH };
  // Adler-32 of the uncompressed stream: the first five bytes of each row, then its zeros in one step.
  let s1 = 1;
  let s2 = 0;
  const feed = (row: Buffer) => {
    for (const x of row.subarray(0, 5)) {
      s1 = (s1 + x) % 65521;
      s2 = (s2 + s1) % 65521;
    }
    s2 = (s2 + (row.length - 5) * s1) % 65521;
  };
  feed(first);
  for (let y = 1; y < height; y++) feed(up);
  const adler = Buffer.alloc(4);
  adler.writeUInt32BE(((s2 << 16) | s1) >>> 0);
  const upBlock = deflateRawSync(up, flush);
  const idat = Buffer.concat([
    Buffer.from([0x78, 0x01]),
    deflateRawSync(first, flush),
    ...Array<Buffer>(height - 1).fill(upBlock),
    deflateRawSync(Buffer.alloc(0)),
    adler,
  ]);
  const chunk = (type: string, data: Buffer) => {
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    out.write(type, 4, 'latin1');
    data.copy(out, 8);
    out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 6, 0, 0, 0], 8); // 8-bit RGBA, not interlaced
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, chunk('IHDR', ihdr), chunk('IDAT', idat), chunk('IEND', Buffer.alloc(0))]);
}

test('solidPng makes a valid PNG (sharp decodes every pixel)', async () => {
  const { data, info } = await sharp(solidPng(300, 200, [10, 20, 30, 128]), { failOn: 'error' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  assert.deepEqual([info.width, info.height, info.channels], [300, 200, 4]);
  assert.ok(
    data.every((v, i) => v === [10, 20, 30, 128][i % 4]),
    'every pixel is the colour',
  );
});

test('a 1 MB PNG of 16000×16000 RGBA pixels is refused from its header, before any decoding', async () => {
  // Without the limit this decode materialises a 768 MB raster (the alpha path keeps it at full size).
  const huge = join(tmp, 'huge.png');
  await writeFile(huge, solidPng(16000, 16000, [10, 20, 30, 128]));
  assert.ok((await stat(huge)).size < 2_000_000, 'about 1 MB on disk');
  assert.equal((await sharp(huge).metadata()).width, 16000);
  const budget = new DecodeBudget(64 << 20);
  await assert.rejects(decodeImage(huge, cfg, { budget }), (e: Error) => {
    assert.ok(e instanceof ImageDecodeError && e.file === huge);
    assert.match(e.message, /huge\.png: it is 16000×16000 pixels \(256\.0 megapixels\), over the limit of 100\.0 megapixels/);
    assert.match(e.message, /GRAFT_MAX_IMAGE_PIXELS=256000000/);
    return true;
  });
  assert.equal(budget.peak, 0, 'refused before taking any decode memory');
});

test('the pixel limit is an option; an image under it decodes', async () => {
  const big = join(tmp, 'big.png');
  await writeFile(big, await png(2000, 1000, 4));
  await assert.rejects(
    decodeImage(big, cfg, { maxPixels: 1_999_999 }),
    /big\.png: it is 2000×1000 pixels \(2\.0 megapixels\), over the limit of 2\.0 megapixels/,
  );
  const x = await decodeImage(big, cfg, { maxPixels: 2_000_000 });
  assert.equal(x.length, 3 * 32 * 32);
});

test('concurrent decodes stay within the decode budget (weighted by width × height × channels)', async () => {
  const files: string[] = [];
  for (let i = 0; i < 8; i++) {
    const f = join(tmp, `b${i}.png`);
    await writeFile(f, await png(400, 300, i % 2 ? 4 : 3, 20 * i));
    files.push(f);
  }
  const rgba = 400 * 300 * 4;
  const budget = new DecodeBudget(3 * rgba);
  const bounded = await decodeBatch(files, cfg, { concurrency: 8, budget });
  assert.ok(budget.peak <= budget.capacity, `peak ${budget.peak} over the budget ${budget.capacity}`);
  assert.ok(budget.peak >= 2 * 400 * 300 * 3, `decodes still overlap (peak ${budget.peak})`);
  assert.equal(budget.inUse, 0, 'everything given back');
  const free = await decodeBatch(files, cfg, { concurrency: 8 });
  assert.deepEqual(bounded.data, free.data, 'the budget changes timing, not pixels');
  // An image bigger than the whole budget still decodes, alone.
  const tiny = new DecodeBudget(1000);
  assert.equal((await decodeBatch(files.slice(0, 3), cfg, { concurrency: 3, budget: tiny })).failed.length, 0);
  assert.equal(tiny.peak, 1000);
});

test('DecodeBudget serves waiters in order and never holds more than its capacity', async () => {
  const b = new DecodeBudget(10);
  const order: string[] = [];
  const r1 = await b.acquire(6);
  const p2 = b.acquire(6).then((r) => {
    order.push('second');
    return r;
  });
  const p3 = b.acquire(2).then((r) => {
    order.push('third');
    return r;
  });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, [], 'the 2 waits behind the 6 even though it would fit');
  r1();
  r1(); // giving back twice is harmless
  const [r2, r3] = await Promise.all([p2, p3]);
  assert.deepEqual(order, ['second', 'third']);
  assert.equal(b.inUse, 8);
  r2();
  r3();
  assert.equal(b.inUse, 0);
  assert.equal(b.peak, 8);
});

test('concurrent corrupt files: each message is about its own file only', async () => {
  const files: string[] = [];
  for (let i = 0; i < 12; i++) {
    const jpeg = await sharp({ create: { width: 300 + i, height: 200, channels: 3, background: { r: i * 10, g: 2, b: 3 } } })
      .jpeg()
      .toBuffer();
    const p = await png(300 + i, 200, 4, i * 10);
    const kind = ['jpg', 'png', 'txt'][i % 3]!;
    const f = join(tmp, `corrupt${i}.${kind}`);
    await writeFile(f, kind === 'jpg' ? jpeg.subarray(0, jpeg.length >> 1) : kind === 'png' ? p.subarray(0, p.length >> 1) : `not an image ${i}`);
    files.push(f);
  }
  for (let round = 0; round < 3; round++) {
    const r = await decodeBatch(files, cfg, { concurrency: 12, onError: 'skip' });
    assert.equal(r.failed.length, 12);
    for (const { index, file, error } of r.failed) {
      const m = error.message;
      for (const other of files) if (other !== file) assert.ok(!m.includes(basename(other)), `${basename(file)}'s message names ${basename(other)}: ${m}`);
      assert.doesNotMatch(m, /Unknown error|vips|libpng|VipsJpeg/i, m);
      const kind = file.slice(-3);
      if (kind === 'txt') assert.match(m, /it is not an image in a format graft reads/);
      else assert.match(m, new RegExp(`the ${kind === 'jpg' ? 'JPEG' : 'PNG'} is truncated or corrupt \\(its header says ${300 + index}×200 pixels`), m);
    }
  }
});

test('a JPEG cut in half: a clear message on the path predict uses, strict or not', async () => {
  // A photo-like JPEG (noise), so the cut falls in the image data, not in the header.
  const noise = Buffer.from(Array.from({ length: 64 * 48 * 3 }, (_, i) => (i * 7919) % 251));
  const jpeg = await sharp(noise, { raw: { width: 64, height: 48, channels: 3 } })
    .jpeg({ quality: 95 })
    .toBuffer();
  const half = join(tmp, 'half.jpg');
  await writeFile(half, jpeg.subarray(0, jpeg.length >> 1));
  const want =
    /Cannot decode image .*half\.jpg: the JPEG is truncated or corrupt \(its header says 64×48 pixels, but the image data cannot be read\)\. Re-encode or remove the file/;
  await assert.rejects(decodeBatch([half], cfg, { onError: 'throw' }), want);
  const r = await decodeBatch([half], cfg, { onError: 'skip' });
  assert.match(r.failed[0]!.error.message, want);
  assert.equal(r.failed[0]!.error.reason, 'the JPEG is truncated or corrupt (its header says 64×48 pixels, but the image data cannot be read)');
});
