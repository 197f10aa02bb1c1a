/**
 * graft in the browser: classify images (and texts: ./text.ts) with a model exported by `graft export --web`, on
 * onnxruntime-web's wasm backend, with graft's own preprocessing (./preprocess.ts) and probabilities (softmax of logits / temperature), so a
 * page gets the numbers `graft predict` prints. Browser-only code: no Node built-ins; onnxruntime-web is loaded
 * from the bundle's `ort/` folder (no CDN, works offline from any static server).
 *
 * A page imports `WebClassifier` from the bundle's `graft/web/index.js` (this module), then:
 *
 * ```js
 * const clf = await WebClassifier.load();            // the bundle this module sits in
 * const { top } = await clf.classifyBlob(file, 3);   // a File/Blob from <input type="file"> or a drop
 * ```
 */
import type { PreprocessConfig } from '../data/pixels.js';
import { topKRow } from '../report/metrics.js';
import { softmaxRows } from '../util/softmax.js';
import { type BundleMetaBase, type LoadOptions, openBundle, type WebOrt, type WebSession } from './bundle.js';
import { type Pixels, preprocessPixels } from './preprocess.js';

export type { BundleMetaBase, LoadOptions } from './bundle.js';

export { geometry, type Pixels, preprocessPixels, toRgb } from './preprocess.js';
export { type Kernel, type Raster, resizeContain, resizeFill } from './resample.js';
export { type WebTextBundleMeta, type WebTextClassification, WebTextClassifier } from './text.js';

/** The bundle's model.json (see docs/formats.md, "Web bundle"). */
export interface WebBundleMeta extends BundleMetaBase {
  /** Graph input fed with the preprocessed image. */
  input: string;
  /** Graph output read: "logits" (softmax applied here), else probabilities. */
  output: string;
  softmax: boolean;
  labels: string[];
  preprocess: PreprocessConfig;
  /** Calibration temperature: probabilities are softmax(logits / temperature). */
  temperature: number;
  /** Open-set threshold: a top probability below it is labelled "unknown" (as `graft predict --threshold`). */
  threshold?: number;
  /** Provenance: the graft model it was exported from, and when. */
  source?: { model: string; exportedAt: string };
}

/** One ranked class. */
export interface Prediction {
  label: string;
  index: number;
  probability: number;
}

/** The result of classifying one image. */
export interface WebClassification {
  /** One probability per class, in label order. */
  probabilities: Float32Array;
  /** The `k` most probable classes, best first (ties: lower index first, as `graft predict`). */
  top: Prediction[];
  /** True when a threshold is set and the top probability is below it. */
  unknown: boolean;
}

/** A classifier running in the page: one onnxruntime-web session plus the bundle's labels and preprocessing. */
export class WebClassifier {
  private constructor(
    /** The bundle's model.json. */
    readonly meta: WebBundleMeta,
    private readonly ort: WebOrt,
    private readonly session: WebSession,
  ) {}

  /**
   * Loads the bundle at `base` (the folder holding model.json; default: the bundle this module was copied into).
   * @throws naming the file and what to do when model.json, onnxruntime-web or the model cannot be loaded.
   */
  static async load(base: string | URL = new URL('../../', import.meta.url), opts: LoadOptions = {}): Promise<WebClassifier> {
    const { meta, ort, session } = await openBundle<WebBundleMeta>(base, 'image', opts);
    return new WebClassifier(meta, ort, session);
  }

  /** The model's input for one image (graft's preprocessing of decoded pixels). */
  preprocess(px: Pixels): Float32Array {
    return preprocessPixels(px, this.meta.preprocess);
  }

  /** Classifies decoded pixels at natural size (RGBA ImageData or RGB). */
  async classifyPixels(px: Pixels, k = 5): Promise<WebClassification> {
    const cfg = this.meta.preprocess;
    const [h, w] = cfg.size;
    const dims = cfg.layout === 'NCHW' ? [1, cfg.channels, h, w] : [1, h, w, cfg.channels];
    const x = new this.ort.Tensor('float32', this.preprocess(px), dims);
    const out = (await this.session.run({ [this.meta.input]: x }))[this.meta.output];
    if (!out) throw new Error(`graft web: the model has no output "${this.meta.output}"; fix "output" in model.json or re-export the bundle.`);
    const p = Float32Array.from(out.data as Float32Array);
    const classes = p.length;
    if (classes !== this.meta.labels.length)
      throw new Error(`graft web: the model outputs ${classes} classes but model.json lists ${this.meta.labels.length} labels; re-export the bundle.`);
    if (this.meta.softmax) {
      if (this.meta.temperature !== 1) for (let i = 0; i < p.length; i++) p[i]! /= this.meta.temperature;
      softmaxRows(p, classes);
    }
    const top = topKRow({ probabilities: p, classes }, 0, k).map((t) => ({ label: this.meta.labels[t.index]!, index: t.index, probability: t.probability }));
    const unknown = this.meta.threshold !== undefined && !(top[0]!.probability >= this.meta.threshold);
    return { probabilities: p, top, unknown };
  }

  /** Decodes an encoded image (a File from an input or a drop, or a fetched Blob) and classifies it. */
  async classifyBlob(blob: Blob, k = 5): Promise<WebClassification> {
    return this.classifyPixels(await decodeBlob(blob), k);
  }
}

/**
 * Decodes an image to RGBA at its natural size, EXIF orientation applied, with no colour-space conversion and no
 * premultiplied alpha, so no resampling or colour change happens before graft's own preprocessing.
 * (A canvas stores premultiplied pixels: for a semi-transparent pixel the colour can be off by rounding.)
 */
export async function decodeBlob(blob: Blob): Promise<Pixels> {
  let bmp: ImageBitmap;
  try {
    bmp = await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none', imageOrientation: 'from-image' });
  } catch (e) {
    throw new Error(`graft web: cannot decode ${(blob as File).name ?? 'the image'} (${(e as Error).message}); use a PNG, JPEG, WebP or GIF file.`);
  }
  try {
    const { width, height } = bmp;
    const canvas = new OffscreenCanvas(width, height);
    const ctx = canvas.getContext('2d', { willReadFrequently: true, colorSpace: 'srgb' });
    if (!ctx) throw new Error('graft web: this browser gives no 2D canvas to read pixels from.');
    ctx.drawImage(bmp, 0, 0);
    const img = ctx.getImageData(0, 0, width, height, { colorSpace: 'srgb' });
    return { data: img.data, width, height, bands: 4 };
  } finally {
    bmp.close();
  }
}
