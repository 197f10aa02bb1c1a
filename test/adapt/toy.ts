/** The synthetic shift of the adaptation tests: two Gaussian blobs per class in 2-D; the target is rotated. */

import type { Model } from '../../src/ir/model.js';
import { extractSubgraph, findCut } from '../../src/ir/surgery.js';
import { createSession, ort } from '../../src/runtime/session.js';
import { ArraySource } from '../../src/step/batches.js';
import { Rng } from '../../src/tensor.js';

/** Blob centres: (angle°, radius, class). Asymmetric, so no rotation maps the source onto itself. */
const CENTERS: [number, number, number][] = [
  [0, 3, 0],
  [180, 3, 0],
  [70, 3, 1],
  [250, 3, 1],
];

/** n samples (σ = 0.5 around each centre, classes balanced), rotated by `degrees`. */
export function blobs(n: number, seed: number, degrees: number): ArraySource {
  const rng = new Rng(seed);
  const x = new Float32Array(n * 2);
  const y = new Int32Array(n);
  const r = (degrees * Math.PI) / 180;
  for (let i = 0; i < n; i++) {
    const [ang, rad, cls] = CENTERS[i % CENTERS.length]!;
    const a = (ang * Math.PI) / 180;
    const px = rad * Math.cos(a) + 0.5 * rng.normal();
    const py = rad * Math.sin(a) + 0.5 * rng.normal();
    x[2 * i] = px * Math.cos(r) - py * Math.sin(r);
    x[2 * i + 1] = px * Math.sin(r) + py * Math.cos(r);
    y[i] = cls;
  }
  return new ArraySource(x, y, [2], 2);
}

/** Deep CORAL distance (mean squared covariance difference) between the model's features on two sources (inference mode). */
export async function featureCovGap(model: Model, a: ArraySource, b: ArraySource): Promise<number> {
  const { toInferenceModel } = await import('../../src/step/export.js');
  const feat = extractSubgraph(toInferenceModel(model, { probabilities: false }), findCut(model).value);
  const s = await createSession(feat, { threads: 1 });
  const cov = async (src: ArraySource) => {
    const out = await s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', src.x, [src.length, 2]) });
    const f = out[s.outputNames[0]!]!;
    const [n, d] = f.dims as [number, number];
    const v = f.data as Float32Array;
    const mu = new Float64Array(d);
    for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) mu[k]! += v[i * d + k]! / n;
    const c = new Float64Array(d * d);
    for (let i = 0; i < n; i++)
      for (let p = 0; p < d; p++) for (let q = 0; q < d; q++) c[p * d + q]! += ((v[i * d + p]! - mu[p]!) * (v[i * d + q]! - mu[q]!)) / (n - 1);
    return c;
  };
  const ca = await cov(a);
  const cb = await cov(b);
  await s.release();
  let gap = 0;
  for (let i = 0; i < ca.length; i++) gap += (ca[i]! - cb[i]!) ** 2;
  return gap / ca.length;
}
