/**
 * Training curves: loss and accuracy per epoch (train and val), one Vega-Lite chart with a panel per metric,
 * rendered offline to SVG by ./plot.ts. Epochs are numbered across phases.
 */
import type { VegaLiteSpec } from './plot.js';

/** One point of a curve. */
interface Point {
  epoch: number;
  metric: 'loss' | 'accuracy';
  split: string;
  value: number;
  phase: string;
}

/** The points of `history` (metrics.jsonl rows: phase, train_loss, train_acc, val_loss, val_acc, …). */
export function curvePoints(history: readonly Record<string, number | string>[]): Point[] {
  const out: Point[] = [];
  history.forEach((row, i) => {
    for (const [key, v] of Object.entries(row)) {
      const m = /^(train|val)_(loss|acc)$/.exec(key);
      if (!m || typeof v !== 'number' || !Number.isFinite(v)) continue;
      out.push({ epoch: i + 1, metric: m[2] === 'loss' ? 'loss' : 'accuracy', split: m[1]!, value: v, phase: String(row.phase ?? '') });
    }
  });
  return out;
}

/** Loss and accuracy curves with a legend for train/val; `restored` epochs (1-based, across phases) are marked. */
export function curvesSpec(history: readonly Record<string, number | string>[], restored: readonly number[] = []): VegaLiteSpec {
  const values = curvePoints(history);
  const line = (metric: Point['metric']) => ({
    width: 300,
    height: 200,
    title: metric,
    layer: [
      {
        data: { values: values.filter((p) => p.metric === metric) },
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'epoch', type: 'quantitative', title: 'epoch', axis: { tickMinStep: 1 } },
          y: { field: 'value', type: 'quantitative', title: metric, scale: { zero: metric === 'accuracy' } },
          color: { field: 'split', type: 'nominal', title: 'data', scale: { domain: ['train', 'val'], range: ['#4c78a8', '#f58518'] } },
          tooltip: [{ field: 'phase' }, { field: 'epoch' }, { field: 'split' }, { field: 'value', format: '.4f' }],
        },
      },
      ...(restored.length
        ? [
            {
              data: { values: restored.map((epoch) => ({ epoch, what: 'restored epoch' })) },
              mark: { type: 'rule', strokeDash: [4, 3] },
              encoding: {
                x: { field: 'epoch', type: 'quantitative' },
                strokeDash: { field: 'what', type: 'nominal', title: null, legend: { orient: 'bottom' } },
              },
            },
          ]
        : []),
    ],
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: 'Training curves', anchor: 'start' },
    hconcat: [line('loss'), line('accuracy')],
    config: { font: 'sans-serif' },
  };
}

/** Several runs' curves overlaid, for comparing them: colour per run, solid train and dashed val lines. */
export function compareCurvesSpec(runs: readonly { name: string; history: readonly Record<string, number | string>[] }[]): VegaLiteSpec {
  const values = runs.flatMap((r) => curvePoints(r.history).map((p) => ({ ...p, run: r.name })));
  const line = (metric: Point['metric']) => ({
    width: 300,
    height: 200,
    title: metric,
    data: { values: values.filter((p) => p.metric === metric) },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'epoch', type: 'quantitative', title: 'epoch', axis: { tickMinStep: 1 } },
      y: { field: 'value', type: 'quantitative', title: metric, scale: { zero: metric === 'accuracy' } },
      color: { field: 'run', type: 'nominal', title: 'run' },
      strokeDash: {
        field: 'split',
        type: 'nominal',
        title: 'data',
        scale: {
          domain: ['train', 'val'],
          range: [
            [1, 0],
            [4, 3],
          ],
        },
      },
      detail: { field: 'split' },
      tooltip: [{ field: 'run' }, { field: 'phase' }, { field: 'epoch' }, { field: 'split' }, { field: 'value', format: '.4f' }],
    },
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: 'Training curves', anchor: 'start' },
    hconcat: [line('loss'), line('accuracy')],
    config: { font: 'sans-serif' },
  };
}
