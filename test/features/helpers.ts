/** Shared fixtures of the feature tests: a tiny ResNet feature extractor and generated image files. */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { decodeBatch, decodeImage } from '../../src/data/image.js';
import { type PreprocessConfig, parsePreprocessConfig } from '../../src/data/preprocess.js';
import { cachedFeatures } from '../../src/features/cache.js';
import type { Decoder } from '../../src/features/extract.js';
import type { Model } from '../../src/ir/model.js';
import { extractSubgraph, findCut } from '../../src/ir/surgery.js';
import { resnet18 } from '../../src/nn/index.js';
import { createSession, ort } from '../../src/runtime/session.js';
import { Rng } from '../../src/tensor.js';

/** A ResNet-18 (width 8, 32×32 input) and its feature extractor cut at the pooled features. */
export function tinyModels(seed = 1): { full: Model; extractor: Model; cut: string } {
  const full = resnet18({ classes: 10, width: 8 }).build({ inputShape: ['N', 3, 32, 32], seed });
  const cut = findCut(full).value;
  return { full, extractor: extractSubgraph(full, cut), cut };
}

/** The preprocessing used by the tests (32×32 centre crop, ImageNet statistics). */
export const CFG: PreprocessConfig = parsePreprocessConfig({ size: 32, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });

/** Writes `n` distinct noisy images (JPEG and PNG, varied sizes) under `dir`; returns their paths. */
export async function makeImages(dir: string, n: number, seed = 7): Promise<string[]> {
  const rng = new Rng(seed);
  const paths: string[] = [];
  for (let i = 0; i < n; i++) {
    const w = 40 + rng.int(30);
    const h = 36 + rng.int(30);
    const raw = Buffer.alloc(w * h * 3);
    for (let j = 0; j < raw.length; j++) raw[j] = rng.int(256);
    const img = sharp(raw, { raw: { width: w, height: h, channels: 3 } });
    const file = join(dir, `img${i}.${i % 2 ? 'png' : 'jpg'}`);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, await (i % 2 ? img.png() : img.jpeg()).toBuffer());
    paths.push(file);
  }
  return paths;
}

/** The reference: decode all files, one `session.run` on the whole batch, return the output rows. */
export async function directFeatures(model: Model, files: string[], cfg = CFG): Promise<Float32Array> {
  const { data, dims } = await decodeBatch(files, cfg);
  const s = await createSession(model);
  const r = await s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', data, dims) });
  return r[s.outputNames[0]!]!.data as Float32Array;
}

/** A decoder that counts its calls. */
export function countingDecoder(): { decoder: Decoder; calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    decoder: async (path, cfg, out, offset) => {
      calls.push(path);
      await decodeImage(path, cfg, { out, offset });
    },
  };
}

/** Largest absolute difference of two equally long arrays. */
export function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/**
 * The single-process extraction a distributed one must equal byte for byte: `model`'s features of `files` through
 * the feature store in `cacheDir`, batches of 4, one thread.
 */
export function localFeatures(model: Model, files: string[], cacheDir: string): ReturnType<typeof cachedFeatures> {
  return cachedFeatures({ model, preprocess: CFG, items: files.map((p) => ({ path: p })), batchSize: 4, cacheDir, threads: 1 });
}
