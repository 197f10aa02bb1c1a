/**
 * `graft predict <model.onnx> <files or folders...>`: top-k classes per image with the model's own labels and
 * preprocessing. Also home of the inference pipeline shared with `graft eval` ({@link loadClassifier},
 * {@link classifyFiles}): batched decoding that overlaps with onnxruntime inference.
 */
import fs from 'node:fs';
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { PreprocessConfig } from '../../data/preprocess.js';
import type { Dim } from '../../ir/graph.js';
import type { ort } from '../../runtime/session.js';
import { toJsonLine } from '../../util/jsonl.js';
import { CliError, emit, globals } from '../context.js';

/** A loaded image classifier: an onnxruntime session plus the model's labels and preprocessing. */
export interface Classifier {
  file: string;
  session: ort.InferenceSession;
  input: string;
  /** Output read: "probabilities", or a logits output that softmax is applied to. */
  output: string;
  softmax: boolean;
  preprocess: PreprocessConfig;
  /** Class names from model.json / metadata, or "0".."k-1" when the model has none (then `hasLabels` is false). */
  labels: string[];
  hasLabels: boolean;
  /** A batch dimension fixed by the model (e.g. 1), if any. */
  fixedBatch?: number;
}

/**
 * Loads `file` (.onnx) with its sidecar (model.json) or metadata_props, validates the preprocessing config,
 * checks that it matches the model's input shape and opens an onnxruntime session.
 * @param preprocessFile optional JSON file overriding the model's preprocessing.
 */
export async function loadClassifier(file: string, preprocessFile?: string): Promise<Classifier> {
  const [{ Network }, { parsePreprocessConfig, batchDims }, { createSession }] = await Promise.all([
    import('../../train/network.js'),
    import('../../data/index.js'),
    import('../../runtime/session.js'),
  ]);
  const net = Network.load(file);
  const g = net.model.graph;
  let raw: unknown = net.preprocess ?? (net.model.metadata['graft.preprocess'] ? JSON.parse(net.model.metadata['graft.preprocess']) : undefined);
  let source = `preprocessing of ${file} (model.json "preprocess" or metadata "graft.preprocess")`;
  if (preprocessFile) {
    try {
      raw = JSON.parse(fs.readFileSync(preprocessFile, 'utf8'));
    } catch (e) {
      throw new CliError(`Cannot read preprocessing config ${preprocessFile}: ${(e as Error).message}. Pass a JSON file like {"size": 224, "resize": "crop"}.`);
    }
    source = `preprocessing config ${preprocessFile}`;
  }
  if (raw === undefined)
    throw new CliError(
      `Model ${file} has no preprocessing config (neither a "preprocess" entry in its model.json sidecar nor "graft.preprocess" metadata). Pass one with --preprocess <file.json>, e.g. {"size": 224, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}.`,
    );
  const preprocess = parsePreprocessConfig(raw, source);
  const input = g.inputs.find((v) => !g.initializers.has(v.name));
  if (!input) throw new CliError(`Model ${file} has no graph input to feed images to; is it a complete classifier?`);
  const expected = batchDims(preprocess, 1);
  const shape: Dim[] | undefined = input.shape;
  if (shape) {
    const bad = shape.length !== expected.length || shape.some((d, i) => i > 0 && typeof d === 'number' && d !== expected[i]);
    if (bad)
      throw new CliError(
        `Model ${file} takes input "${input.name}" of shape [${shape.map((d) => d ?? '?').join(', ')}] but its preprocessing makes [N, ${expected.slice(1).join(', ')}] (${preprocess.layout}). Fix "size"/"channels"/"layout" in the preprocessing config (model.json, or --preprocess).`,
      );
  }
  const outs = g.outputs.map((o) => o.name);
  const output = outs.includes('probabilities') ? 'probabilities' : outs.includes('logits') ? 'logits' : outs[0];
  if (!output) throw new CliError(`Model ${file} has no outputs; export it with a classifier output ("probabilities" or "logits").`);
  const session = await createSession(net.model);
  const classes = g.outputs.find((o) => o.name === output)?.shape?.at(-1);
  const labels = net.labels ?? (typeof classes === 'number' ? Array.from({ length: classes }, (_, i) => String(i)) : []);
  return {
    file,
    session,
    input: input.name,
    output,
    softmax: output !== 'probabilities',
    preprocess,
    labels: [...labels],
    hasLabels: !!net.labels,
    fixedBatch: typeof shape?.[0] === 'number' && shape[0] > 0 ? shape[0] : undefined,
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
 * Classifies image files in batches; decoding batch i+1 (libvips threads) overlaps with inference on batch i.
 * @throws the decode error naming the file under `strict`; an error naming the model when outputs do not fit.
 */
export async function classifyFiles(clf: Classifier, files: readonly string[], opts: ClassifyOptions = {}): Promise<Classified> {
  const { decodeBatch, imageSize, batchDims } = await import('../../data/index.js');
  const { ort, runChecked } = await import('../../runtime/session.js');
  const bs = clf.fixedBatch ?? Math.max(1, opts.batchSize ?? 32);
  const per = imageSize(clf.preprocess);
  const bufs = [new Float32Array(bs * per), new Float32Array(bs * per)];
  const failed = new Map<number, string>();
  const starts = Array.from({ length: Math.ceil(files.length / bs) }, (_, i) => i * bs);
  const decode = (b: number) => {
    const chunk = files.slice(starts[b]!, starts[b]! + bs);
    return decodeBatch(chunk, clf.preprocess, { out: bufs[b % 2]!, onError: opts.strict ? 'throw' : 'skip' });
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
      throw new CliError(
        `Model ${clf.file}: output "${clf.output}" has shape [${t.dims.join(', ')}] for a batch of ${rows}; a classifier must output [batch, classes].`,
      );
    if (!probs) {
      classes = k;
      probs = new Float32Array(files.length * k);
      if (clf.labels.length !== k)
        throw new CliError(
          `Model ${clf.file} outputs ${k} classes but its labels list ${clf.labels.length} (${clf.labels.slice(0, 5).join(', ')}${clf.labels.length > 5 ? ', …' : ''}); fix "labels" in its model.json sidecar.`,
        );
    }
    const out = (t.data as Float32Array).subarray(0, n * k);
    if (clf.softmax) softmaxRows(out, k);
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

/** In-place, numerically stable softmax over each row of length `k`. */
export function softmaxRows(x: Float32Array, k: number): void {
  for (let o = 0; o < x.length; o += k) {
    let m = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < k; j++) m = Math.max(m, x[o + j]!);
    let s = 0;
    for (let j = 0; j < k; j++) s += x[o + j] = Math.exp(x[o + j]! - m);
    for (let j = 0; j < k; j++) x[o + j]! /= s;
  }
}

/** Expands files and folders (walked recursively for image files) into a list of image paths, in argument order. */
export async function collectImages(inputs: readonly string[], warn: (m: string) => void): Promise<string[]> {
  const { listImages, warnLeftOut } = await import('../../data/index.js');
  const { describeFsError } = await import('../../util/fs-errors.js');
  const out: string[] = [];
  for (const p of inputs) {
    let st: fs.Stats;
    try {
      st = fs.statSync(p);
    } catch (e) {
      throw new CliError(describeFsError('read', p, e));
    }
    if (!st.isDirectory()) {
      out.push(p);
      continue;
    }
    const { images, skipped, leftOut } = await listImages(p);
    if (skipped.length) warn(`skipping ${skipped.length} non-image file(s) in ${p} (e.g. ${skipped[0]}).`);
    warnLeftOut(warn, leftOut);
    if (images.length === 0) warn(`folder ${p} contains no image files (.jpg, .png, .webp, …) at any depth.`);
    out.push(...images);
  }
  if (out.length === 0) throw new CliError(`No images to classify in ${inputs.join(', ')}; pass image files (.jpg, .png, …) or folders that contain them.`);
  return out;
}

/** Warning line on stderr: a JSON line under --json, "warning: …" otherwise (shown even with --quiet). */
export function warner(cmd: Command): (message: string) => void {
  const json = !!globals(cmd).json;
  return (message) => process.stderr.write(json ? `${toJsonLine({ event: 'warning', message })}\n` : `warning: ${message}\n`);
}

/** One row of `graft predict` output. */
export type PredictRow = { file: string; top: { label: string; index: number; probability: number }[] } | { file: string; error: string };

/** The `graft predict` result (the JSON output). */
export interface PredictResult {
  model: string;
  topK: number;
  count: number;
  failed: number;
  results: PredictRow[];
}

interface PredictOptions {
  topK: number;
  format: 'table' | 'json' | 'csv';
  batchSize: number;
  strict?: boolean;
  preprocess?: string;
}

/** Parses a positive integer option (at least 1). */
export function atLeastOne(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a whole number of at least 1.`);
    return n;
  };
}

/** Registers `graft predict`. */
export function register(program: Command): void {
  program
    .command('predict')
    .description("classify images with a trained model: top-k labels per file, using the model's own labels and preprocessing")
    .argument('<model>', 'path to the .onnx model (its model.json sidecar or metadata gives labels and preprocessing)')
    .argument('<inputs...>', 'image files and/or folders (walked recursively for image files)')
    .addOption(new Option('-k, --top-k <n>', 'how many classes to show per image').default(5).argParser(atLeastOne('--top-k')))
    .addOption(new Option('-f, --format <format>', 'output format').choices(['table', 'json', 'csv']).default('table'))
    .addOption(new Option('-b, --batch-size <n>', 'images per inference batch').default(32).argParser(atLeastOne('--batch-size')))
    .option('--strict', 'stop with exit code 1 at the first image that cannot be decoded (default: warn and report it as an error row)')
    .option('--preprocess <file>', "JSON preprocessing config to use instead of the model's")
    .action(async (model: string, inputs: string[], opts: PredictOptions, cmd: Command) => {
      const result = await predict(model, inputs, opts, cmd);
      const format = globals(cmd).json ? 'json' : opts.format;
      if (format === 'json') process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      else emit(cmd, result, () => (format === 'csv' ? predictCsv(result) : predictTable(result)));
    });
}

async function predict(model: string, inputs: string[], opts: PredictOptions, cmd: Command): Promise<PredictResult> {
  const warn = warner(cmd);
  const files = await collectImages(inputs, warn);
  const clf = await loadClassifier(model, opts.preprocess);
  const { createProgress } = await import('../../util/progress.js');
  const { topKRow } = await import('../../report/metrics.js');
  const progress = createProgress({ total: files.length, label: 'predict', unit: 'img' });
  try {
    const r = await classifyFiles(clf, files, { batchSize: opts.batchSize, strict: opts.strict, onWarning: warn, onBatch: (n) => progress.tick(n) });
    progress.done();
    const k = Math.min(opts.topK, r.classes);
    const results: PredictRow[] = files.map((file, i) => {
      const error = r.failed.get(i);
      if (error !== undefined) return { file, error };
      const top = topKRow(r, i, k).map((t) => ({ label: clf.labels[t.index]!, index: t.index, probability: t.probability }));
      return { file, top };
    });
    return { model, topK: k, count: files.length, failed: r.failed.size, results };
  } finally {
    await clf.session.release();
  }
}

/** Renders rows as an aligned table: file, then label and probability for each rank. */
export function predictTable(r: PredictResult): string[] {
  const head = ['file'];
  for (let i = 1; i <= r.topK; i++) head.push(r.topK === 1 ? 'label' : `top-${i}`, 'p');
  const rows = r.results.map((x) => ('error' in x ? [x.file, `ERROR ${x.error}`] : [x.file, ...x.top.flatMap((t) => [t.label, t.probability.toFixed(4)])]));
  const widths = head.map((h, j) => Math.max(h.length, ...rows.filter((row) => row.length > 2 || j === 0).map((row) => (row[j] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, j) => (j === cells.length - 1 ? c : c.padEnd(widths[j]!)))
      .join('  ')
      .trimEnd();
  const out = [line(head), ...rows.map(line)];
  if (r.failed) out.push('', `${r.failed} of ${r.count} image(s) could not be decoded (see the ERROR rows).`);
  return out;
}

/** Quotes a CSV field when needed (RFC 4180). */
export function csvField(s: string): string {
  return /[",\r\n]/.test(s) || /^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Renders rows as CSV: file, label_i and probability_i for each rank, then error. */
export function predictCsv(r: PredictResult): string[] {
  const head = ['file'];
  for (let i = 1; i <= r.topK; i++) head.push(`label_${i}`, `probability_${i}`);
  head.push('error');
  const rows = r.results.map((x) => {
    const cells = [x.file];
    for (let i = 0; i < r.topK; i++) {
      const t = 'top' in x ? x.top[i] : undefined;
      cells.push(t?.label ?? '', t ? String(t.probability) : '');
    }
    cells.push('error' in x ? x.error : '');
    return cells.map(csvField).join(',');
  });
  return [head.join(','), ...rows];
}
