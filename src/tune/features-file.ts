/**
 * Feature sets shared between the study process and its trial workers: the parent computes the frozen
 * backbone's features once and writes them here (`<name>.f32` rows, `<name>.labels` int32, `<name>.json`
 * header); every worker reads them once and trains only heads.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ArraySource } from '../step/batches.js';
import { atomicWrite } from '../util/atomic-write.js';
import { describeFsError } from '../util/fs-errors.js';

/** Header of a feature set. */
interface FeatureHeader {
  format: 1;
  n: number;
  dims: number;
  classes: number;
}

/** Writes a feature set (rows of `dims` float32 values and their labels) as `<dir>/<name>.*`, atomically. */
export function writeFeatureSet(dir: string, name: string, x: Float32Array, labels: Int32Array, dims: number, classes: number): void {
  if (x.length !== labels.length * dims)
    throw new Error(`writeFeatureSet: ${x.length} values are not ${labels.length} rows of ${dims}; this is a bug in graft tune.`);
  atomicWrite(path.join(dir, `${name}.f32`), new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
  atomicWrite(path.join(dir, `${name}.labels`), new Uint8Array(labels.buffer, labels.byteOffset, labels.byteLength));
  const header: FeatureHeader = { format: 1, n: labels.length, dims, classes };
  atomicWrite(path.join(dir, `${name}.json`), `${JSON.stringify(header)}\n`);
}

/**
 * Reads a feature set written by {@link writeFeatureSet} as a batch source of [dims] samples.
 * @throws naming the file when it is missing or its size does not match its header.
 */
export function readFeatureSet(dir: string, name: string): ArraySource {
  const file = (ext: string) => path.join(dir, `${name}.${ext}`);
  let header: FeatureHeader;
  let xb: Buffer;
  let yb: Buffer;
  try {
    header = JSON.parse(fs.readFileSync(file('json'), 'utf8')) as FeatureHeader;
    xb = fs.readFileSync(file('f32'));
    yb = fs.readFileSync(file('labels'));
  } catch (e) {
    throw new Error(`${describeFsError('read the prepared features', file('*'), e)} Restart the study (graft tune --resume) to recompute them.`);
  }
  if (xb.byteLength !== header.n * header.dims * 4 || yb.byteLength !== header.n * 4)
    throw new Error(`The prepared features ${file('f32')} do not match ${file('json')} (truncated?). Delete ${dir} and resume the study to recompute them.`);
  const x = new Float32Array(xb.buffer.slice(xb.byteOffset, xb.byteOffset + xb.byteLength));
  const y = new Int32Array(yb.buffer.slice(yb.byteOffset, yb.byteOffset + yb.byteLength));
  return new ArraySource(x, y, [header.dims], header.classes);
}
