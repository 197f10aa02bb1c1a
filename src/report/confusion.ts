/**
 * Confusion matrices and reliability diagrams for humans: an aligned text table with class names, and
 * Vega-Lite charts (confusion heatmap, reliability diagram) rendered offline to SVG and PNG via ./plot.ts.
 */

import type { CalibrationBin } from './metrics.js';
import { renderVegaLite } from './plot.js';

/** A Vega-Lite specification (plain JSON). */
export type VegaLiteSpec = Record<string, unknown>;

/** A rendered chart: SVG text and PNG bytes. */
export interface Chart {
  svg: string;
  png?: Buffer;
}

/** Options of {@link confusionText}. */
export interface ConfusionTextOptions {
  /** Beyond this many classes the table is replaced by a list of the most frequent confusions (default 30). */
  maxClasses?: number;
  /** How many confusions to list in that case (default 20). */
  topConfusions?: number;
}

function checkSquare(matrix: readonly (readonly number[])[], names: readonly string[], fn: string): void {
  if (matrix.length !== names.length || matrix.some((r) => r.length !== names.length))
    throw new Error(`${fn}: the matrix must be ${names.length} × ${names.length} to match the ${names.length} class names; pass one name per row.`);
}

/**
 * The confusion matrix as an aligned text table: one row per true class, one column per predicted class,
 * class names as headers. For more than `maxClasses` classes, the most frequent off-diagonal pairs instead.
 */
export function confusionText(matrix: readonly (readonly number[])[], names: readonly string[], opts: ConfusionTextOptions = {}): string[] {
  checkSquare(matrix, names, 'confusionText');
  const k = names.length;
  if (k > (opts.maxClasses ?? 30)) {
    const pairs: { t: number; p: number; n: number }[] = [];
    for (let t = 0; t < k; t++) for (let p = 0; p < k; p++) if (t !== p && matrix[t]![p]! > 0) pairs.push({ t, p, n: matrix[t]![p]! });
    pairs.sort((a, b) => b.n - a.n || a.t - b.t || a.p - b.p);
    const top = pairs.slice(0, opts.topConfusions ?? 20);
    if (top.length === 0) return [`no confusions among ${k} classes (every prediction is right)`];
    const w = Math.max(...top.map((x) => names[x.t]!.length), 10);
    return [
      `${k} classes: too many for a table; the ${top.length} most frequent confusions (true → predicted):`,
      ...top.map((x) => `  ${names[x.t]!.padEnd(w)} → ${names[x.p]}  ${x.n}`),
    ];
  }
  const corner = 'true \\ predicted';
  const first = Math.max(corner.length, ...names.map((n) => n.length));
  const widths = names.map((n, j) => Math.max(n.length, ...matrix.map((r) => String(r[j]).length)));
  const lines = [`${corner.padEnd(first)}  ${names.map((n, j) => n.padStart(widths[j]!)).join('  ')}`];
  matrix.forEach((row, i) => void lines.push(`${names[i]!.padEnd(first)}  ${row.map((v, j) => String(v).padStart(widths[j]!)).join('  ')}`));
  return lines;
}

/**
 * A Vega-Lite heatmap of a confusion matrix: cell colour = fraction of the true class (row-normalised, so
 * the diagonal reads as per-class recall), cell text = count.
 */
export function confusionSpec(matrix: readonly (readonly number[])[], names: readonly string[], title = 'Confusion matrix'): VegaLiteSpec {
  checkSquare(matrix, names, 'confusionSpec');
  const values: { true: string; predicted: string; count: number; rate: number }[] = [];
  matrix.forEach((row, t) => {
    const total = row.reduce((a, b) => a + b, 0);
    row.forEach((count, p) => void values.push({ true: names[t]!, predicted: names[p]!, count, rate: total ? count / total : 0 }));
  });
  const cell = names.length > 40 ? 12 : names.length > 15 ? 20 : 36;
  const side = Math.max(120, cell * names.length);
  const order = [...names];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, anchor: 'start', subtitle: 'colour: fraction of the row' },
    data: { values },
    width: side,
    height: side,
    encoding: {
      x: { field: 'predicted', type: 'nominal', sort: order, title: 'predicted', axis: { labelAngle: -45, labelLimit: 120 } },
      y: { field: 'true', type: 'nominal', sort: order, title: 'true', axis: { labelLimit: 120 } },
    },
    layer: [
      {
        mark: { type: 'rect', stroke: '#ffffff', strokeWidth: 0.5 },
        encoding: {
          color: { field: 'rate', type: 'quantitative', title: 'fraction', scale: { scheme: 'blues', domain: [0, 1] } },
        },
      },
      ...(names.length <= 25
        ? [
            {
              mark: { type: 'text', fontSize: cell > 20 ? 11 : 8 },
              encoding: {
                text: { field: 'count', type: 'quantitative' },
                color: { condition: { test: 'datum.rate > 0.5', value: '#ffffff' }, value: '#111111' },
              },
            },
          ]
        : []),
    ],
    config: { view: { stroke: null }, font: 'sans-serif' },
  };
}

/**
 * A Vega-Lite reliability diagram: per confidence bin, a bar of the accuracy and a red band for the gap to
 * the mean confidence, against the diagonal of perfect calibration.
 * @param ece shown in the title.
 */
export function reliabilitySpec(bins: readonly CalibrationBin[], ece: number, title = 'Reliability diagram'): VegaLiteSpec {
  const used = bins.filter((b) => b.count > 0).map((b) => ({ ...b, lo: round(b.lo), hi: round(b.hi) }));
  const total = bins.reduce((a, b) => a + b.count, 0);
  const axis = { scale: { domain: [0, 1] }, type: 'quantitative' as const };
  // one colour scale across the layers gives the chart its legend
  const key = (datum: string) => ({
    datum,
    type: 'nominal' as const,
    scale: { domain: ['accuracy', 'gap to confidence', 'perfect calibration'], range: ['#4c78a8', '#e45756', '#888888'] },
    legend: { title: null, orient: 'bottom' },
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, anchor: 'start', subtitle: `ECE ${(ece * 100).toFixed(2)}% over ${bins.length} bins, ${total} samples` },
    width: 260,
    height: 260,
    layer: [
      {
        data: { values: used },
        mark: { type: 'bar', stroke: '#1f3b5a', strokeWidth: 0.5 },
        encoding: {
          color: key('accuracy'),
          x: { field: 'lo', ...axis, title: 'confidence (max probability)' },
          x2: { field: 'hi' },
          y: { field: 'accuracy', ...axis, title: 'accuracy' },
          y2: { datum: 0 },
        },
      },
      {
        data: { values: used },
        mark: { type: 'bar', opacity: 0.35 },
        encoding: {
          color: key('gap to confidence'),
          x: { field: 'lo', ...axis },
          x2: { field: 'hi' },
          y: { field: 'confidence', ...axis },
          y2: { field: 'accuracy' },
        },
      },
      {
        data: {
          values: [
            { x: 0, y: 0 },
            { x: 1, y: 1 },
          ],
        },
        mark: { type: 'line', strokeDash: [4, 4] },
        encoding: { x: { field: 'x', ...axis }, y: { field: 'y', ...axis }, color: key('perfect calibration') },
      },
    ],
    config: { font: 'sans-serif' },
  };
}

function round(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

/** Renders the confusion heatmap to SVG and PNG. */
export function renderConfusion(matrix: readonly (readonly number[])[], names: readonly string[], title?: string): Promise<Chart> {
  return renderVegaLite(confusionSpec(matrix, names, title));
}

/** Renders the reliability diagram to SVG and PNG. */
export function renderReliability(bins: readonly CalibrationBin[], ece: number, title?: string): Promise<Chart> {
  return renderVegaLite(reliabilitySpec(bins, ece, title));
}
