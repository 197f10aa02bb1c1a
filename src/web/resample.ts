// SPDX-License-Identifier: LGPL-2.1-or-later
// A translation of libvips (https://github.com/libvips/libvips, libvips/resample/), Copyright John Cupitt and
// the libvips contributors, under libvips's licence; see LICENSE.
/**
 * A port of libvips's resize (the 8-bit paths of vips_resize as sharp calls it) to plain array code, so a web page
 * resizes decoded pixels to exactly the bytes graft's decoder (sharp, src/data/image.ts) produces. Ported from
 * libvips 8.18 (libvips/resample/: resize.c, reduceh.cpp, reducev.cpp, shrinkh.c, shrinkv.c, affine.c,
 * interpolate.c, bicubic.cpp, templates.h; LGPL-2.1+), keeping its fixed-point arithmetic:
 *
 * - downsizing an axis: a box `shrink` by the integer part of factor / 2 (vips_resize's gap 2), then `reduce` with
 *   the kernel stretched by the residual factor, 12-bit fixed-point coefficients picked from 65 sub-pixel tables;
 * - upsizing an axis: vips_affine with the bilinear or bicubic (Catmull-Rom) interpolator, also 12-bit.
 *
 * sharp's `kernel: 'linear'` and `'cubic'` are the only kernels graft uses ('bilinear' and 'bicubic' in a
 * preprocessing config). No Node built-ins: this module runs in Node tests and in the browser bundle.
 */

/** Interleaved 8-bit pixels. */
export interface Raster {
  data: Uint8Array;
  width: number;
  height: number;
  /** Samples per pixel (3 for RGB). */
  bands: number;
}

/** The resampling kernel: sharp's 'linear' or 'cubic' (graft's 'bilinear' or 'bicubic'). */
export type Kernel = 'linear' | 'cubic';

const TRANSFORM_SCALE = 64; // VIPS_TRANSFORM_SCALE: sub-pixel positions per pixel in the coefficient tables
const SHIFT = 12; // VIPS_INTERPOLATE_SHIFT
const SCALE = 1 << SHIFT;
const HALF = SCALE >> 1;
/** vips_resize's default reducing gap: a box shrink first takes the integer part of factor / gap. */
const GAP = 2;

/** C's rint() in the default rounding mode: halves to even. */
function rint(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** C's `(int) x` for a double. */
const trunc = (x: number) => (x < 0 ? Math.ceil(x) : Math.floor(x));

const clip8 = (v: number) => Math.max(0, Math.min(255, v));

function cubicFilter(x: number, B: number, C: number): number {
  const ax = Math.abs(x);
  const ax2 = ax * ax;
  const ax3 = ax2 * ax;
  if (ax <= 1) return ((12 - 9 * B - 6 * C) * ax3 + (-18 + 12 * B + 6 * C) * ax2 + (6 - 2 * B)) / 6;
  if (ax <= 2) return ((-B - 6 * C) * ax3 + (6 * B + 30 * C) * ax2 + (-12 * B - 48 * C) * ax + (8 * B + 24 * C)) / 6;
  return 0;
}

function filter(kernel: Kernel, x: number): number {
  if (kernel === 'cubic') return cubicFilter(x, 0, 0.5);
  const a = Math.abs(x);
  return a < 1 ? 1 - a : 0;
}

/** vips_reduce_get_points: taps of the stretched kernel. */
function reducePoints(kernel: Kernel, shrink: number): number {
  return kernel === 'linear' ? 2 * rint(shrink) + 1 : 2 * rint(2 * shrink) + 1;
}

/** The 65 fixed-point masks of a reduce (calculate_coefficients, then `(short)(c * 4096)`). */
function reduceMasks(kernel: Kernel, n: number, shrink: number): Int16Array[] {
  const masks: Int16Array[] = [];
  for (let t = 0; t <= TRANSFORM_SCALE; t++) {
    const x = Math.fround(t / TRANSFORM_SCALE);
    const half = x + n / 2 - 1;
    const c = new Float64Array(n);
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const l = filter(kernel, (i - half) / shrink);
      c[i] = l;
      sum += l;
    }
    const m = new Int16Array(n);
    for (let i = 0; i < n; i++) m[i] = trunc((c[i]! / sum) * SCALE);
    masks.push(m);
  }
  return masks;
}

/** The mask index of a position (round to nearest of 64 sub-pixel steps, as libvips computes it). */
function maskIndex(pos: number): number {
  const s = trunc(pos * TRANSFORM_SCALE * 2);
  return ((s & (TRANSFORM_SCALE * 2 - 1)) + 1) >> 1;
}

/** Output length of a reduce by `factor` (VIPS_ROUND_UINT). */
const reducedSize = (n: number, factor: number) => trunc(n / factor + 0.5);

/**
 * One axis of a raster as a set of lines: `len` samples along the axis, `lines` × `bands` independent lines across
 * it. `at(line, band, i)` indexes the data; reduce and shrink are written once for both axes through this view.
 */
interface Axis {
  len: number;
  /** Element offset of sample i of a line: base(line, band) + i * step. */
  step: number;
  lines: number;
  base(line: number, band: number): number;
}

function axisOf(r: Raster, vertical: boolean): Axis {
  const { width: W, height: H, bands: b } = r;
  return vertical ? { len: H, step: W * b, lines: W, base: (x, z) => x * b + z } : { len: W, step: b, lines: H, base: (y, z) => y * W * b + z };
}

function withLength(r: Raster, vertical: boolean, len: number): Raster {
  const width = vertical ? r.width : len;
  const height = vertical ? len : r.height;
  return { data: new Uint8Array(width * height * r.bands), width, height, bands: r.bands };
}

/** vips_shrinkh / vips_shrinkv with `ceil`: box average of `s` samples, the last box padded by copying the edge. */
function shrinkAxis(r: Raster, s: number, vertical: boolean): Raster {
  const a = axisOf(r, vertical);
  const outLen = Math.ceil(a.len / s);
  const out = withLength(r, vertical, outLen);
  const o = axisOf(out, vertical);
  const amend = s >> 1;
  const multiplier = Math.floor(2 ** 32 / (256 * s));
  for (let line = 0; line < a.lines; line++) {
    for (let z = 0; z < r.bands; z++) {
      const ib = a.base(line, z);
      const ob = o.base(line, z);
      for (let k = 0; k < outLen; k++) {
        let sum = amend;
        for (let j = 0; j < s; j++) sum += r.data[ib + Math.min(k * s + j, a.len - 1) * a.step]!;
        out.data[ob + k * o.step] = Math.floor((sum * multiplier) / 2 ** 24);
      }
    }
  }
  return out;
}

/** vips_reduceh / vips_reducev with `gap` 2 (as vips_resize calls them), 8-bit fixed-point path. */
function reduceAxis(r: Raster, factor: number, kernel: Kernel, vertical: boolean): Raster {
  const len0 = vertical ? r.height : r.width;
  const outLen = reducedSize(len0, factor);
  let extra = outLen * factor - len0;
  let residual = factor;
  let src = r;
  const intShrink = Math.max(1, Math.floor(len0 / outLen / GAP));
  if (intShrink > 1) {
    src = shrinkAxis(src, intShrink, vertical);
    extra /= intShrink;
    residual /= intShrink;
  }
  if (residual === 1) return src;
  const n = reducePoints(kernel, residual);
  const offset = (1 + extra) / 2 - 1;
  const masks = reduceMasks(kernel, n, residual);
  const a = axisOf(src, vertical);
  const out = withLength(src, vertical, outLen);
  const o = axisOf(out, vertical);
  // the input is embedded with ceil(n/2) - 1 edge copies before it (and copies after it)
  const pad = Math.ceil(n / 2) - 1;
  const last = a.len - 1;
  const starts = new Int32Array(outLen);
  const tables: Int16Array[] = [];
  let P = (0 + 0.5) * residual - 0.5 - offset;
  for (let k = 0; k < outLen; k++) {
    starts[k] = trunc(P) - pad;
    tables.push(masks[maskIndex(P)]!);
    P += residual;
  }
  for (let line = 0; line < a.lines; line++) {
    for (let z = 0; z < src.bands; z++) {
      const ib = a.base(line, z);
      const ob = o.base(line, z);
      for (let k = 0; k < outLen; k++) {
        const c = tables[k]!;
        const s0 = starts[k]!;
        let sum = 0;
        for (let i = 0; i < n; i++) {
          const j = s0 + i;
          sum += c[i]! * src.data[ib + Math.max(0, Math.min(j, last)) * a.step]!;
        }
        out.data[ob + k * o.step] = clip8((sum + HALF) >> SHIFT);
      }
    }
  }
  return out;
}

/** vips_bicubic's Catmull-Rom coefficient tables, 12-bit (`(int)(c * 4096)`). */
let catmull: Int32Array[] | undefined;
function catmullTables(): Int32Array[] {
  if (catmull) return catmull;
  catmull = [];
  for (let t = 0; t <= TRANSFORM_SCALE; t++) {
    const x = Math.fround(t / TRANSFORM_SCALE);
    const cr1 = 1 - x;
    const cr2 = -0.5 * x;
    const cr3 = cr1 * cr2;
    const cone = cr1 * cr3;
    const cfou = x * cr3;
    const cr4 = cfou - cone;
    const ctwo = cr1 - cone + cr4;
    const cthr = x - cfou - cr4;
    catmull.push(Int32Array.from([cone, ctwo, cthr, cfou], (c) => trunc(c * SCALE)));
  }
  return catmull;
}

/**
 * vips_affine for a pure scale `a` × `d` with input displacement (idx, idy), extend 'copy', 8-bit bilinear or
 * bicubic interpolation: the upsizing step of vips_resize.
 */
function affineScale(r: Raster, a: number, d: number, idx: number, idy: number, kernel: Kernel): Raster {
  const { width: W, height: H, bands: b } = r;
  const tmp = 1 / (a * d);
  const ia = tmp * d;
  const id = tmp * a;
  const outW = trunc(a * W + 0.5);
  const outH = trunc(d * H + 0.5);
  const wo = kernel === 'cubic' ? 1 : 0;
  // the input is embedded with wo + 1 edge copies before it; idx/idy move by the extra pixel
  const off = wo + 1;
  const px = (x: number, y: number, z: number) => {
    const sx = Math.min(Math.max(x - off, 0), W - 1);
    const sy = Math.min(Math.max(y - off, 0), H - 1);
    return r.data[(sy * W + sx) * b + z]!;
  };
  const out: Raster = { data: new Uint8Array(outW * outH * b), width: outW, height: outH, bands: b };
  const tables = kernel === 'cubic' ? catmullTables() : undefined;
  for (let y = 0; y < outH; y++) {
    let ix = ia * 0 - (idx - 1) + wo;
    const iy = id * y - (idy - 1) + wo;
    for (let x = 0; x < outW; x++) {
      const fx = Math.floor(ix);
      const fy = Math.floor(iy);
      const q = (y * outW + x) * b;
      if (fx >= wo && fx <= wo + W && fy >= wo && fy <= wo + H) {
        const jx = trunc(ix);
        const jy = trunc(iy);
        if (tables) {
          const cx = tables[maskIndex(ix)]!;
          const cy = tables[maskIndex(iy)]!;
          for (let z = 0; z < b; z++) {
            let sum = 0;
            for (let j = 0; j < 4; j++) {
              const row =
                cx[0]! * px(jx - 1, jy - 1 + j, z) + cx[1]! * px(jx, jy - 1 + j, z) + cx[2]! * px(jx + 1, jy - 1 + j, z) + cx[3]! * px(jx + 2, jy - 1 + j, z);
              sum += cy[j]! * ((row + HALF) >> SHIFT);
            }
            out.data[q + z] = clip8((sum + HALF) >> SHIFT);
          }
        } else {
          const X = trunc((ix - jx) * SCALE);
          const Y = trunc((iy - jy) * SCALE);
          const Yd = SCALE - Y;
          const c4 = (Y * X) >> SHIFT;
          const c2 = (Yd * X) >> SHIFT;
          const c3 = Y - c4;
          const c1 = Yd - c2;
          for (let z = 0; z < b; z++) {
            const v = c1 * px(jx, jy, z) + c2 * px(jx + 1, jy, z) + c3 * px(jx, jy + 1, z) + c4 * px(jx + 1, jy + 1, z);
            out.data[q + z] = ((v + HALF) >> SHIFT) & 255;
          }
        }
      }
      // else: libvips paints the background (0); the bounds above keep every output pixel inside
      ix += ia;
    }
  }
  return out;
}

/** vips_resize(in, hscale, vscale: vscale, kernel): reduce each axis that shrinks, then one affine for those that grow. */
export function vipsResize(r: Raster, hscale0: number, vscale0: number, kernel: Kernel): Raster {
  let img = r;
  const hscale = Math.max(hscale0, 1 / img.width);
  const vscale = Math.max(vscale0, 1 / img.height);
  if (vscale < 1) img = reduceAxis(img, 1 / vscale, kernel, true);
  if (hscale < 1) img = reduceAxis(img, 1 / hscale, kernel, false);
  if (hscale > 1 || vscale > 1) {
    // libvips 8.18 displaces both axes by half a pixel, also one that was reduced above or keeps its size
    const idx = 0.5;
    const idy = 0.5;
    if (hscale > 1 && vscale > 1) img = affineScale(img, hscale, vscale, idx, idy, kernel);
    else if (hscale > 1) img = affineScale(img, hscale, 1, idx, idy, kernel);
    else img = affineScale(img, 1, vscale, idx, idy, kernel);
  }
  return img;
}

/** sharp's `resize(width, height, { fit: 'fill', kernel })`. */
export function resizeFill(r: Raster, width: number, height: number, kernel: Kernel): Raster {
  const hshrink = Math.min(r.width / width, r.width);
  const vshrink = Math.min(r.height / height, r.height);
  if (hshrink === 1 && vshrink === 1) return r;
  return vipsResize(r, 1 / hshrink, 1 / vshrink, kernel);
}

/** sharp's `resize(width, height, { fit: 'contain', kernel, background: grey })`: fit inside, centre, pad with `grey`. */
export function resizeContain(r: Raster, width: number, height: number, kernel: Kernel, grey: number): Raster {
  const shrink = Math.max(r.width / width, r.height / height);
  const hshrink = Math.min(shrink, r.width);
  const vshrink = Math.min(shrink, r.height);
  const img = hshrink !== 1 || vshrink !== 1 ? vipsResize(r, 1 / hshrink, 1 / vshrink, kernel) : r;
  if (img.width === width && img.height === height) return img;
  const W = Math.max(img.width, width);
  const H = Math.max(img.height, height);
  const left = trunc((width - img.width) / 2);
  const top = trunc((height - img.height) / 2);
  const out: Raster = { data: new Uint8Array(W * H * img.bands).fill(grey), width: W, height: H, bands: img.bands };
  for (let y = 0; y < img.height; y++) {
    out.data.set(img.data.subarray(y * img.width * img.bands, (y + 1) * img.width * img.bands), ((y + top) * W + left) * img.bands);
  }
  return out;
}

/** A `width × height` window of a raster at (left, top) (sharp's extract). */
export function extract(r: Raster, left: number, top: number, width: number, height: number): Raster {
  if (left === 0 && top === 0 && width === r.width && height === r.height) return r;
  const b = r.bands;
  const out: Raster = { data: new Uint8Array(width * height * b), width, height, bands: b };
  for (let y = 0; y < height; y++) {
    const s = ((y + top) * r.width + left) * b;
    out.data.set(r.data.subarray(s, s + width * b), y * width * b);
  }
  return out;
}
