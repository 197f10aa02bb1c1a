/**
 * Image decoding and preprocessing with sharp: decode (JPEG/PNG/WebP/GIF first frame/TIFF/AVIF), apply EXIF
 * orientation, convert to RGB, resize by the config's policy (or augment), then normalise into a float32
 * batch. Decoding runs in libvips threads; {@link decodeBatch} keeps several files in flight.
 */

import { availableParallelism } from 'node:os';
import sharp, { type Metadata, type Sharp } from 'sharp';
import { Rng } from '../tensor.js';
import { type AugmentConfig, type AugmentParams, applyColorJitter, sampleAugment } from './augment.js';
import { type DecodeBudget, maxImagePixels, sharedDecodeBudget } from './decode-budget.js';
import { DecodeProblem, decodeFailure, formatName, headerFailure, ImageDecodeError } from './decode-errors.js';
import { batchDims, cropGeometry, imageSize, normalizeInto } from './pixels.js';
import type { PreprocessConfig } from './preprocess.js';

export { ImageDecodeError } from './decode-errors.js';
export { batchDims, cropGeometry, imageSize, normalizeInto, roundHalfEven } from './pixels.js';

/** Memory bounds of a decode (see src/data/decode-budget.ts). */
export interface DecodeLimits {
  /** Refuse images with more pixels than this (default: GRAFT_MAX_IMAGE_PIXELS, else 100 megapixels). */
  maxPixels?: number;
  /** Budget the decoded raster is taken from (default: the process-wide one, GRAFT_DECODE_MEMORY_MB). */
  budget?: DecodeBudget;
}

/** Options of {@link decodeImage}. */
export interface DecodeOptions extends DecodeLimits {
  /** Train-time augmentation; needs `rng`. */
  augment?: AugmentConfig;
  /** Source of the augmentation's random choices. */
  rng?: Rng;
  /** Write into this buffer (at `offset`) instead of allocating. */
  out?: Float32Array;
  /** Element offset into `out` (default 0). */
  offset?: number;
  /** Name for error messages when `input` is a Buffer. */
  name?: string;
}

/** Interleaved 8-bit RGB pixels of one image after geometry (EXIF, resize/crop/augment, flip). */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/**
 * Decodes one image to interleaved RGB at the config's size, applying orientation, the resize policy or the
 * given augmentation geometry (crop, flip). Colour jitter and normalisation are not applied here. The header
 * is read first: an image over the pixel limit is refused, and the decode waits until its raster
 * (width × height × channels bytes) fits the decode budget.
 * @throws {@link ImageDecodeError} naming the file when it is corrupt, not an image, or too large.
 */
export async function decodeRgb(
  input: string | Buffer,
  cfg: PreprocessConfig,
  aug?: { config: AugmentConfig; rng: Rng },
  name?: string,
  limits: DecodeLimits = {},
): Promise<RgbImage & { params?: AugmentParams }> {
  const file = name ?? (typeof input === 'string' ? input : '<buffer>');
  const maxPixels = Math.floor(limits.maxPixels ?? maxImagePixels());
  const [h, w] = cfg.size;
  const kernel = cfg.interpolation === 'bicubic' ? 'cubic' : 'linear';
  // The pixel limit is checked below from the header, with a message that says how to raise it (sharp's own
  // limitInputPixels would refuse in metadata() already, without the size).
  let img: Sharp;
  let meta: Metadata;
  try {
    img = sharp(input, { autoOrient: true, failOn: 'error', pages: 1, limitInputPixels: false });
    meta = await img.metadata();
  } catch (e) {
    throw new ImageDecodeError(file, headerFailure(e));
  }
  let W = meta.autoOrient?.width ?? meta.width;
  let H = meta.autoOrient?.height ?? meta.height;
  if (!W || !H) throw new ImageDecodeError(file, new DecodeProblem(`the ${formatName(meta)} header gives no width and height`));
  if (W * H > maxPixels) {
    const mp = (n: number) => `${(n / 1e6).toFixed(1)} megapixels`;
    throw new ImageDecodeError(
      file,
      new DecodeProblem(
        `it is ${W}×${H} pixels (${mp(W * H)}), over the limit of ${mp(maxPixels)} that keeps decoding memory bounded; downscale it, or raise the limit with GRAFT_MAX_IMAGE_PIXELS=${W * H}`,
      ),
    );
  }
  const release = await (limits.budget ?? sharedDecodeBudget()).acquire(W * H * (meta.channels ?? 3) * (meta.depth === 'ushort' ? 2 : 1));
  try {
    if (meta.hasAlpha) {
      // Drop alpha before resampling (like PIL's convert('RGB')); libvips would resample premultiplied 8-bit values.
      // This needs the raster at full size, which is why the budget above counts every pixel.
      const flat = await img.removeAlpha().toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
      W = flat.info.width;
      H = flat.info.height;
      img = sharp(flat.data, { raw: { width: W, height: H, channels: flat.info.channels }, limitInputPixels: false });
    } else if ((meta.orientation ?? 1) > 1) {
      // sharp applies the EXIF orientation after resizing unless an extract is queued; resampling in the stored
      // orientation and rotating afterwards shifts the result by up to a pixel. A full-frame extract makes it
      // orient first, like PIL's exif_transpose before resize (a crop or augment extract below replaces it).
      img.extract({ left: 0, top: 0, width: W, height: H });
    }
    let params: AugmentParams | undefined;
    if (aug) params = sampleAugment(aug.rng, aug.config, W, H);
    if (params?.crop) {
      img.extract(params.crop).resize(w, h, { fit: 'fill', kernel });
    } else if (cfg.resize === 'crop') {
      const g = cropGeometry(cfg, W, H);
      img.resize(g.resizeW, g.resizeH, { fit: 'fill', kernel }).extract({ left: g.left, top: g.top, width: w, height: h });
    } else if (cfg.resize === 'stretch') {
      img.resize(w, h, { fit: 'fill', kernel });
    } else {
      const v = cfg.padValue;
      img.resize(w, h, { fit: 'contain', kernel, background: { r: v, g: v, b: v, alpha: 1 } });
    }
    if (params?.flip) img.flop();
    const { data, info } = await img.removeAlpha().toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || info.width !== w || info.height !== h) {
      throw new DecodeProblem(`the decoder produced ${info.width}x${info.height}x${info.channels}, expected ${w}x${h}x3 (a bug in graft; please report it)`);
    }
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: w, height: h, params };
  } catch (e) {
    throw new ImageDecodeError(file, decodeFailure({ ...meta, width: W, height: H }, e));
  } finally {
    release();
  }
}

/**
 * Decodes and preprocesses one image into `imageSize(cfg)` float32 values.
 * @throws {@link ImageDecodeError} naming the file when it cannot be decoded.
 */
export async function decodeImage(input: string | Buffer, cfg: PreprocessConfig, opts: DecodeOptions = {}): Promise<Float32Array> {
  if (opts.augment && !opts.rng) throw new Error('decodeImage: augmentation needs a seeded rng; pass opts.rng (e.g. new Rng(seed)).');
  const aug = opts.augment ? { config: opts.augment, rng: opts.rng! } : undefined;
  const img = await decodeRgb(input, cfg, aug, opts.name, { maxPixels: opts.maxPixels, budget: opts.budget });
  const out = opts.out ?? new Float32Array(imageSize(cfg));
  if (img.params?.jitter) {
    const f = Float32Array.from(img.data);
    applyColorJitter(f, img.params.jitter);
    return normalizeInto(f, cfg, out, opts.offset ?? 0);
  }
  return normalizeInto(img.data, cfg, out, opts.offset ?? 0);
}

/** Options of {@link decodeBatch}. */
export interface BatchOptions extends DecodeLimits {
  /** Files decoded at once (default: available CPU cores, at most 16). */
  concurrency?: number;
  /** Train-time augmentation; needs `rng`. */
  augment?: AugmentConfig;
  /** Seeded generator: one sub-seed per image is drawn from it in file order, so results do not depend on timing. */
  rng?: Rng;
  /** Reuse this buffer (at least `files.length * imageSize(cfg)` values). */
  out?: Float32Array;
  /** 'throw' (default): the first undecodable file rejects the batch; 'skip': its slot is zero-filled and reported. */
  onError?: 'throw' | 'skip';
  /** Index of the first input in a longer list: an encoded image in a Buffer is named `buffer #<index>` in errors (default 0). */
  firstIndex?: number;
}

/** A decoded batch. */
export interface DecodedBatch {
  /** `files.length * imageSize(cfg)` values in the config's layout. */
  data: Float32Array;
  dims: number[];
  /** Files that failed (only with onError 'skip'); their slots are zeros. */
  failed: { index: number; file: string; error: ImageDecodeError }[];
}

/**
 * Decodes a batch of files with a concurrency limit into one float32 buffer.
 * @throws {@link ImageDecodeError} for the first bad file unless `onError: 'skip'`.
 */
export async function decodeBatch(files: readonly (string | Buffer)[], cfg: PreprocessConfig, opts: BatchOptions = {}): Promise<DecodedBatch> {
  const per = imageSize(cfg);
  const need = files.length * per;
  if (opts.out && opts.out.length < need) throw new Error(`decodeBatch: output buffer holds ${opts.out.length} values, ${files.length} images need ${need}.`);
  if (opts.augment && !opts.rng) throw new Error('decodeBatch: augmentation needs a seeded rng; pass opts.rng (e.g. new Rng(seed)).');
  const data = opts.out ? opts.out.subarray(0, need) : new Float32Array(need);
  const seeds = opts.augment ? Array.from(files, () => opts.rng!.int(0x100000000)) : [];
  const failed: DecodedBatch['failed'] = [];
  const limit = Math.max(1, Math.min(opts.concurrency ?? Math.min(16, availableParallelism()), files.length || 1));
  let next = 0;
  let stop: unknown;
  const worker = async () => {
    while (stop === undefined && next < files.length) {
      const i = next++;
      const input = files[i]!;
      const file = typeof input === 'string' ? input : `buffer #${(opts.firstIndex ?? 0) + i}`;
      try {
        await decodeImage(input, cfg, {
          name: typeof input === 'string' ? undefined : file,
          out: data,
          offset: i * per,
          augment: opts.augment,
          rng: opts.augment ? new Rng(seeds[i]!) : undefined,
          maxPixels: opts.maxPixels,
          budget: opts.budget,
        });
      } catch (e) {
        if (opts.onError === 'skip' && e instanceof ImageDecodeError) {
          data.fill(0, i * per, (i + 1) * per);
          failed.push({ index: i, file, error: e });
        } else stop ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
  if (stop !== undefined) throw stop;
  failed.sort((x, y) => x.index - y.index);
  return { data, dims: batchDims(cfg, files.length), failed };
}
