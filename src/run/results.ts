/**
 * What a finished run shows a person, from the files the run wrote: the validation predictions
 * (predictions.jsonl, calibrated probabilities) and the model's sidecar. The metrics come from report/metrics.ts
 * and the charts are report/'s Vega-Lite specs, so a UI draws exactly what report.html shows.
 */
import fs from 'node:fs';
import path from 'node:path';
import { confusionSpec, reliabilitySpec } from '../report/confusion.js';
import { curvesSpec } from '../report/curves.js';
import { type ClassScores, classificationMetrics } from '../report/metrics.js';
import type { VegaLiteSpec } from '../report/plot.js';
import { readJsonl } from '../util/jsonl.js';
import { readRun } from './runs.js';

/** One validation image with its prediction. */
export interface PredictionRow {
  path: string;
  label: string;
  pred: string;
  /** Calibrated probability of each class, in the run's class order. */
  probabilities: number[];
}

/** A misclassified validation image, with its loss (−ln p(true class)). */
export interface Mistake {
  path: string;
  label: string;
  pred: string;
  /** Probability of the predicted class. */
  p: number;
  loss: number;
}

/** The look at a finished run. */
export interface RunResults {
  name: string;
  classes: string[];
  /** Validation images. */
  n: number;
  accuracy: number;
  nll: number;
  ece: number;
  perClass: ({ label: string } & ClassScores)[];
  macro: { precision: number; recall: number; f1: number };
  /** Rows true, columns predicted. */
  confusion: number[][];
  /** Off-diagonal cells, most images first. */
  confusedPairs: { label: string; pred: string; count: number }[];
  /** Every misclassified image, highest loss first. */
  mistakes: Mistake[];
  charts: { confusion: VegaLiteSpec; reliability: VegaLiteSpec; curves: VegaLiteSpec };
  /** Files of the run a person downloads (those that exist), by kind. */
  files: Partial<Record<'onnx' | 'sidecar' | 'report' | 'web', string>>;
}

/**
 * Reads the results of the finished run in `folder`.
 * @throws naming the folder when the run has not finished or kept no validation predictions (no val data, or MNIST arrays).
 */
export function runResults(folder: string): RunResults {
  const info = readRun(folder);
  if (info?.kind === 'adapt')
    throw new Error(`${folder} is a graft adapt run: it keeps no validation predictions to look at; see its methods compared (adaptResults) or its report.md.`);
  if (info?.state !== 'finished') throw new Error(`${folder} holds no finished run; wait for it to finish, or resume it.`);
  const sidecar = JSON.parse(fs.readFileSync(path.join(folder, 'model.json'), 'utf8')) as { labels?: string[] };
  const classes = sidecar.labels ?? [];
  const predFile = path.join(folder, 'predictions.jsonl');
  if (!fs.existsSync(predFile))
    throw new Error(`${folder} has no predictions.jsonl: the run had no validation images to look at. Train with data.valSplit > 0 or data.val.`);
  const rows = readJsonl<PredictionRow>(predFile);
  const K = classes.length;
  const index = new Map(classes.map((c, i) => [c, i]));
  const labels = Int32Array.from(rows, (r) => index.get(r.label) ?? -1);
  const probabilities = new Float32Array(rows.length * K);
  rows.forEach((r, i) => void probabilities.set(r.probabilities, i * K));
  const m = classificationMetrics({ probabilities, classes: K }, labels, { topK: 5 });
  const confusedPairs = m.confusion
    .flatMap((row, t) => row.map((count, p) => ({ label: classes[t]!, pred: classes[p]!, count, off: t !== p })))
    .filter((c) => c.off && c.count > 0)
    .sort((a, b) => b.count - a.count)
    .map(({ label, pred, count }) => ({ label, pred, count }));
  const mistakes = rows
    .map((r, i) => ({ r, t: labels[i]!, p: m.predicted[i]! }))
    .filter(({ t, p }) => p >= 0 && t >= 0 && p !== t)
    .map(({ r, t, p }) => ({ path: r.path, label: r.label, pred: classes[p]!, p: r.probabilities[p]!, loss: -Math.log(Math.max(r.probabilities[t]!, 1e-12)) }))
    .sort((a, b) => b.loss - a.loss);
  const files: RunResults['files'] = {};
  for (const [kind, name] of [
    ['onnx', 'model.onnx'],
    ['sidecar', 'model.json'],
    ['report', 'report.html'],
  ] as const)
    if (fs.existsSync(path.join(folder, name))) files[kind] = name;
  if (files.onnx) files.web = 'web.zip'; // the browser bundle, made from model.onnx on request (graft export --web)
  return {
    name: info.name,
    classes,
    n: m.n,
    accuracy: m.accuracy,
    nll: m.nll,
    ece: m.calibration.ece,
    perClass: classes.map((label, c) => ({ label, ...m.report.perClass[c]! })),
    macro: m.report.macro,
    confusion: m.confusion,
    confusedPairs,
    mistakes,
    charts: {
      confusion: confusionSpec(m.confusion, classes),
      reliability: reliabilitySpec(m.calibration.bins, m.calibration.ece),
      curves: curvesSpec(info.history),
    },
    files,
  };
}
