import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { loadFashionMnist, loadMnist, mnistDataDir, parseIdx, readIdx } from '../../src/data/idx.js';

const tmp = await mkdtemp(join(tmpdir(), 'graft-idx-'));
after(() => rm(tmp, { recursive: true, force: true }));

/** Builds a ubyte IDX buffer. */
function idx(dims: number[], data: number[]): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head[2] = 0x08;
  head[3] = dims.length;
  dims.forEach((d, i) => {
    head.writeUInt32BE(d, 4 + 4 * i);
  });
  return Buffer.concat([head, Buffer.from(data)]);
}

test('parseIdx reads plain and gzip buffers', () => {
  const b = idx([2, 3], [1, 2, 3, 4, 5, 6]);
  for (const buf of [b, gzipSync(b)]) {
    const r = parseIdx(buf, 'x.idx');
    assert.deepEqual(r.dims, [2, 3]);
    assert.deepEqual(Array.from(r.data), [1, 2, 3, 4, 5, 6]);
  }
});

test('real MNIST: shapes, label range, pixel scaling', async () => {
  const m = await loadMnist();
  assert.equal(m.train.n, 60000);
  assert.equal(m.test.n, 10000);
  assert.equal(m.train.rows, 28);
  assert.equal(m.train.cols, 28);
  assert.equal(m.train.x.length, 60000 * 784);
  assert.equal(m.test.x.length, 10000 * 784);
  const seen = new Set(m.train.y);
  assert.deepEqual([...seen].sort(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  let max = 0;
  for (let i = 0; i < 784 * 100; i++) max = Math.max(max, m.train.x[i]!);
  assert.equal(max, 1);
  assert.equal(m.train.y[0], 5); // the famous first MNIST digit
  const raw = await readIdx(join(mnistDataDir(), 'train-images-idx3-ubyte'));
  assert.deepEqual(raw.dims, [60000, 28, 28]);
});

test('truncated copy of an MNIST file gives a clear error naming the file', async () => {
  const src = join(mnistDataDir(), 't10k-labels-idx1-ubyte');
  const full = await readFile(src);
  const file = join(tmp, 't10k-labels-idx1-ubyte');
  await writeFile(file, full.subarray(0, full.length - 100));
  await assert.rejects(readIdx(file), (e: Error) => e.message.includes(file) && /truncated/.test(e.message) && /download/.test(e.message));
  // and a truncated gzip
  const gz = join(tmp, 'labels.gz');
  const z = gzipSync(full);
  await writeFile(gz, z.subarray(0, z.length / 2));
  await assert.rejects(readIdx(gz), (e: Error) => e.message.includes(gz) && /gzip/.test(e.message));
});

test('wrong magic, trailing bytes, unsupported type and missing files are reported', async () => {
  assert.throws(() => parseIdx(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0]), 'pic.png'), /pic\.png is not an IDX file.*89 50 4e 47/);
  assert.throws(() => parseIdx(Buffer.concat([idx([2], [1, 2]), Buffer.from([9])]), 'long.idx'), /long\.idx has 1 unexpected trailing/);
  const f = idx([1], [0]);
  f[2] = 0x0d;
  assert.throws(() => parseIdx(f, 'f.idx'), /float32.*unsigned-byte/);
  await assert.rejects(readIdx(join(tmp, 'nope')), /Cannot read IDX file .*nope/);
  await assert.rejects(loadMnist(tmp), /Missing .* in /);
});

test('MNIST folder with mismatched image/label counts is refused', async () => {
  const dir = await mkdtemp(join(tmp, 'mm-'));
  await writeFile(join(dir, 'train-images-idx3-ubyte'), idx([2, 1, 1], [0, 255]));
  await writeFile(join(dir, 'train-labels-idx1-ubyte.gz'), gzipSync(idx([3], [0, 1, 2])));
  await copyFile(join(mnistDataDir(), 't10k-images-idx3-ubyte'), join(dir, 't10k-images-idx3-ubyte'));
  await copyFile(join(mnistDataDir(), 't10k-labels-idx1-ubyte'), join(dir, 't10k-labels-idx1-ubyte'));
  await assert.rejects(loadMnist(dir), /holds 2 images but .* holds 3 labels/);
});

test('loadFashionMnist explains how to install when missing', async () => {
  await assert.rejects(loadFashionMnist(tmp), (e: Error) => /apt-get install dataset-fashion-mnist/.test(e.message) && e.message.includes(tmp));
});

const fashionDir = '/usr/share/datasets/fashion-mnist';
test('Fashion-MNIST from Debian package (skipped when not installed)', { skip: !existsSync(join(fashionDir, 't10k-labels-idx1-ubyte.gz')) }, async () => {
  const f = await loadFashionMnist(fashionDir);
  assert.equal(f.train.n, 60000);
  assert.equal(f.test.n, 10000);
  assert.equal(f.classes[9], 'Ankle boot');
});
