/**
 * `graft eval <model.onnx> --data <folder|manifest> [--out dir]`: accuracy, top-k, per-class precision/recall/F1,
 * confusion matrix and calibration (ECE, reliability diagram) of a classifier on labelled images. Data classes
 * are matched to the model's labels by name. With --out: eval.json, predictions.csv, confusion.{svg,png},
 * reliability.{svg,png} and a self-contained report.html.
 */
import fs from 'node:fs';
import path from 'node:path';
import { type Command, Option } from 'commander';
import type { PreprocessConfig } from '../../data/preprocess.js';
import { confusionText } from '../../report/confusion.js';
import type { HtmlReportInput } from '../../report/html.js';
import type { CalibrationBin } from '../../report/metrics.js';
import { CliError, emit, note } from '../context.js';
import { atLeastOne, type Classifier, classifyFiles, csvField, loadClassifier, probability, warner } from './predict.js';

/** The eval.json document (also the --json output). */
export interface EvalReport
  extends Omit<HtmlReportInput, 'confusionSvg' | 'reliabilitySvg' | 'title' | 'perClass' | 'misclassified' | 'preprocessing' | 'curvesSvg' | 'restored'> {
  graft: string;
  created: string;
  /** The model's class names, in output order. */
  labels: string[];
  /** Images whose model output had a NaN or infinite value: no prediction, counted as wrong in every metric. */
  nonFinite: number;
  mce: number;
  calibration: { bins: number; binStats: CalibrationBin[] };
  perClass: { label: string; index: number; precision: number; recall: number; f1: number; support: number }[];
  /** Files written under --out, by kind. */
  files?: Record<string, string>;
  /** The model's calibration temperature (probabilities are softmax(logits / temperature)). */
  temperature: number;
  /** "texts" for a text model (its rows are texts, named file:line); absent for images. */
  inputs?: 'texts';
}

interface EvalOptions {
  data: string;
  out?: string;
  topK: number;
  batchSize: number;
  bins: number;
  strict?: boolean;
  preprocess?: string;
  allowOutside?: boolean;
  threshold?: number;
}

/** Registers `graft eval`. */
export function register(program: Command): void {
  program
    .command('eval')
    .description('evaluate a classifier on labelled images: accuracy, top-k, per-class P/R/F1, confusion matrix, calibration; optional HTML report')
    .argument('<model>', 'path to the .onnx model (its model.json sidecar or metadata gives labels and preprocessing)')
    .requiredOption('-d, --data <path>', 'labelled data: a folder of <class>/<images> or a CSV/JSONL manifest (path,label)')
    .option('-o, --out <dir>', 'write eval.json, predictions.csv, confusion.svg/png, reliability.svg/png and report.html here')
    .addOption(new Option('-k, --top-k <n>', 'k of the top-k accuracy').default(5).argParser(atLeastOne('--top-k')))
    .addOption(new Option('-b, --batch-size <n>', 'images per inference batch').default(32).argParser(atLeastOne('--batch-size')))
    .addOption(new Option('--bins <n>', 'equal-width confidence bins for ECE').default(15).argParser(atLeastOne('--bins')))
    .option('--strict', 'stop with exit code 1 at the first image that cannot be decoded (default: warn and leave it out)')
    .option('--preprocess <file>', "JSON preprocessing config to use instead of the model's")
    .option('--allow-outside', "accept manifest paths (and symbolic links) that lead outside the manifest's folder")
    .addOption(
      new Option(
        '--threshold <p>',
        'count an image as "unknown" when its top probability is below p (0..1): reports coverage and accuracy on the rest',
      ).argParser(probability('--threshold')),
    )
    .action(async (model: string, opts: EvalOptions, cmd: Command) => {
      const report = await evaluate(model, opts, cmd);
      emit(cmd, report, () => formatEval(report));
    });
}

/** Image paths and their labels as indices into the model's labels. */
interface EvalData {
  source: string;
  /** Folder that relative paths in predictions.csv start from (the data folder, or the manifest's folder). */
  root: string;
  paths: readonly string[];
  labels: Int32Array;
}

/**
 * Loads a labelled folder or manifest and maps its class names to the model's labels.
 * @throws naming every data class the model does not know.
 */
export async function loadEvalData(data: string, clf: Classifier, warn: (m: string) => void, opts: { allowOutside?: boolean } = {}): Promise<EvalData> {
  const { ImageFolderDataset, ManifestDataset } = await import('../../data/index.js');
  const { describeFsError } = await import('../../util/fs-errors.js');
  const abs = path.resolve(data);
  let st: fs.Stats;
  try {
    st = fs.statSync(abs);
  } catch (e) {
    throw new CliError(describeFsError('read the evaluation data', data, e));
  }
  const known = new Map(clf.labels.map((l, i) => [l, i]));
  const unknownError = (names: string[], what: string) => {
    const list = clf.labels.length > 12 ? `${clf.labels.slice(0, 12).join(', ')}, … (${clf.labels.length} in all)` : clf.labels.join(', ');
    const origin = clf.hasLabels ? 'its labels' : 'it has no labels, so classes are named by index';
    return new CliError(
      `${what} ${names.map((n) => `"${n}"`).join(', ')} of ${abs} ${names.length > 1 ? 'are not classes' : 'is not a class'} of model ${clf.file} (${origin}: ${list || 'none'}). Rename or remove ${names.length > 1 ? 'them' : 'it'} to match the model's labels, or evaluate a model trained with ${names.length > 1 ? 'these classes' : 'this class'}.`,
    );
  };
  if (st.isDirectory()) {
    const dirs = fs
      .readdirSync(abs, { withFileTypes: true })
      .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
      .map((e) => e.name)
      .sort();
    const unknown = dirs.filter((d) => !known.has(d));
    if (unknown.length) throw unknownError(unknown, unknown.length > 1 ? 'Class folders' : 'Class folder');
    const ds = await ImageFolderDataset.load(abs, { classes: clf.labels, onWarning: warn });
    return { source: abs, root: abs, paths: ds.paths, labels: ds.labels()! };
  }
  const ds = await ManifestDataset.load(abs, { onWarning: warn, allowOutside: opts.allowOutside });
  const raw = ds.labels();
  if (!raw) throw new CliError(`Manifest ${abs} has no "label" column/field; evaluation needs the true class of every image (path,label).`);
  const unknown = ds.classes.filter((c) => !known.has(c));
  if (unknown.length) throw unknownError(unknown, unknown.length > 1 ? 'Labels' : 'Label');
  const map = ds.classes.map((c) => known.get(c)!);
  return { source: abs, root: path.dirname(abs), paths: ds.paths, labels: Int32Array.from(raw, (l) => map[l]!) };
}

/** What the metrics need of a model: its labels and temperature, and (images) its preprocessing. */
type EvalModel = Pick<Classifier, 'labels' | 'hasLabels' | 'temperature' | 'file'> & { preprocess?: PreprocessConfig };

/**
 * A text model (a `.tokenizer.json` beside it) on a labelled text table or folder of .txt files: its texts
 * classified, their classes matched to the model's labels by name. `paths` are the texts' `file:line`.
 */
async function classifyTextData(
  model: string,
  opts: EvalOptions,
  warn: (m: string) => void,
): Promise<{ clf: EvalModel; data: EvalData; r: Awaited<ReturnType<typeof classifyFiles>> }> {
  const { loadTextData } = await import('../../data/text.js');
  const { loadTextClassifier, classifyTexts } = await import('../../train/classify-text.js');
  const clf = await loadTextClassifier(model);
  try {
    const t = await loadTextData(opts.data, { onWarning: warn, strict: opts.strict });
    const known = new Map(clf.labels.map((l, i) => [l, i]));
    const unknown = t.classes.filter((c) => !known.has(c));
    if (unknown.length)
      throw new CliError(
        `Label(s) ${unknown.map((n) => `"${n}"`).join(', ')} of ${t.where} are not classes of model ${model} (its labels: ${clf.labels.join(', ')}). Fix those labels, or evaluate a model trained with these classes.`,
      );
    const map = t.classes.map((c) => known.get(c)!);
    const data = { source: t.where, root: path.dirname(t.where), paths: t.origins, labels: Int32Array.from(t.labels!, (l) => map[l]!) };
    const r = await classifyTexts(clf, t.texts, { batchSize: opts.batchSize });
    return { clf, data, r };
  } finally {
    await clf.session.release();
  }
}

/** Runs the evaluation and writes the --out files. */
async function evaluate(model: string, opts: EvalOptions, cmd: Command): Promise<EvalReport> {
  const warn = warner(cmd);
  const { classificationMetrics } = await import('../../report/metrics.js');
  const { graftVersion } = await import('../../util/version.js');
  const { tokenizerPath } = await import('../../data/tokenize.js');
  let data: EvalData;
  let r: Awaited<ReturnType<typeof classifyFiles>>;
  let clf: EvalModel;
  if (fs.existsSync(tokenizerPath(model))) ({ clf, data, r } = await classifyTextData(model, opts, warn));
  else ({ clf, data, r } = await classifyImageData(model, opts, warn));
  return metricsReport(model, opts, cmd, { clf, data, r, warn, classificationMetrics, graftVersion });
}

/** An image classifier on a labelled folder or manifest. */
async function classifyImageData(
  model: string,
  opts: EvalOptions,
  warn: (m: string) => void,
): Promise<{ clf: EvalModel; data: EvalData; r: Awaited<ReturnType<typeof classifyFiles>> }> {
  const clf = await loadClassifier(model, opts.preprocess);
  const { createProgress } = await import('../../util/progress.js');
  let data: EvalData;
  let r: Awaited<ReturnType<typeof classifyFiles>>;
  try {
    if (!clf.hasLabels) warn(`model ${model} has no labels (model.json "labels" or metadata "graft.labels"); data classes must be named 0..k-1.`);
    data = await loadEvalData(opts.data, clf, warn, { allowOutside: opts.allowOutside });
    const progress = createProgress({ total: data.paths.length, label: 'eval', unit: 'img' });
    r = await classifyFiles(clf, data.paths, {
      batchSize: opts.batchSize,
      strict: opts.strict,
      onWarning: warn,
      failNote: 'left out of the metrics',
      onBatch: (n) => progress.tick(n),
    });
    progress.done();
  } finally {
    await clf.session.release();
  }
  return { clf, data, r };
}

/** The metrics of classified data, and the --out files. */
async function metricsReport(
  model: string,
  opts: EvalOptions,
  cmd: Command,
  x: {
    clf: EvalModel;
    data: EvalData;
    r: Awaited<ReturnType<typeof classifyFiles>>;
    warn: (m: string) => void;
    classificationMetrics: typeof import('../../report/metrics.js').classificationMetrics;
    graftVersion: () => string;
  },
): Promise<EvalReport> {
  const { clf, data, r, warn, classificationMetrics, graftVersion } = x;
  const k = r.classes;
  const keep = data.paths.map((_, i) => i).filter((i) => !r.failed.has(i));
  if (keep.length === 0)
    throw new CliError(`None of the ${data.paths.length} images of ${data.source} could be decoded; check the files (see the warnings above).`);
  const probs = new Float32Array(keep.length * k);
  keep.forEach((i, j) => void probs.set(r.probabilities.subarray(i * k, (i + 1) * k), j * k));
  const labels = Int32Array.from(keep, (i) => data.labels[i]!);
  const m = classificationMetrics({ probabilities: probs, classes: k }, labels, { topK: opts.topK, bins: opts.bins });
  if (m.nonFinite)
    warn(
      `${m.nonFinite} of ${keep.length} images gave NaN or infinite outputs from model ${model}; they count as wrong in every metric. The model is broken for these inputs (retrain it, e.g. with a lower --lr).`,
    );
  const present = m.report.present;
  const report: EvalReport = {
    graft: graftVersion(),
    created: new Date().toISOString(),
    model: path.resolve(model),
    data: data.source,
    n: keep.length,
    skipped: [...r.failed].map(([i, error]) => ({ file: data.paths[i]!, error })),
    labels: clf.labels,
    nonFinite: m.nonFinite,
    accuracy: m.accuracy,
    topK: m.topK,
    nll: m.nll,
    ece: m.calibration.ece,
    mce: m.calibration.mce,
    calibration: { bins: opts.bins, binStats: m.calibration.bins },
    macro: m.report.macro,
    weighted: m.report.weighted,
    perClass: present.map((c) => ({ label: clf.labels[c]!, index: c, ...m.report.perClass[c]! })),
    confusion: { labels: present.map((c) => clf.labels[c]!), matrix: present.map((t) => present.map((p) => m.confusion[t]![p]!)) },
    temperature: clf.temperature,
    ...(clf.preprocess ? {} : { inputs: 'texts' as const }),
  };
  if (opts.threshold !== undefined) report.open = openSet(probs, k, labels, m.predicted, opts.threshold);
  if (opts.out) {
    report.files = await writeOutputs(opts.out, report, {
      keep,
      predicted: m.predicted,
      probs,
      k,
      paths: data.paths,
      root: data.root,
      labels: clf.labels,
      truth: labels,
      present,
      preprocess: clf.preprocess,
    });
    note(cmd, `wrote ${Object.values(report.files).join(', ')}`);
  }
  return report;
}

async function writeOutputs(
  out: string,
  report: EvalReport,
  p: {
    keep: number[];
    predicted: Int32Array;
    probs: Float32Array;
    k: number;
    paths: readonly string[];
    root: string;
    labels: string[];
    truth: Int32Array;
    present: number[];
    preprocess?: PreprocessConfig;
  },
): Promise<Record<string, string>> {
  const { misclassifiedCells } = await import('../../report/thumbnails.js');
  const { preprocessingCode, preprocessingSummary } = await import('../../report/recipe.js');
  const { atomicWrite } = await import('../../util/atomic-write.js');
  const { renderConfusion, renderReliability } = await import('../../report/confusion.js');
  const { renderHtmlReport } = await import('../../report/html.js');
  const [conf, rel] = await Promise.all([
    renderConfusion(report.confusion.matrix, report.confusion.labels),
    renderReliability(report.calibration.binStats, report.ece),
  ]);
  const files: Record<string, string> = {};
  const put = (key: string, name: string, bytes: string | Uint8Array | undefined) => {
    if (bytes === undefined) return;
    const f = path.join(out, name);
    atomicWrite(f, bytes);
    files[key] = f;
  };
  const rows = p.keep.map((i, j) => {
    const pred = p.predicted[j]!;
    const cells = [
      path.relative(p.root, p.paths[i]!) || p.paths[i]!,
      p.labels[p.truth[j]!]!,
      pred === -1 ? '' : p.labels[pred]!,
      pred === -1 ? 'NaN' : String(p.probs[j * p.k + pred]),
      String(pred === p.truth[j]),
    ];
    return cells.map(csvField).join(',');
  });
  put('predictions', 'predictions.csv', `file,label,predicted,confidence,correct\n${rows.join('\n')}\n`);
  put('confusionSvg', 'confusion.svg', conf.svg);
  put('confusionPng', 'confusion.png', conf.png);
  put('reliabilitySvg', 'reliability.svg', rel.svg);
  put('reliabilityPng', 'reliability.png', rel.png);
  const at = new Map(p.present.map((c, i) => [c, i]));
  // thumbnails of misclassified images (a text model's rows are file:line, listed in predictions.csv)
  const misclassified = !p.preprocess
    ? []
    : await misclassifiedCells(
        p.keep.map((i, j) => {
          const pred = p.predicted[j]!;
          return { file: p.paths[i]!, truth: at.get(p.truth[j]!) ?? -1, predicted: at.get(pred) ?? -1, p: pred === -1 ? 0 : p.probs[j * p.k + pred]! };
        }),
      );
  const curves = await trainingCurves(report.model);
  const preprocessing = p.preprocess
    ? { summary: preprocessingSummary(p.preprocess, report.temperature), code: preprocessingCode(p.preprocess, report.temperature) }
    : undefined;
  put('html', 'report.html', renderHtmlReport({ ...report, confusionSvg: conf.svg, reliabilitySvg: rel.svg, misclassified, preprocessing, ...curves }));
  files.json = path.join(out, 'eval.json');
  atomicWrite(files.json, `${JSON.stringify({ ...report, files }, null, 2)}\n`);
  return files;
}

/** The training curves and restored epochs of a model trained by graft (its sidecar's metrics.history and phases). */
async function trainingCurves(model: string): Promise<{ curvesSvg?: string; restored?: string[] }> {
  const { sidecarPath } = await import('../../train/sidecar.js');
  const { renderCurves, restoredLines } = await import('../../run/report.js');
  const file = sidecarPath(model);
  let j: { metrics?: { history?: unknown }; phases?: unknown } | undefined;
  try {
    j = file && fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : undefined;
  } catch {
    return {}; // loadClassifier already read and checked the sidecar; anything else in it is optional
  }
  const history = j?.metrics?.history;
  const phases = j?.phases;
  if (!Array.isArray(history) || history.length === 0 || !Array.isArray(phases)) return {};
  return { curvesSvg: await renderCurves(history, phases), restored: restoredLines(phases) };
}

/** Open-set numbers under a threshold: rows whose top probability is below it are "unknown". */
export function openSet(
  probs: Float32Array,
  k: number,
  truth: ArrayLike<number>,
  predicted: ArrayLike<number>,
  threshold: number,
): NonNullable<EvalReport['open']> {
  const n = truth.length;
  let unknown = 0;
  let right = 0;
  for (let i = 0; i < n; i++) {
    const pred = predicted[i]!;
    if (pred === -1 || !(probs[i * k + pred]! >= threshold)) unknown++;
    else if (pred === truth[i]) right++;
  }
  const covered = n - unknown;
  return { threshold, unknown, coverage: n ? covered / n : 0, coveredAccuracy: covered ? right / covered : 0 };
}

/** Human-readable rendering of an evaluation. */
export function formatEval(r: EvalReport): string[] {
  const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
  const f4 = (x: number) => x.toFixed(4);
  const kv = (k: string, v: string) => `  ${k.padEnd(16)}${v}`;
  const lines = [
    `${r.n} ${r.inputs ?? 'images'} of ${r.data}${r.skipped.length ? ` (${r.skipped.length} skipped: undecodable)` : ''}`,
    ...(r.nonFinite ? [`  ${r.nonFinite} images gave NaN (or infinite) outputs: counted as wrong`] : []),
    kv('accuracy', pct(r.accuracy)),
    ...(r.topK.k < r.labels.length ? [kv(`top-${r.topK.k} accuracy`, pct(r.topK.accuracy))] : []),
    ...(r.open
      ? [
          kv('unknown', `${r.open.unknown} of ${r.n} (top probability below ${r.open.threshold})`),
          kv('coverage', pct(r.open.coverage)),
          kv('covered acc', `${pct(r.open.coveredAccuracy)} (accuracy on the ${r.n - r.open.unknown} images not unknown)`),
        ]
      : []),
    kv('macro F1', f4(r.macro.f1)),
    kv('weighted F1', f4(r.weighted.f1)),
    kv('NLL', f4(r.nll)),
    kv('ECE', `${pct(r.ece)} (${r.calibration.bins} bins; max gap ${pct(r.mce)})`),
    '',
  ];
  const head = ['class', 'precision', 'recall', 'F1', 'support'];
  const body = [
    ...r.perClass.map((c) => [c.label, f4(c.precision), f4(c.recall), f4(c.f1), String(c.support)]),
    ['macro avg', f4(r.macro.precision), f4(r.macro.recall), f4(r.macro.f1), String(r.n)],
    ['weighted avg', f4(r.weighted.precision), f4(r.weighted.recall), f4(r.weighted.f1), String(r.n)],
  ];
  const w = head.map((h, j) => Math.max(h.length, ...body.map((b) => b[j]!.length)));
  const row = (cells: string[]) => `  ${cells.map((c, j) => (j === 0 ? c.padEnd(w[j]!) : c.padStart(w[j]!))).join('  ')}`;
  lines.push(row(head), ...body.map(row), '', 'confusion matrix (rows: true, columns: predicted):');
  lines.push(...confusionText(r.confusion.matrix, r.confusion.labels).map((l) => `  ${l}`));
  return lines;
}
