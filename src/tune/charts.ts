/**
 * A tune study as charts (Vega-Lite specs, drawn by whoever shows them: graft ui): each trial's objective with
 * the best-so-far line, and the parameters of every trial in parallel coordinates (coloured by objective; pruned
 * and failed trials drawn dashed). Built from `summarize`'s {@link StudySummary}. Also where the studies are.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { VegaLiteSpec } from '../report/plot.js';
import { type StudySummary, summarize } from './report.js';
import { readStudy } from './storage.js';

/** The tune studies (`study.jsonl` logs) under `dir`, at most `depth` folders down, by path. */
export function listStudies(dir: string, depth = 3): string[] {
  const out: string[] = [];
  const walk = (d: string, left: number) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.isFile() && e.name === 'study.jsonl') out.push(path.join(d, e.name));
      else if (e.isDirectory() && left > 0) walk(path.join(d, e.name), left - 1);
    }
  };
  walk(dir, depth);
  return out.sort();
}

/** A study to show: its summary (trials, best, importances) and its charts. */
export interface StudyView {
  summary: StudySummary;
  charts: { bestSoFar: VegaLiteSpec; parallel?: VegaLiteSpec };
}

/** Reads the study log `file` (`graft tune`'s study.jsonl) for showing. */
export function studyView(file: string): StudyView {
  const summary = summarize(file, readStudy(file));
  return { summary, charts: { bestSoFar: bestSoFarSpec(summary), parallel: parallelSpec(summary) } };
}

/** Trial value and the best value so far, by trial number, coloured by state. */
export function bestSoFarSpec(s: StudySummary): VegaLiteSpec {
  const values: { trial: number; value: number; state: string }[] = [];
  const best: { trial: number; best: number }[] = [];
  let b: number | undefined;
  for (const t of s.trials) {
    if (t.value === undefined || !Number.isFinite(t.value)) continue;
    values.push({ trial: t.trial, value: t.value, state: t.state });
    if (t.state === 'complete' && (b === undefined || (s.direction === 'maximize' ? t.value > b : t.value < b))) b = t.value;
    if (b !== undefined) best.push({ trial: t.trial, best: b });
  }
  const x = { field: 'trial', type: 'quantitative', title: 'trial', axis: { tickMinStep: 1 } };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: `${s.metric} by trial`, anchor: 'start', subtitle: `${s.direction}; line: best so far` },
    width: 360,
    height: 200,
    layer: [
      {
        data: { values },
        mark: { type: 'point', filled: true },
        encoding: {
          x,
          y: { field: 'value', type: 'quantitative', title: s.metric, scale: { zero: false } },
          color: { field: 'state', type: 'nominal', scale: { domain: ['complete', 'pruned', 'failed', 'interrupted'] } },
          tooltip: [{ field: 'trial' }, { field: 'state' }, { field: 'value', format: '.4f' }],
        },
      },
      { data: { values: best }, mark: { type: 'line', interpolate: 'step-after', color: '#333' }, encoding: { x, y: { field: 'best', type: 'quantitative' } } },
    ],
    config: { font: 'sans-serif' },
  };
}

/**
 * The numeric parameters of every trial with a value, each axis scaled to its own range, one line per trial.
 * @returns undefined when the study has no numeric parameter that varies.
 */
export function parallelSpec(s: StudySummary): VegaLiteSpec | undefined {
  const keys = [...new Set(s.trials.flatMap((t) => Object.keys(t.params)))].filter((k) => {
    const xs = s.trials.map((t) => t.params[k]).filter((v): v is number => typeof v === 'number');
    return xs.length === s.trials.length && new Set(xs).size > 1;
  });
  if (!keys.length) return undefined;
  // a parameter spanning two decades or more (an LR) is drawn on a log axis
  const axis = Object.fromEntries(
    keys.map((k) => {
      const xs = s.trials.map((t) => t.params[k] as number);
      const [lo, hi] = [Math.min(...xs), Math.max(...xs)];
      const f = lo > 0 && hi / lo >= 100 ? Math.log : (v: number) => v;
      return [k, { f, lo: f(lo), hi: f(hi) }];
    }),
  );
  const values = s.trials
    .filter((t) => t.value !== undefined && Number.isFinite(t.value))
    .flatMap((t) =>
      keys.map((k, i) => {
        const { f, lo, hi } = axis[k]!;
        const v = t.params[k] as number;
        return { trial: t.trial, state: t.state, value: t.value, param: k, order: i, raw: v, scaled: hi > lo ? (f(v) - lo) / (hi - lo) : 0.5 };
      }),
    );
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'Parameters of each trial',
      anchor: 'start',
      subtitle: 'each axis from its smallest to its largest value (log for a span of 100× or more); dashed: pruned or failed',
    },
    width: Math.max(240, 120 * keys.length),
    height: 220,
    data: { values },
    mark: { type: 'line', point: true, opacity: 0.7 },
    encoding: {
      x: { field: 'param', type: 'nominal', sort: keys, title: null },
      y: { field: 'scaled', type: 'quantitative', title: null, axis: null },
      detail: { field: 'trial' },
      color: { field: 'value', type: 'quantitative', title: s.metric },
      strokeDash: { condition: { test: "datum.state !== 'complete'", value: [4, 3] }, value: [1, 0] },
      tooltip: [
        { field: 'trial' },
        { field: 'state' },
        { field: 'param' },
        { field: 'raw', title: 'value' },
        { field: 'value', title: s.metric, format: '.4f' },
      ],
    },
    config: { font: 'sans-serif', axis: { domain: false } },
  };
}
