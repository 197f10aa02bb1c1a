/**
 * The deterministic "style shift" target domain of graft's domain-adaptation demo: every image x
 * (values in [0, 1]) becomes |x − tex|, where tex is a coarse uniform-noise field upsampled bilinearly
 * to the image size. Same seed ⇒ same target domain, bit for bit.
 */

import type { Rng } from '../tensor.js';
import { TorchRand } from './torch-rand.js';

/**
 * Bilinear resize of one single-channel image with PyTorch's
 * `F.interpolate(mode='bilinear', align_corners=False)` semantics (no antialiasing):
 * source coordinate = (dst + 0.5) · in/out − 0.5, negative coordinates clamped to 0, the right/bottom
 * neighbour clamped to the last row/column.
 * @param src `sh * sw` values, row-major.
 * @param out optional output buffer of `dh * dw` values to reuse.
 */
export function bilinearResize(src: ArrayLike<number>, sh: number, sw: number, dh: number, dw: number, out?: Float32Array): Float32Array {
  if (src.length !== sh * sw) {
    throw new Error(`bilinearResize: source has ${src.length} values but ${sh}x${sw} needs ${sh * sw}; pass the right height and width.`);
  }
  if (!(sh > 0 && sw > 0 && dh > 0 && dw > 0)) throw new Error(`bilinearResize: sizes must be positive, got ${sh}x${sw} -> ${dh}x${dw}.`);
  const dst = out ?? new Float32Array(dh * dw);
  if (dst.length !== dh * dw) throw new Error(`bilinearResize: output buffer has ${dst.length} values but ${dh}x${dw} needs ${dh * dw}.`);
  const ys = axisWeights(sh, dh);
  const xs = axisWeights(sw, dw);
  for (let y = 0; y < dh; y++) {
    const y0 = ys.i0[y]!;
    const y1 = ys.i1[y]!;
    const ly = ys.l[y]!;
    for (let x = 0; x < dw; x++) {
      const x0 = xs.i0[x]!;
      const x1 = xs.i1[x]!;
      const lx = xs.l[x]!;
      const top = (1 - lx) * src[y0 * sw + x0]! + lx * src[y0 * sw + x1]!;
      const bottom = (1 - lx) * src[y1 * sw + x0]! + lx * src[y1 * sw + x1]!;
      dst[y * dw + x] = (1 - ly) * top + ly * bottom;
    }
  }
  return dst;
}

/** Per output index: lower/upper source index and the weight of the upper one (PyTorch's formula). */
function axisWeights(inSize: number, outSize: number): { i0: Int32Array; i1: Int32Array; l: Float64Array } {
  const scale = inSize / outSize;
  const i0 = new Int32Array(outSize);
  const i1 = new Int32Array(outSize);
  const l = new Float64Array(outSize);
  for (let d = 0; d < outSize; d++) {
    const s = Math.max(0, (d + 0.5) * scale - 0.5);
    const f = Math.min(Math.floor(s), inSize - 1);
    i0[d] = f;
    i1[d] = Math.min(f + 1, inSize - 1);
    l[d] = s - f;
  }
  return { i0, i1, l };
}

/** Options of {@link styleShift}. */
export interface StyleShiftOptions {
  /** Seed of the noise fields. */
  seed: number;
  /** Image height (default 28). */
  height?: number;
  /** Image width (default = height). */
  width?: number;
  /** Side of the coarse noise grid (default 7). */
  noise?: number;
}

/** A source of uniform draws in [0, 1): graft's {@link Rng} or {@link TorchRand}. */
export interface UniformSource {
  next(): number;
}

/**
 * Draws one texture field: `noise × noise` uniform values in [0, 1) upsampled bilinearly to `height × width`.
 * Consumes exactly `noise²` draws from `rng`.
 */
export function textureField(rng: UniformSource, height = 28, width = height, noise = 7, out?: Float32Array): Float32Array {
  const grid = new Float32Array(noise * noise);
  for (let i = 0; i < grid.length; i++) grid[i] = rng.next();
  return bilinearResize(grid, noise, noise, height, width, out);
}

/**
 * Applies the style shift to a batch of images: image i becomes |x_i − tex_i|, with one texture field per
 * image drawn in order from `torch.rand` of a generator seeded with `seed` ({@link TorchRand}), so the fields are
 * exactly those of the PyTorch reference (shared/ref/exp_d_shift.py: `torch.rand(n, 1, 7, 7, generator=g)`
 * then bilinear upsampling). Values stay in [0, 1] when the input is in [0, 1].
 * @param images `n * height * width` values (e.g. MNIST's `x`); not modified.
 * @returns a new array of the same length.
 */
export function styleShift(images: Float32Array, opts: StyleShiftOptions): Float32Array {
  const h = opts.height ?? 28;
  const w = opts.width ?? h;
  const noise = opts.noise ?? 7;
  const px = h * w;
  if (images.length % px !== 0) {
    throw new Error(`styleShift: ${images.length} values is not a whole number of ${h}x${w} images; pass height/width matching the data.`);
  }
  const n = images.length / px;
  const rng = new TorchRand(opts.seed);
  const out = new Float32Array(images.length);
  const tex = new Float32Array(px);
  for (let i = 0; i < n; i++) {
    textureField(rng, h, w, noise, tex);
    const o = i * px;
    for (let j = 0; j < px; j++) out[o + j] = Math.abs(images[o + j]! - tex[j]!);
  }
  return out;
}
