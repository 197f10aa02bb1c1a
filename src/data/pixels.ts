/**
 * The pure pixel arithmetic of preprocessing: the 'crop' policy's geometry and the normalisation of RGB bytes
 * into floats. No Node built-ins and no packages, so the same module runs in graft (src/data/image.ts) and in a
 * web page (src/web/, the browser bundle of `graft export --web`): both sides compute the same floats.
 */

/** A validated preprocessing config with every field filled in. */
export interface PreprocessConfig {
  size: [number, number];
  channels: 1 | 3;
  resize: 'crop' | 'stretch' | 'pad';
  cropFraction: number;
  mean: number[];
  std: number[];
  layout: 'NCHW' | 'NHWC';
  channelOrder: 'RGB' | 'BGR';
  scale: number;
  interpolation: 'bilinear' | 'bicubic';
  padValue: number;
}

/** The size the image is resized to before the centre crop of the 'crop' policy (torchvision's Resize argument). */
export function cropResizeTarget(cfg: PreprocessConfig): [number, number] {
  return [Math.floor(cfg.size[0] / cfg.cropFraction + 1e-9), Math.floor(cfg.size[1] / cfg.cropFraction + 1e-9)];
}

/** Python's round(): halves go to the even neighbour (torchvision's CenterCrop uses it). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Geometry of the eval 'crop' policy for a `width × height` image: resized size, then the crop box in it. */
export function cropGeometry(cfg: PreprocessConfig, width: number, height: number): { resizeW: number; resizeH: number; left: number; top: number } {
  const [h, w] = cfg.size;
  const [th, tw] = cropResizeTarget(cfg);
  let rh: number;
  let rw: number;
  // torchvision Resize(int): the shorter side (relative to the target box) becomes the target, the other int(t * long / short).
  if (height * tw <= width * th) {
    rh = th;
    rw = Math.floor((th * width) / height);
  } else {
    rw = tw;
    rh = Math.floor((tw * height) / width);
  }
  rh = Math.max(rh, h);
  rw = Math.max(rw, w);
  return { resizeW: rw, resizeH: rh, left: roundHalfEven((rw - w) / 2), top: roundHalfEven((rh - h) / 2) };
}

/**
 * Normalises interleaved RGB pixels (0–255) into `out` at `offset` following the config: optional luma for
 * 1 channel, channel order, `/ scale`, `(v - mean) / std`, NCHW or NHWC layout. Returns `out`.
 */
export function normalizeInto(rgb: ArrayLike<number>, cfg: PreprocessConfig, out: Float32Array, offset = 0): Float32Array {
  const [h, w] = cfg.size;
  const px = h * w;
  const C = cfg.channels;
  if (rgb.length !== px * 3) throw new Error(`normalizeInto: got ${rgb.length} values, expected ${px * 3} (${w}x${h} RGB); decode with the same config.`);
  if (offset + px * C > out.length) throw new Error(`normalizeInto: output buffer of ${out.length} values is too small for offset ${offset} + ${px * C}.`);
  const a = cfg.mean.map((_, c) => 1 / (cfg.scale * cfg.std[c]!));
  const b = cfg.mean.map((m, c) => -m / cfg.std[c]!);
  const nchw = cfg.layout === 'NCHW';
  if (C === 1) {
    const a0 = a[0]!;
    const b0 = b[0]!;
    for (let i = 0; i < px; i++) {
      const g = 0.299 * rgb[3 * i]! + 0.587 * rgb[3 * i + 1]! + 0.114 * rgb[3 * i + 2]!;
      out[offset + i] = g * a0 + b0;
    }
    return out;
  }
  const src = cfg.channelOrder === 'BGR' ? [2, 1, 0] : [0, 1, 2];
  for (let c = 0; c < 3; c++) {
    const s = src[c]!;
    const ac = a[c]!;
    const bc = b[c]!;
    if (nchw) {
      const o = offset + c * px;
      for (let i = 0; i < px; i++) out[o + i] = rgb[3 * i + s]! * ac + bc;
    } else {
      for (let i = 0; i < px; i++) out[offset + 3 * i + c] = rgb[3 * i + s]! * ac + bc;
    }
  }
  return out;
}

/** Values per image for a config (channels × height × width). */
export function imageSize(cfg: PreprocessConfig): number {
  return cfg.channels * cfg.size[0] * cfg.size[1];
}

/** Batch dims for `n` images: `[n, C, H, W]` or `[n, H, W, C]`. */
export function batchDims(cfg: PreprocessConfig, n: number): number[] {
  const [h, w] = cfg.size;
  return cfg.layout === 'NCHW' ? [n, cfg.channels, h, w] : [n, h, w, cfg.channels];
}
