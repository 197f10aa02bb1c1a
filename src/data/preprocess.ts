/**
 * The preprocessing config: how raw image files become the float tensor a model expects. It is a plain JSON
 * object (stored with exported models), validated with zod.
 */

import { z } from 'zod';
import { cropResizeTarget, type PreprocessConfig as PixelsPreprocessConfig } from './pixels.js';

export { cropResizeTarget } from './pixels.js';

/** ImageNet channel means (RGB), for torchvision/timm models. */
export const IMAGENET_MEAN: readonly number[] = [0.485, 0.456, 0.406];
/** ImageNet channel standard deviations (RGB). */
export const IMAGENET_STD: readonly number[] = [0.229, 0.224, 0.225];

const posInt = z.number().int().positive();

/** The zod schema of {@link PreprocessConfig} (input side: most fields have defaults). */
export const preprocessSchema = z
  .strictObject({
    /** Output size [height, width] (a single number means square). */
    size: z.union([posInt, z.tuple([posInt, posInt])]),
    /** 1 (grayscale, ITU-R 601 luma) or 3 (colour). */
    channels: z.union([z.literal(1), z.literal(3)], { error: 'channels must be 1 or 3' }).default(3),
    /** 'crop': resize the shorter side to size/cropFraction then centre-crop; 'stretch': resize to size ignoring aspect; 'pad': fit inside and pad. */
    resize: z.enum(['crop', 'stretch', 'pad']).default('crop'),
    /** For 'crop': fraction of the resized image kept by the centre crop (torchvision: 224/256 = 0.875). */
    cropFraction: z.number().gt(0).lte(1).default(0.875),
    /** Per-channel mean subtracted after scaling (length = channels, or 1 to broadcast). Default 0. */
    mean: z.array(z.number()).min(1).optional(),
    /** Per-channel standard deviation divided by (length = channels, or 1). Default 1. */
    std: z.array(z.number().positive()).min(1).optional(),
    /** Memory layout of the batch. */
    layout: z.enum(['NCHW', 'NHWC']).default('NCHW'),
    /** Channel order of the output (BGR for Caffe-style models). */
    channelOrder: z.enum(['RGB', 'BGR']).default('RGB'),
    /** Raw pixel values (0–255) are divided by this first (1 keeps 0–255). */
    scale: z.number().positive().default(255),
    /** Resampling filter. */
    interpolation: z.enum(['bilinear', 'bicubic']).default('bilinear'),
    /** Grey level (0–255) of the padding for 'pad'. */
    padValue: z.number().int().min(0).max(255).default(0),
  })
  .superRefine((c, ctx) => {
    for (const k of ['mean', 'std'] as const) {
      const v = c[k];
      if (v && v.length !== 1 && v.length !== c.channels) {
        ctx.addIssue({ code: 'custom', path: [k], message: `${k} has ${v.length} values but channels is ${c.channels}; give ${c.channels} values (or 1)` });
      }
    }
  });

/** A validated preprocessing config with every field filled in (declared in data/pixels.ts, which the browser code imports). */
export type PreprocessConfig = PixelsPreprocessConfig;

/** The JSON a user writes (defaults omitted). */
export type PreprocessConfigInput = z.input<typeof preprocessSchema>;

/**
 * Validates a preprocessing config and fills in defaults.
 * @param source where the config came from (file name, model metadata), used in the error message.
 * @throws listing every invalid field with its path, and how to fix it.
 */
export function parsePreprocessConfig(json: unknown, source = 'preprocessing config'): PreprocessConfig {
  const r = preprocessSchema.safeParse(json);
  if (!r.success) {
    const lines = r.error.issues.map((i) => `  - ${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`);
    throw new Error(
      `Invalid ${source}:\n${lines.join('\n')}\nFix these fields; a minimal config is {"size": [224, 224], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}.`,
    );
  }
  const c = r.data;
  const fill = (v: number[] | undefined, d: number) =>
    v ? (v.length === 1 ? new Array<number>(c.channels).fill(v[0]!) : [...v]) : new Array<number>(c.channels).fill(d);
  return {
    size: typeof c.size === 'number' ? [c.size, c.size] : [c.size[0], c.size[1]],
    channels: c.channels,
    resize: c.resize,
    cropFraction: c.cropFraction,
    mean: fill(c.mean, 0),
    std: fill(c.std, 1),
    layout: c.layout,
    channelOrder: c.channelOrder,
    scale: c.scale,
    interpolation: c.interpolation,
    padValue: c.padValue,
  };
}

/** A human-readable, multi-line description of a config (used by `graft inspect`). */
export function describePreprocess(cfg: PreprocessConfig): string {
  const [h, w] = cfg.size;
  const [rh, rw] = cropResizeTarget(cfg);
  const geom =
    cfg.resize === 'crop'
      ? `resize shorter side to ${rh === rw ? rh : `${rh}x${rw}`}, centre-crop ${h}x${w} (crop fraction ${cfg.cropFraction})`
      : cfg.resize === 'stretch'
        ? `stretch to ${h}x${w} (aspect ratio not kept)`
        : `fit inside ${h}x${w}, pad with grey ${cfg.padValue}`;
  const fmt = (v: number[]) => `[${v.map((x) => +x.toFixed(4)).join(', ')}]`;
  const chans = cfg.channels === 1 ? 'grayscale (1 channel)' : `colour, ${cfg.channelOrder}`;
  return [
    `input: ${cfg.layout} float32, ${cfg.channels}x${h}x${w}, ${chans}`,
    `geometry: EXIF-orient, ${geom}, ${cfg.interpolation}`,
    `values: pixel / ${cfg.scale}, then (v - mean) / std with mean ${fmt(cfg.mean)} std ${fmt(cfg.std)}`,
  ].join('\n');
}

/** The config as a compact JSON object (for storing with an exported model). */
export function preprocessToJson(cfg: PreprocessConfig): PreprocessConfigInput {
  return { ...cfg, size: [...cfg.size], mean: [...cfg.mean], std: [...cfg.std] };
}

/** Namespace-style access: `PreprocessConfig.parse(json)`, `PreprocessConfig.describe(cfg)`. */
export const PreprocessConfig = {
  schema: preprocessSchema,
  parse: parsePreprocessConfig,
  describe: describePreprocess,
  toJson: preprocessToJson,
} as const;
