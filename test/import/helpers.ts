/** Shared helpers of the importer tests: tfjs models in memory, random weights, ONNX runs and comparisons. */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { UnwrappedTfjsModel } from '../../src/import/nsfwjs.js';
import type { TfjsWeightSpec } from '../../src/import/weights.js';
import type { Model } from '../../src/ir/model.js';
import { createSession, runHost } from '../../src/runtime/session.js';
import { Rng, Tensor } from '../../src/tensor.js';

tf.env().set('PROD', true); // silences the "install tfjs-node" banner; cpu backend either way
await tf.setBackend('cpu');

export { tf };

/** tfjs model artifacts as saved by a custom IOHandler. */
export interface Artifacts {
  modelTopology: unknown;
  weightSpecs: TfjsWeightSpec[];
  weightData: ArrayBuffer;
}

/** Saves a tfjs LayersModel into memory (the same JSON and bytes `model.save('file://...')` writes). */
export async function saveToMemory(model: tf.LayersModel): Promise<Artifacts> {
  let out: Artifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      const data = a.weightData as ArrayBuffer | ArrayBuffer[];
      const buf = Array.isArray(data) ? concat(data.map((d) => new Uint8Array(d))).buffer : data;
      out = { modelTopology: a.modelTopology, weightSpecs: a.weightSpecs as TfjsWeightSpec[], weightData: buf as ArrayBuffer };
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return out!;
}

/** Loads artifacts back into tfjs (so tfjs itself dequantizes whatever the manifest says). */
export function loadFromMemory(a: Artifacts): Promise<tf.LayersModel> {
  return tf.loadLayersModel(tf.io.fromMemory({ modelTopology: a.modelTopology as object, weightSpecs: a.weightSpecs, weightData: a.weightData }));
}

/** Artifacts of an unwrapped model.json (all shard groups concatenated, as tfjs does). */
export function artifactsOf(m: UnwrappedTfjsModel): Artifacts {
  const groups = m.json.weightsManifest as { paths: string[]; weights: TfjsWeightSpec[] }[];
  const bytes = concat(groups.flatMap((g) => g.paths.map((p) => m.readShard(p))));
  return { modelTopology: m.json.modelTopology, weightSpecs: groups.flatMap((g) => g.weights), weightData: bytes.buffer as ArrayBuffer };
}

/** Gives every weight random values (variances positive) so tests do not pass on zero/one initialisers. */
export function randomizeWeights(model: tf.LayersModel, seed: number): void {
  const rng = new Rng(seed);
  model.setWeights(
    model.weights.map((w) => {
      const n = w.shape.reduce((a, b) => a * (b ?? 1), 1);
      const v = new Float32Array(n);
      const positive = /variance/.test(w.name);
      for (let i = 0; i < n; i++) v[i] = positive ? 0.5 + rng.next() : (rng.next() - 0.5) * 0.8;
      return tf.tensor(v, w.shape as number[]);
    }),
  );
}

/** Uniform random data in [lo, hi). */
export function randomData(n: number, seed: number, lo = 0, hi = 1): Float32Array {
  const rng = new Rng(seed);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = lo + (hi - lo) * rng.next();
  return v;
}

/** NHWC → NCHW on the host. */
export function nhwcToNchw(x: Float32Array, [n, h, w, c]: number[]): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < n!; b++)
    for (let i = 0; i < h!; i++)
      for (let j = 0; j < w!; j++) for (let k = 0; k < c!; k++) out[((b * c! + k) * h! + i) * w! + j] = x[((b * h! + i) * w! + j) * c! + k]!;
  return out;
}

/** Runs an imported model on one input given in Keras's layout (NHWC images are transposed to NCHW). */
export async function runImported(model: Model, x: Float32Array, kerasShape: number[]): Promise<Record<string, Tensor>> {
  const s = await createSession(model);
  try {
    const input = model.graph.inputs[0]!;
    const image = kerasShape.length === 4;
    const data = image ? nhwcToNchw(x, kerasShape) : x;
    const dims = image ? [kerasShape[0]!, kerasShape[3]!, kerasShape[1]!, kerasShape[2]!] : kerasShape;
    return await runHost(s, { [input.name]: new Tensor('float32', dims, data) });
  } finally {
    await s.release();
  }
}

/** Largest absolute elementwise difference (throws on a length mismatch). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Writes artifacts as model.json + shards of at most `shardBytes` (like the tfjs converter) into `dir`. */
export function writeModelDir(a: Artifacts, dir: string, shardBytes = 4 * 1024 * 1024): string {
  fs.mkdirSync(dir, { recursive: true });
  const bytes = new Uint8Array(a.weightData);
  const n = Math.max(1, Math.ceil(bytes.length / shardBytes));
  const paths = Array.from({ length: n }, (_, i) => `group1-shard${i + 1}of${n}.bin`);
  paths.forEach((p, i) => void fs.writeFileSync(path.join(dir, p), bytes.subarray(i * shardBytes, (i + 1) * shardBytes)));
  const json = { format: 'layers-model', generatedBy: 'graft-test', modelTopology: a.modelTopology, weightsManifest: [{ paths, weights: a.weightSpecs }] };
  const file = path.join(dir, 'model.json');
  fs.writeFileSync(file, JSON.stringify(json));
  return file;
}

/** Re-encodes float32 artifacts with tfjs's affine uint8/uint16 quantization (q = round((v − min) / scale)) or float16. */
export function quantize(a: Artifacts, dtype: 'uint8' | 'uint16' | 'float16'): Artifacts {
  const src = new Float32Array(a.weightData);
  const parts: Uint8Array[] = [];
  const specs: TfjsWeightSpec[] = [];
  let at = 0;
  for (const s of a.weightSpecs) {
    const n = s.shape.reduce((x, y) => x * y, 1);
    const v = src.subarray(at, at + n);
    at += n;
    if (dtype === 'float16') {
      parts.push(new Uint8Array(new Uint16Array(Array.from(v, floatToHalf)).buffer));
      specs.push({ ...s, quantization: { dtype } });
      continue;
    }
    const levels = dtype === 'uint8' ? 255 : 65535;
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    for (const x of v) [min, max] = [Math.min(min, x), Math.max(max, x)];
    if (max === min) min -= 1e-3;
    const scale = (max - min) / levels;
    const q = dtype === 'uint8' ? new Uint8Array(n) : new Uint16Array(n);
    for (let i = 0; i < n; i++) q[i] = Math.round((v[i]! - min) / scale);
    parts.push(new Uint8Array(q.buffer));
    specs.push({ ...s, quantization: { dtype, min, scale } });
  }
  return { modelTopology: a.modelTopology, weightSpecs: specs, weightData: concat(parts).buffer as ArrayBuffer };
}

function floatToHalf(f: number): number {
  const b = new DataView(new ArrayBuffer(4));
  b.setFloat32(0, f);
  const x = b.getUint32(0);
  const sign = (x >>> 16) & 0x8000;
  const exp = ((x >>> 23) & 0xff) - 127 + 15;
  const mant = x & 0x7fffff;
  if (exp <= 0) return sign | Math.round((mant | 0x800000) / 2 ** (14 - exp)); // subnormal (rounded)
  if (exp >= 31) return sign | 0x7c00;
  return sign | ((exp << 10) + Math.round(mant / 8192)); // a carry into the exponent rounds correctly
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
