/**
 * Host-side weak and strong augmentation for FixMatch's two target views.
 * Images [C, H, W] — weak: a random translation by up to 1/8 of the side (background fill); strong: a larger
 * translation, a random contrast/brightness change, additive Gaussian noise and a cutout square (half the side).
 * Feature vectors (any other sample shape) — Gaussian jitter scaled by each feature's batch standard deviation
 * (weak 0.05, strong 0.3). Randomness is a pure function of the Rng passed in.
 */
import type { Rng } from '../tensor.js';

/** Translates each [C, H, W] sample of `x` (n samples) in place by a random offset in [−max, max]². */
function translate(x: Float32Array, n: number, shape: readonly number[], max: number, rng: Rng, fill: number): void {
  const [c, h, w] = shape as [number, number, number];
  const tmp = new Float32Array(h * w);
  for (let s = 0; s < n; s++) {
    const dy = rng.int(2 * max + 1) - max;
    const dx = rng.int(2 * max + 1) - max;
    if (!dx && !dy) continue;
    for (let ch = 0; ch < c; ch++) {
      const off = (s * c + ch) * h * w;
      tmp.set(x.subarray(off, off + h * w));
      for (let i = 0; i < h; i++)
        for (let j = 0; j < w; j++) {
          const si = i - dy;
          const sj = j - dx;
          x[off + i * w + j] = si >= 0 && si < h && sj >= 0 && sj < w ? tmp[si * w + sj]! : fill;
        }
    }
  }
}

/** Fill value of the background: the per-sample minimum of the first sample (0 for [0, 1] images). */
function background(x: Float32Array, per: number): number {
  let m = Infinity;
  for (let i = 0; i < per; i++) if (x[i]! < m) m = x[i]!;
  return Number.isFinite(m) ? m : 0;
}

/** Adds Gaussian noise of `scale` × each feature's standard deviation over the `n` samples, in place. */
function jitter(x: Float32Array, n: number, per: number, scale: number, rng: Rng): void {
  for (let k = 0; k < per; k++) {
    let m = 0;
    let q = 0;
    for (let s = 0; s < n; s++) m += x[s * per + k]!;
    m /= n;
    for (let s = 0; s < n; s++) q += (x[s * per + k]! - m) ** 2;
    const sd = Math.sqrt(q / Math.max(1, n - 1)) || 1;
    for (let s = 0; s < n; s++) x[s * per + k]! += scale * sd * rng.normal();
  }
}

/** Weak augmentation of `n` samples in place (images [C, H, W] are translated, other samples jittered). */
export function weakAugment(x: Float32Array, n: number, shape: readonly number[], rng: Rng): void {
  const per = shape.reduce((a, b) => a * b, 1);
  if (shape.length !== 3) {
    jitter(x, n, per, 0.05, rng);
    return;
  }
  translate(x, n, shape, Math.max(1, Math.round(shape[1]! / 8)), rng, background(x, per));
}

/** Strong augmentation of `n` samples in place (images: translation, contrast, noise, cutout; other samples: jitter). */
export function strongAugment(x: Float32Array, n: number, shape: readonly number[], rng: Rng): void {
  if (shape.length !== 3) {
    jitter(
      x,
      n,
      shape.reduce((a, b) => a * b, 1),
      0.3,
      rng,
    );
    return;
  }
  const [c, h, w] = shape as [number, number, number];
  const per = c * h * w;
  const bg = background(x, per);
  translate(x, n, shape, Math.max(1, Math.round(h / 6)), rng, bg);
  const cut = Math.max(1, Math.round(h / 2));
  for (let s = 0; s < n; s++) {
    const row = x.subarray(s * per, (s + 1) * per);
    let mean = 0;
    for (let i = 0; i < per; i++) mean += row[i]!;
    mean /= per;
    const contrast = 0.5 + rng.next();
    const bright = (rng.next() - 0.5) * 0.4;
    const sigma = 0.1 * rng.next();
    for (let i = 0; i < per; i++) row[i] = (row[i]! - mean) * contrast + mean + bright + sigma * rng.normal();
    const y0 = rng.int(h - cut + 1);
    const x0 = rng.int(w - cut + 1);
    for (let ch = 0; ch < c; ch++) for (let i = y0; i < y0 + cut; i++) row.fill(mean, ch * h * w + i * w + x0, ch * h * w + i * w + x0 + cut);
  }
}
