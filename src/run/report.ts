/**
 * The end of a training run, for people: which epoch early stopping restored, and report.html in the run
 * folder (curves from the history, the validation confusion matrix with its misclassified thumbnails,
 * per-class P/R/F1, the reliability diagram, the calibration and the preprocessing recipe).
 */
import path from 'node:path';
import type { PreprocessConfig } from '../data/preprocess.js';
import { renderConfusion, renderReliability } from '../report/confusion.js';
import { curvesSpec } from '../report/curves.js';
import { renderHtmlReport } from '../report/html.js';
import { classificationMetrics } from '../report/metrics.js';
import { renderVegaLite } from '../report/plot.js';
import { preprocessingCode, preprocessingSummary } from '../report/recipe.js';
import type { TemperatureFit } from '../report/temperature.js';
import { misclassifiedCells } from '../report/thumbnails.js';
import type { EpochMetrics } from '../train/callbacks.js';
import { metricMode } from '../train/callbacks.js';
import { atomicWrite } from '../util/atomic-write.js';

/**
 * The epoch (1-based, within the phase) whose weights early stopping restored: the best `monitor` value, a later
 * epoch counting as better only by more than `minDelta` (the rule of EarlyStopping).
 * @returns undefined when no epoch has the monitored metric.
 */
export function restoredEpochOf(history: readonly EpochMetrics[], monitor: string, minDelta = 0): { epoch: number; value: number } | undefined {
  const mode = metricMode(monitor);
  let best: { epoch: number; value: number } | undefined;
  history.forEach((m, i) => {
    const v = (m as Record<string, number>)[monitor];
    if (typeof v !== 'number' || Number.isNaN(v)) return;
    if (!best || (mode === 'min' ? v < best.value - minDelta : v > best.value + minDelta)) best = { epoch: i + 1, value: v };
  });
  return best;
}

/** What the train report shows. */
export interface TrainReportInput {
  run: string;
  model: string;
  classes: string[];
  history: Record<string, number | string>[];
  phases: { name: string; epochs: number; restoredEpoch?: number; monitor?: string }[];
  preprocess?: PreprocessConfig;
  temperature?: TemperatureFit;
  /** Calibrated validation predictions, with the image files when the data are files. */
  val?: { probabilities: Float32Array; labels: ArrayLike<number>; paths?: readonly string[]; source: string };
}

/** The restored-epoch lines of a summary (one per phase that early stopping restored). */
export function restoredLines(phases: TrainReportInput['phases']): string[] {
  return phases
    .filter((p) => p.restoredEpoch !== undefined)
    .map((p) => `${p.name}: early stopping restored epoch ${p.restoredEpoch} of ${p.epochs} (best ${p.monitor})`);
}

/** The training curves (SVG) of a history, with each phase's restored epoch marked (epochs counted across phases). */
export async function renderCurves(history: TrainReportInput['history'], phases: TrainReportInput['phases']): Promise<string> {
  let offset = 0;
  const restoredAcross: number[] = [];
  for (const p of phases) {
    if (p.restoredEpoch !== undefined) restoredAcross.push(offset + p.restoredEpoch);
    offset += p.epochs;
  }
  return (await renderVegaLite(curvesSpec(history, restoredAcross), { format: 'svg' })).svg;
}

/** Writes `<run>/report.html` and returns its path. */
export async function writeTrainReport(r: TrainReportInput): Promise<string> {
  const K = r.classes.length;
  const curves = { svg: await renderCurves(r.history, r.phases) };
  const all = Array.from({ length: K }, (_, i) => i);
  const labels = r.val ? Int32Array.from(r.val.labels) : new Int32Array(0);
  const m = classificationMetrics({ probabilities: r.val?.probabilities ?? new Float32Array(0), classes: K }, labels, { topK: 5 });
  const [conf, rel] = await Promise.all([renderConfusion(m.confusion, r.classes), renderReliability(m.calibration.bins, m.calibration.ece)]);
  const paths = r.val?.paths;
  const misclassified = paths
    ? await misclassifiedCells(
        paths.map((file, i) => ({
          file,
          truth: labels[i]!,
          predicted: m.predicted[i]!,
          p: m.predicted[i]! >= 0 ? r.val!.probabilities[i * K + m.predicted[i]!]! : 0,
        })),
      )
    : undefined;
  const html = renderHtmlReport({
    title: `graft training report: ${path.basename(r.run)}`,
    model: r.model,
    data: r.val ? `${r.val.source} (validation split, ${labels.length} images)` : 'no validation data',
    n: labels.length,
    accuracy: m.accuracy,
    topK: m.topK,
    nll: m.nll,
    ece: m.calibration.ece,
    macro: m.report.macro,
    weighted: m.report.weighted,
    perClass: all.map((c) => ({ label: r.classes[c]!, ...m.report.perClass[c]! })),
    confusion: { labels: r.classes, matrix: m.confusion },
    skipped: [],
    confusionSvg: conf.svg,
    reliabilitySvg: rel.svg,
    created: new Date().toISOString(),
    curvesSvg: curves.svg,
    restored: restoredLines(r.phases),
    misclassified,
    preprocessing: r.preprocess
      ? { summary: preprocessingSummary(r.preprocess, r.temperature?.temperature), code: preprocessingCode(r.preprocess, r.temperature?.temperature) }
      : undefined,
    calibrationFit: r.temperature,
  });
  const file = path.join(r.run, 'report.html');
  atomicWrite(file, html);
  return file;
}
