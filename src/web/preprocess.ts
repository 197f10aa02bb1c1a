/**
 * graft's preprocessing on decoded pixels, for the browser: the resize policy ('crop', 'stretch', 'pad') with the
 * libvips port of ./resample.ts, then the normalisation of data/pixels.ts. Given the same RGB(A) pixels at natural
 * size (EXIF orientation applied), the floats equal those of graft's decoder (src/data/image.ts) bit for bit.
 */
import { cropGeometry, imageSize, normalizeInto, type PreprocessConfig } from '../data/pixels.js';
import { extract, type Kernel, type Raster, resizeContain, resizeFill } from './resample.js';

/** Decoded pixels at natural size: interleaved RGBA (4 bands, e.g. canvas ImageData) or RGB (3 bands). */
export interface Pixels {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
  /** 4 (RGBA; alpha is dropped, as graft does before resizing) or 3 (RGB). Default: from the data length. */
  bands?: 3 | 4;
}

/** The RGB bytes of `px` (alpha dropped). */
export function toRgb(px: Pixels): Raster {
  const n = px.width * px.height;
  const bands = px.bands ?? (px.data.length === n * 4 ? 4 : 3);
  if (px.data.length !== n * bands)
    throw new Error(
      `graft web: got ${px.data.length} values for a ${px.width}x${px.height} image with ${bands} bands; pass RGBA (e.g. ImageData) or RGB pixels.`,
    );
  if (bands === 3) return { data: new Uint8Array(px.data.buffer, px.data.byteOffset, px.data.length), width: px.width, height: px.height, bands: 3 };
  const rgb = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    rgb[3 * i] = px.data[4 * i]!;
    rgb[3 * i + 1] = px.data[4 * i + 1]!;
    rgb[3 * i + 2] = px.data[4 * i + 2]!;
  }
  return { data: rgb, width: px.width, height: px.height, bands: 3 };
}

/** The RGB bytes at the model's size: the config's resize policy applied to `px` (graft's decodeRgb, without augmentation). */
export function geometry(px: Pixels, cfg: PreprocessConfig): Raster {
  const rgb = toRgb(px);
  const [h, w] = cfg.size;
  const kernel: Kernel = cfg.interpolation === 'bicubic' ? 'cubic' : 'linear';
  if (cfg.resize === 'crop') {
    const g = cropGeometry(cfg, rgb.width, rgb.height);
    return extract(resizeFill(rgb, g.resizeW, g.resizeH, kernel), g.left, g.top, w, h);
  }
  if (cfg.resize === 'stretch') return resizeFill(rgb, w, h, kernel);
  return resizeContain(rgb, w, h, kernel, cfg.padValue);
}

/** The model input for one image: `imageSize(cfg)` floats in the config's layout, equal to graft's `decodeImage`. */
export function preprocessPixels(px: Pixels, cfg: PreprocessConfig): Float32Array {
  return normalizeInto(geometry(px, cfg).data, cfg, new Float32Array(imageSize(cfg)));
}
