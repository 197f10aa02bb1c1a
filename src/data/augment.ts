/**
 * Train-time augmentation, reproducible from a seeded {@link Rng}: torchvision-style random resized crop,
 * horizontal flip and colour jitter (brightness, contrast, saturation). The random parameters are drawn
 * here; image.ts applies them while decoding.
 */

import { z } from 'zod';
import type { Rng } from '../tensor.js';

const range = z.tuple([z.number().positive(), z.number().positive()]).refine((r) => r[0] <= r[1], 'range must be [low, high] with low <= high');

/** Zod schema of {@link AugmentConfig}. */
export const augmentSchema = z.strictObject({
  /** Random resized crop (replaces the eval resize policy), or false to keep the eval geometry. */
  randomResizedCrop: z
    .union([
      z.literal(false),
      z.strictObject({
        /** Range of the crop area as a fraction of the image area. */
        scale: range.refine((r) => r[1] <= 1, 'scale must lie in (0, 1]').default([0.08, 1]),
        /** Range of the crop aspect ratio (width / height), sampled log-uniformly. */
        ratio: range.default([3 / 4, 4 / 3]),
      }),
    ])
    .default({ scale: [0.08, 1], ratio: [3 / 4, 4 / 3] }),
  /** Probability of a horizontal flip. */
  hflip: z.number().min(0).max(1).default(0.5),
  /** Colour jitter strengths: each factor is drawn uniformly from [max(0, 1 - s), 1 + s]; 0 disables. */
  colorJitter: z
    .strictObject({
      brightness: z.number().min(0).default(0),
      contrast: z.number().min(0).default(0),
      saturation: z.number().min(0).default(0),
    })
    .default({ brightness: 0, contrast: 0, saturation: 0 }),
});

/** A validated augmentation config. */
export type AugmentConfig = z.output<typeof augmentSchema>;

/**
 * Validates an augmentation config and fills in defaults (`{}` gives torchvision's standard
 * RandomResizedCrop + RandomHorizontalFlip).
 * @throws listing the invalid fields.
 */
export function parseAugmentConfig(json: unknown, source = 'augmentation config'): AugmentConfig {
  const r = augmentSchema.safeParse(json);
  if (!r.success) {
    const lines = r.error.issues.map((i) => `  - ${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`);
    throw new Error(`Invalid ${source}:\n${lines.join('\n')}\nFix these fields, e.g. {"hflip": 0.5, "colorJitter": {"brightness": 0.4}}.`);
  }
  return r.data;
}

/** A crop rectangle in pixels of the (oriented) source image. */
export interface CropBox {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** Colour-jitter factors and the order they are applied in (0 brightness, 1 contrast, 2 saturation). */
export interface JitterParams {
  order: number[];
  brightness: number;
  contrast: number;
  saturation: number;
}

/** The random choices for one image. */
export interface AugmentParams {
  /** Crop of the source image, when random resized crop is on. */
  crop?: CropBox;
  flip: boolean;
  /** Present when any jitter strength is > 0. */
  jitter?: JitterParams;
}

/**
 * torchvision's `RandomResizedCrop.get_params`: up to 10 tries of a random area fraction in `scale` and a
 * log-uniform aspect ratio in `ratio`, falling back to a centre crop with the aspect ratio clamped to `ratio`.
 */
export function sampleResizedCrop(rng: Rng, width: number, height: number, scale: readonly [number, number], ratio: readonly [number, number]): CropBox {
  const area = width * height;
  const logLo = Math.log(ratio[0]);
  const logHi = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * (scale[0] + rng.next() * (scale[1] - scale[0]));
    const aspect = Math.exp(logLo + rng.next() * (logHi - logLo));
    const w = Math.round(Math.sqrt(target * aspect));
    const h = Math.round(Math.sqrt(target / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      return { top: rng.int(height - h + 1), left: rng.int(width - w + 1), width: w, height: h };
    }
  }
  const inRatio = width / height;
  let w: number;
  let h: number;
  if (inRatio < Math.min(...ratio)) {
    w = width;
    h = Math.round(w / Math.min(...ratio));
  } else if (inRatio > Math.max(...ratio)) {
    h = height;
    w = Math.round(h * Math.max(...ratio));
  } else {
    w = width;
    h = height;
  }
  return { top: Math.floor((height - h) / 2), left: Math.floor((width - w) / 2), width: w, height: h };
}

/** Draws every random choice for one image of `width × height` (after EXIF orientation). */
export function sampleAugment(rng: Rng, cfg: AugmentConfig, width: number, height: number): AugmentParams {
  const p: AugmentParams = { flip: false };
  if (cfg.randomResizedCrop) p.crop = sampleResizedCrop(rng, width, height, cfg.randomResizedCrop.scale, cfg.randomResizedCrop.ratio);
  p.flip = rng.next() < cfg.hflip;
  const j = cfg.colorJitter;
  if (j.brightness > 0 || j.contrast > 0 || j.saturation > 0) {
    const order = Array.from(rng.permutation(3));
    const f = (s: number) => (s > 0 ? Math.max(0, 1 - s) + rng.next() * (1 + s - Math.max(0, 1 - s)) : 1);
    p.jitter = { order, brightness: f(j.brightness), contrast: f(j.contrast), saturation: f(j.saturation) };
  }
  return p;
}

const clamp255 = (v: number) => Math.max(0, Math.min(v, 255));

/**
 * Applies colour jitter in place to interleaved RGB pixels in 0–255 (torchvision's tensor formulas:
 * brightness scales, contrast blends with the mean luma, saturation blends with each pixel's luma;
 * clamped to [0, 255] after each step, without rounding).
 */
export function applyColorJitter(rgb: Float32Array, p: JitterParams): void {
  const n = rgb.length / 3;
  for (const op of p.order) {
    if (op === 0 && p.brightness !== 1) {
      for (let i = 0; i < rgb.length; i++) rgb[i] = clamp255(rgb[i]! * p.brightness);
    } else if (op === 1 && p.contrast !== 1) {
      let sum = 0;
      for (let i = 0; i < n; i++) sum += 0.2989 * rgb[3 * i]! + 0.587 * rgb[3 * i + 1]! + 0.114 * rgb[3 * i + 2]!;
      const mean = (1 - p.contrast) * (sum / n);
      for (let i = 0; i < rgb.length; i++) rgb[i] = clamp255(p.contrast * rgb[i]! + mean);
    } else if (op === 2 && p.saturation !== 1) {
      const f = p.saturation;
      for (let i = 0; i < n; i++) {
        const g = (1 - f) * (0.2989 * rgb[3 * i]! + 0.587 * rgb[3 * i + 1]! + 0.114 * rgb[3 * i + 2]!);
        rgb[3 * i] = clamp255(f * rgb[3 * i]! + g);
        rgb[3 * i + 1] = clamp255(f * rgb[3 * i + 1]! + g);
        rgb[3 * i + 2] = clamp255(f * rgb[3 * i + 2]! + g);
      }
    }
  }
}
