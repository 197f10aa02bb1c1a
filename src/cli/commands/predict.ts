/**
 * `graft predict <model.onnx> <files or folders...>`: top-k classes per image with the model's own labels,
 * preprocessing and calibration temperature; `--threshold` labels low-confidence images "unknown". The
 * inference pipeline itself (shared with `graft eval` and `Network.classify`) is train/classify.ts.
 */
import fs from 'node:fs';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { toJsonLine } from '../../util/jsonl.js';
import { CliError, emit, globals } from '../context.js';

export { type Classified, type Classifier, type ClassifyOptions, classifyFiles, loadClassifier, softmaxRows } from '../../train/classify.js';

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

/**
 * One row of `graft predict` output: `label` is the top class, or "unknown" when its probability is under
 * --threshold (`unknown: true`).
 */
export type PredictRow =
  | { file: string; label: string; unknown?: true; top: { label: string; index: number; probability: number }[] }
  | { file: string; error: string };

/** The `graft predict` result (the JSON output). */
export interface PredictResult {
  model: string;
  topK: number;
  /** --threshold: rows whose top probability is below it are "unknown". */
  threshold?: number;
  count: number;
  failed: number;
  /** Rows labelled "unknown" (with --threshold). */
  unknown: number;
  results: PredictRow[];
}

interface PredictOptions {
  topK: number;
  format: 'table' | 'json' | 'csv';
  batchSize: number;
  strict?: boolean;
  preprocess?: string;
  threshold?: number;
}

/** Parses a probability threshold in [0, 1] (for --threshold). */
export function probability(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1)
      throw new InvalidArgumentError(
        `${name} must be a probability between 0 and 1 (e.g. 0.5); images whose top probability is below it are labelled "unknown".`,
      );
    return n;
  };
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
    .description("classify images or texts with a trained model: top-k labels per input, using the model's own labels and preprocessing or tokenizer")
    .argument(
      '<model>',
      'path to the .onnx model (its model.json sidecar or metadata gives labels and preprocessing; a text model has a .tokenizer.json beside it)',
    )
    .argument('<inputs...>', 'image files and/or folders; for a text model: texts, .txt files, a text CSV/TSV/JSONL, or folders of .txt files')
    .addOption(new Option('-k, --top-k <n>', 'how many classes to show per image').default(5).argParser(atLeastOne('--top-k')))
    .addOption(new Option('-f, --format <format>', 'output format').choices(['table', 'json', 'csv']).default('table'))
    .addOption(new Option('-b, --batch-size <n>', 'images per inference batch').default(32).argParser(atLeastOne('--batch-size')))
    .option('--strict', 'stop with exit code 1 at the first image that cannot be decoded (default: warn and report it as an error row)')
    .option('--preprocess <file>', "JSON preprocessing config to use instead of the model's")
    .addOption(new Option('--threshold <p>', 'label an image "unknown" when its top probability is below p (0..1)').argParser(probability('--threshold')))
    .action(async (model: string, inputs: string[], opts: PredictOptions, cmd: Command) => {
      const result = await predict(model, inputs, opts, cmd);
      const format = globals(cmd).json ? 'json' : opts.format;
      if (format === 'json') process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      else emit(cmd, result, () => (format === 'csv' ? predictCsv(result) : predictTable(result)));
    });
}

async function predict(model: string, inputs: string[], opts: PredictOptions, cmd: Command): Promise<PredictResult> {
  const warn = warner(cmd);
  const { tokenizerPath } = await import('../../data/tokenize.js');
  if (fs.existsSync(tokenizerPath(model))) return predictTexts(model, inputs, opts, warn);
  const files = await collectImages(inputs, warn);
  const { loadClassifier, classifyFiles } = await import('../../train/classify.js');
  const clf = await loadClassifier(model, opts.preprocess);
  const { createProgress } = await import('../../util/progress.js');
  const { topKRow } = await import('../../report/metrics.js');
  const progress = createProgress({ total: files.length, label: 'predict', unit: 'img' });
  try {
    const r = await classifyFiles(clf, files, { batchSize: opts.batchSize, strict: opts.strict, onWarning: warn, onBatch: (n) => progress.tick(n) });
    progress.done();
    const k = Math.min(opts.topK, r.classes);
    let unknown = 0;
    const results: PredictRow[] = files.map((file, i) => {
      const error = r.failed.get(i);
      if (error !== undefined) return { file, error };
      const top = topKRow(r, i, k).map((t) => ({ label: clf.labels[t.index]!, index: t.index, probability: t.probability }));
      if (opts.threshold !== undefined && !(top[0]!.probability >= opts.threshold)) {
        unknown++;
        return { file, label: 'unknown', unknown: true, top };
      }
      return { file, label: top[0]!.label, top };
    });
    return { model, topK: k, threshold: opts.threshold, count: files.length, failed: r.failed.size, unknown, results };
  } finally {
    await clf.session.release();
  }
}

/** `graft predict` on a text model (a `.tokenizer.json` beside it): each input is a text, a .txt file, a text table or a folder. */
async function predictTexts(model: string, inputs: string[], opts: PredictOptions, warn: (m: string) => void): Promise<PredictResult> {
  const { readTextInputs } = await import('../../data/text.js');
  const { loadTextClassifier, classifyTexts } = await import('../../train/classify-text.js');
  const { topKRow } = await import('../../report/metrics.js');
  const { names, texts } = await readTextInputs(inputs, { onWarning: warn });
  if (texts.length === 0)
    throw new CliError(`No texts to classify in ${inputs.join(', ')}; pass texts, .txt files, a text CSV/TSV/JSONL or folders of .txt files.`);
  const clf = await loadTextClassifier(model);
  try {
    const r = await classifyTexts(clf, texts, { batchSize: opts.batchSize });
    const k = Math.min(opts.topK, r.classes);
    let unknown = 0;
    const results: PredictRow[] = names.map((file, i) => {
      const top = topKRow(r, i, k).map((t) => ({ label: clf.labels[t.index]!, index: t.index, probability: t.probability }));
      if (opts.threshold !== undefined && !(top[0]!.probability >= opts.threshold)) {
        unknown++;
        return { file, label: 'unknown', unknown: true, top };
      }
      return { file, label: top[0]!.label, top };
    });
    return { model, topK: k, threshold: opts.threshold, count: texts.length, failed: 0, unknown, results };
  } finally {
    await clf.session.release();
  }
}

/** Renders rows as an aligned table: file, then label and probability for each rank. */
export function predictTable(r: PredictResult): string[] {
  const open = r.threshold !== undefined;
  const head = open ? ['file', 'label'] : ['file'];
  for (let i = 1; i <= r.topK; i++) head.push(r.topK === 1 ? (open ? 'top-1' : 'label') : `top-${i}`, 'p');
  const rows = r.results.map((x) =>
    'error' in x ? [x.file, `ERROR ${x.error}`] : [x.file, ...(open ? [x.label] : []), ...x.top.flatMap((t) => [t.label, t.probability.toFixed(4)])],
  );
  const widths = head.map((h, j) => Math.max(h.length, ...rows.filter((row) => row.length > 2 || j === 0).map((row) => (row[j] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, j) => (j === cells.length - 1 ? c : c.padEnd(widths[j]!)))
      .join('  ')
      .trimEnd();
  const out = [line(head), ...rows.map(line)];
  if (r.failed) out.push('', `${r.failed} of ${r.count} image(s) could not be decoded (see the ERROR rows).`);
  if (open) out.push('', `${r.unknown} of ${r.count} image(s) labelled unknown (top probability below ${r.threshold}).`);
  return out;
}

/** Quotes a CSV field when needed (RFC 4180). */
export function csvField(s: string): string {
  return /[",\r\n]/.test(s) || /^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Renders rows as CSV: file, label_i and probability_i for each rank, then error. */
export function predictCsv(r: PredictResult): string[] {
  const open = r.threshold !== undefined;
  const head = open ? ['file', 'label'] : ['file'];
  for (let i = 1; i <= r.topK; i++) head.push(`label_${i}`, `probability_${i}`);
  head.push('error');
  const rows = r.results.map((x) => {
    const cells = [x.file];
    if (open) cells.push('label' in x ? x.label : '');
    for (let i = 0; i < r.topK; i++) {
      const t = 'top' in x ? x.top[i] : undefined;
      cells.push(t?.label ?? '', t ? String(t.probability) : '');
    }
    cells.push('error' in x ? x.error : '');
    return cells.map(csvField).join(',');
  });
  return [head.join(','), ...rows];
}
