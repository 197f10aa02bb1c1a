/**
 * Classifying images with a trained model, shared by `graft predict`, `graft eval` and `Network.classify`: a
 * {@link Classifier} (one onnxruntime session plus the model's labels, preprocessing and calibration
 * temperature) and {@link classifyFiles}, batched decoding that overlaps with inference. Probabilities are the
 * calibrated ones: softmax(logits / temperature) with the temperature fitted at the end of `graft train`.
 */
import fs from 'node:fs';
import { batchDims, decodeBatch, imageSize } from '../data/image.js';
import { type PreprocessConfig, parsePreprocessConfig } from '../data/preprocess.js';
import type { Dim } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import { topKRow } from '../report/metrics.js';
import { runChecked } from '../runtime/feeds.js';
import { createSession, ort } from '../runtime/session.js';
import { softmaxRows } from '../util/softmax.js';
import { Network } from './network.js';

export { softmaxRows } from '../util/softmax.js';

/** A loaded image classifier: an onnxruntime session plus the model's labels and preprocessing. */
export interface Classifier {
  file: string;
  session: ort.InferenceSession;
  input: string;
  /** Output read: "logits" (softmax applied here, after dividing by `temperature`), else "probabilities" or the first output. */
  output: string;
  softmax: boolean;
  preprocess: PreprocessConfig;
  /** Class names from model.json / metadata, or "0".."k-1" when the model has none (then `hasLabels` is false). */
  labels: string[];
  hasLabels: boolean;
  /** Logits are divided by this before softmax (1: uncalibrated). */
  temperature: number;
  /** A batch dimension fixed by the model (e.g. 1), if any. */
  fixedBatch?: number;
}

/** A {@link Classifier} without its session: what a model's sidecar and graph say about classifying with it. */
export type ClassifierInfo = Omit<Classifier, 'session'>;

/**
 * Loads `file` (.onnx) with its sidecar (model.json) or metadata_props and opens a {@link Classifier} on it.
 * @param preprocessFile optional JSON file overriding the model's preprocessing.
 */
export async function loadClassifier(file: string, preprocessFile?: string): Promise<Classifier> {
  const { info, model } = readClassifier(file, preprocessFile);
  return { ...info, session: await createSession(model) };
}

/**
 * Reads `file` (.onnx) with its sidecar as {@link loadClassifier} does, without opening a session: the
 * classifier's description and the model to run it with (`graft serve` runs it through its own runner).
 * @throws when the model has no preprocessing config or its input does not fit the preprocessing.
 */
export function readClassifier(file: string, preprocessFile?: string): { info: ClassifierInfo; model: Model } {
  const net = Network.load(file);
  let raw: unknown = net.preprocess ?? (net.model.metadata['graft.preprocess'] ? JSON.parse(net.model.metadata['graft.preprocess']) : undefined);
  let source = `preprocessing of ${file} (model.json "preprocess" or metadata "graft.preprocess")`;
  if (preprocessFile) {
    try {
      raw = JSON.parse(fs.readFileSync(preprocessFile, 'utf8'));
    } catch (e) {
      throw new Error(`Cannot read preprocessing config ${preprocessFile}: ${(e as Error).message}. Pass a JSON file like {"size": 224, "resize": "crop"}.`);
    }
    source = `preprocessing config ${preprocessFile}`;
  }
  if (raw === undefined)
    throw new Error(
      `Model ${file} has no preprocessing config (neither a "preprocess" entry in its model.json sidecar nor "graft.preprocess" metadata). Pass one with --preprocess <file.json>, e.g. {"size": 224, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}.`,
    );
  const info = describeClassifier(net.model, { file, preprocess: parsePreprocessConfig(raw, source), labels: net.labels, temperature: net.temperature });
  return { info, model: net.model };
}

/** A {@link Classifier} over an in-memory network (its inference export), as `Network.classify` uses it. */
export async function classifierOf(net: Network, name = 'the network'): Promise<Classifier> {
  if (!net.preprocess)
    throw new Error(`${name} has no preprocessing config, so images cannot be decoded for it; set net.preprocess (e.g. parsePreprocessConfig({ size: 224 })).`);
  const model = net.toInference();
  const info = describeClassifier(model, { file: name, preprocess: net.preprocess, labels: net.labels, temperature: net.temperature });
  return { ...info, session: await createSession(model) };
}

/** The graph input and output a classifier uses (see {@link classifierIO}). */
export interface ClassifierIO {
  input: string;
  /** "logits" (softmax applied by graft, after dividing by the temperature), else "probabilities" or the first output. */
  output: string;
  softmax: boolean;
  /** Classes, when the output's last dimension is fixed. */
  classes?: number;
  /** A batch dimension fixed by the model (e.g. 1), if any. */
  fixedBatch?: number;
}

/**
 * Picks the input to feed images to and the output to read, and checks the input's shape against the preprocessing.
 * One rule for `graft predict` and the browser bundle (`graft export --web`).
 * @throws naming the model when it has no free input or no output, or when its input shape does not fit `preprocess`.
 */
export function classifierIO(model: Model, file: string, preprocess: PreprocessConfig): ClassifierIO {
  const g = model.graph;
  const input = g.inputs.find((v) => !g.initializers.has(v.name));
  if (!input) throw new Error(`Model ${file} has no graph input to feed images to; is it a complete classifier?`);
  const expected = batchDims(preprocess, 1);
  const shape: Dim[] | undefined = input.shape;
  if (shape) {
    const bad = shape.length !== expected.length || shape.some((d, i) => i > 0 && typeof d === 'number' && d !== expected[i]);
    if (bad)
      throw new Error(
        `Model ${file} takes input "${input.name}" of shape [${shape.map((d) => d ?? '?').join(', ')}] but its preprocessing makes [N, ${expected.slice(1).join(', ')}] (${preprocess.layout}). Fix "size"/"channels"/"layout" in the preprocessing config (model.json, or --preprocess).`,
      );
  }
  const outs = g.outputs.map((o) => o.name);
  // logits first: the calibration temperature divides logits, before the softmax
  const output = outs.includes('logits') ? 'logits' : outs.includes('probabilities') ? 'probabilities' : outs[0];
  if (!output) throw new Error(`Model ${file} has no outputs; export it with a classifier output ("probabilities" or "logits").`);
  const classes = g.outputs.find((o) => o.name === output)?.shape?.at(-1);
  return {
    input: input.name,
    output,
    softmax: output !== 'probabilities',
    classes: typeof classes === 'number' ? classes : undefined,
    fixedBatch: typeof shape?.[0] === 'number' && shape[0] > 0 ? shape[0] : undefined,
  };
}

function describeClassifier(
  model: Model,
  meta: { file: string; preprocess: PreprocessConfig; labels?: readonly string[]; temperature?: number },
): ClassifierInfo {
  const { file, preprocess } = meta;
  const io = classifierIO(model, file, preprocess);
  const labels = meta.labels ?? (io.classes !== undefined ? Array.from({ length: io.classes }, (_, i) => String(i)) : []);
  return {
    file,
    input: io.input,
    output: io.output,
    softmax: io.softmax,
    preprocess,
    labels: [...labels],
    hasLabels: !!meta.labels,
    temperature: meta.temperature ?? 1,
    fixedBatch: io.fixedBatch,
  };
}

/** Result of {@link classifyFiles}: one probability row per file (zeros where decoding failed). */
export interface Classified {
  probabilities: Float32Array;
  classes: number;
  /** Files that could not be decoded, by index, with the reason. */
  failed: Map<number, string>;
}

/** Options of {@link classifyFiles}. */
export interface ClassifyOptions {
  batchSize?: number;
  /** Throw on the first undecodable image instead of reporting it in `failed`. */
  strict?: boolean;
  /** Called once per undecodable file (not in strict mode). */
  onWarning?: (message: string) => void;
  /** What happens to an undecodable file, for the warning (default: "reported as an error"). */
  failNote?: string;
  /** Called after each batch with the number of files done in it. */
  onBatch?: (n: number) => void;
}

/**
 * Classifies image files (paths, or encoded images in Buffers) in batches; decoding batch i+1 (libvips
 * threads) overlaps with inference on batch i.
 * @throws the decode error naming the file under `strict`; an error naming the model when outputs do not fit.
 */
export async function classifyFiles(clf: Classifier, files: readonly (string | Buffer)[], opts: ClassifyOptions = {}): Promise<Classified> {
  const bs = clf.fixedBatch ?? Math.max(1, opts.batchSize ?? 32);
  const per = imageSize(clf.preprocess);
  const bufs = [new Float32Array(bs * per), new Float32Array(bs * per)];
  const failed = new Map<number, string>();
  const starts = Array.from({ length: Math.ceil(files.length / bs) }, (_, i) => i * bs);
  const decode = (b: number) => {
    const chunk = files.slice(starts[b]!, starts[b]! + bs);
    return decodeBatch(chunk, clf.preprocess, { out: bufs[b % 2]!, onError: opts.strict ? 'throw' : 'skip', firstIndex: starts[b]! });
  };
  let probs: Float32Array | undefined;
  let classes = 0;
  let pending = starts.length ? decode(0) : undefined;
  for (let b = 0; b < starts.length; b++) {
    const cur = await pending!;
    pending = b + 1 < starts.length ? decode(b + 1) : undefined;
    pending?.catch(() => {}); // awaited on the next iteration; avoid an unhandled rejection if inference fails first
    const n = cur.dims[0]!;
    for (const f of cur.failed) {
      const why = f.error.message.replace(/\s*Re-encode or remove the file.*$/, '').replace(/\.$/, '');
      failed.set(starts[b]! + f.index, why);
      opts.onWarning?.(`${why}; ${opts.failNote ?? 'reported as an error'} (use --strict to stop instead).`);
    }
    const rows = clf.fixedBatch ?? n;
    const x = rows === n ? cur.data : padded(cur.data, rows * per);
    const r = await runChecked(clf.session, { [clf.input]: new ort.Tensor('float32', x, batchDims(clf.preprocess, rows)) }, [clf.output], {
      what: `graft's image batches for ${clf.file}`,
    });
    const t = r[clf.output]!;
    const k = Number(t.dims.at(-1));
    if (t.dims.length !== 2 || t.dims[0] !== rows)
      throw new Error(
        `Model ${clf.file}: output "${clf.output}" has shape [${t.dims.join(', ')}] for a batch of ${rows}; a classifier must output [batch, classes].`,
      );
    if (!probs) {
      classes = k;
      probs = new Float32Array(files.length * k);
      if (clf.labels.length !== k)
        throw new Error(
          `Model ${clf.file} outputs ${k} classes but its labels list ${clf.labels.length} (${clf.labels.slice(0, 5).join(', ')}${clf.labels.length > 5 ? ', …' : ''}); fix "labels" in its model.json sidecar.`,
        );
    }
    const out = (t.data as Float32Array).subarray(0, n * k);
    calibrateRows(clf, out, k);
    probs.set(out, starts[b]! * k);
    for (const i of failed.keys()) if (i >= starts[b]! && i < starts[b]! + n) probs.fill(0, i * k, (i + 1) * k);
    opts.onBatch?.(n);
  }
  return { probabilities: probs ?? new Float32Array(0), classes, failed };
}

function padded(data: Float32Array, size: number): Float32Array {
  const x = new Float32Array(size);
  x.set(data);
  return x;
}

/**
 * Turns rows of the classifier's output into its calibrated probabilities, in place: softmax(logits / temperature)
 * for a logits output; a probabilities output is left as it is. The one place `graft predict`, eval and serve do it.
 */
export function calibrateRows(clf: Pick<ClassifierInfo, 'softmax' | 'temperature'>, rows: Float32Array, k: number): void {
  if (!clf.softmax) return;
  if (clf.temperature !== 1) for (let i = 0; i < rows.length; i++) rows[i]! /= clf.temperature;
  softmaxRows(rows, k);
}

/** The label of a row whose top probability is below the threshold. */
export const UNKNOWN_LABEL = 'unknown';

/** One classified image: its top label and probability (or {@link UNKNOWN_LABEL} under the threshold) and the top-k list. */
export interface ImageClass {
  /** The file path, or `buffer #i` for the i-th Buffer. */
  file: string;
  label: string;
  /** Probability of the top class (also when the label is "unknown"). */
  p: number;
  /** The k most probable classes, most probable first. */
  top: { label: string; p: number }[];
  /** Why the image could not be decoded (then label is "unknown", p 0 and top empty). */
  error?: string;
}

/** The top-k rows of a {@link Classified} result, with rows under `threshold` labelled {@link UNKNOWN_LABEL}. */
export function labelRows(r: Classified, labels: readonly string[], names: readonly string[], opts: { topK?: number; threshold?: number } = {}): ImageClass[] {
  const k = Math.min(opts.topK ?? 5, r.classes);
  return names.map((file, i) => {
    const error = r.failed.get(i);
    if (error !== undefined) return { file, label: UNKNOWN_LABEL, p: 0, top: [], error };
    const top = topKRow(r, i, k).map((t) => ({ label: labels[t.index]!, p: t.probability }));
    const best = top[0];
    const known = !!best && !(best.p < (opts.threshold ?? 0));
    return { file, label: known ? best.label : UNKNOWN_LABEL, p: best?.p ?? 0, top };
  });
}
