/**
 * Text classification in the browser: a text model exported by `graft export --web` runs on onnxruntime-web, and
 * the page tokenizes with graft's own tokenizer code (data/text-tokens.ts, the module `graft predict` uses on
 * Node); a Hugging Face tokenizer.json runs on the bundle's copy of `@huggingface/tokenizers` (vendor/). The
 * probabilities are `graft predict`'s: softmax(logits / temperature).
 *
 * In a page, with `WebTextClassifier` taken from the bundle's `graft/web/index.js` module:
 *
 * ```js
 * const clf = await WebTextClassifier.load();
 * const [{ top }] = await clf.classifyTexts(['free money, click now'], 3);
 * ```
 */
import { type HfFactory, makeTokenizer, padTokenIds, type TextTokenizer, type TokenizerSpec } from '../data/text-tokens.js';
import { topKRow } from '../report/metrics.js';
import { softmaxRows } from '../util/softmax.js';
import { type BundleMetaBase, type LoadOptions, openBundle, type WebOrt, type WebSession } from './bundle.js';

/** A text bundle's model.json (see docs/formats.md, "Web bundle"). */
export interface WebTextBundleMeta extends BundleMetaBase {
  kind: 'text';
  /** Graph input fed with token ids (int64 [n, T]). */
  input: string;
  /** Graph output read: "logits" (softmax applied here), else probabilities. */
  output: string;
  softmax: boolean;
  labels: string[];
  temperature: number;
  threshold?: number;
  /** graft's tokenizer description (the model's `.tokenizer.json`), relative to model.json. */
  tokenizer: string;
  /** The ES module of `@huggingface/tokenizers` (exports `Tokenizer`), for a "hf" tokenizer; relative to model.json. */
  hfModule?: string;
  source?: { model: string; exportedAt: string };
}

/** One text's classes, best first, and its probabilities in label order. */
export interface WebTextClassification {
  probabilities: Float32Array;
  top: { label: string; index: number; probability: number }[];
  /** True when a threshold is set and the top probability is below it. */
  unknown: boolean;
}

/** A text classifier running in the page: one onnxruntime-web session plus the bundle's tokenizer and labels. */
export class WebTextClassifier {
  private constructor(
    /** The bundle's model.json. */
    readonly meta: WebTextBundleMeta,
    /** graft's tokenizer, as on Node. */
    readonly tokenizer: TextTokenizer,
    private readonly ort: WebOrt,
    private readonly session: WebSession,
  ) {}

  /**
   * Loads the text bundle at `base` (the folder holding model.json; default: the bundle this module was copied into).
   * @throws naming the file when model.json, the tokenizer, onnxruntime-web or the model cannot be loaded.
   */
  static async load(base: string | URL = new URL('../../', import.meta.url), opts: LoadOptions = {}): Promise<WebTextClassifier> {
    const { root, meta, ort, session } = await openBundle<WebTextBundleMeta>(base, 'text', opts);
    const url = new URL(meta.tokenizer, root);
    const res = await fetch(url);
    if (!res.ok) throw new Error(`graft web: cannot load the tokenizer ${url} (HTTP ${res.status}); re-export the bundle with \`graft export --web\`.`);
    const spec = (await res.json()) as TokenizerSpec;
    let hf: HfFactory | undefined;
    if (spec.kind === 'hf') {
      if (!meta.hfModule) throw new Error(`graft web: ${url} is a Hugging Face tokenizer but model.json names no "hfModule"; re-export the bundle.`);
      const mod = (await import(new URL(meta.hfModule, root).href)) as { Tokenizer: new (j: object, c: object) => ReturnType<HfFactory> };
      hf = (json, config) => new mod.Tokenizer(json, config);
    }
    return new WebTextClassifier(meta, makeTokenizer(spec, url.href, hf), ort, session);
  }

  /** Classifies `texts` in one run (token ids right-padded to the longest); one result per text, in order. */
  async classifyTexts(texts: readonly string[], k = 5): Promise<WebTextClassification[]> {
    if (!texts.length) return [];
    const padId = this.tokenizer.spec.kind === 'hf' ? this.tokenizer.spec.padId : 0;
    const b = padTokenIds(
      texts.map((t) => this.tokenizer.encode(t)),
      padId,
    );
    const x = new this.ort.Tensor('int64', b.ids, b.dims);
    const out = (await this.session.run({ [this.meta.input]: x }))[this.meta.output];
    if (!out) throw new Error(`graft web: the model has no output "${this.meta.output}"; fix "output" in model.json or re-export the bundle.`);
    const p = Float32Array.from(out.data as Float32Array);
    const classes = p.length / texts.length;
    if (classes !== this.meta.labels.length)
      throw new Error(`graft web: the model outputs ${classes} classes but model.json lists ${this.meta.labels.length} labels; re-export the bundle.`);
    if (this.meta.softmax) {
      if (this.meta.temperature !== 1) for (let i = 0; i < p.length; i++) p[i]! /= this.meta.temperature;
      softmaxRows(p, classes);
    }
    return texts.map((_, r) => {
      const top = topKRow({ probabilities: p, classes }, r, k).map((t) => ({ label: this.meta.labels[t.index]!, index: t.index, probability: t.probability }));
      const unknown = this.meta.threshold !== undefined && !(top[0]!.probability >= this.meta.threshold);
      return { probabilities: p.slice(r * classes, (r + 1) * classes), top, unknown };
    });
  }
}
