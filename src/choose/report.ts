/**
 * A ranking's outputs: the text table `graft rank` prints, the Vega-Lite chart (one panel per score, a bar
 * per backbone, rendered offline to SVG and PNG by report/plot.ts) and `rank.json`.
 */
import path from 'node:path';
import type { VegaLiteSpec } from '../report/plot.js';
import { atomicWrite } from '../util/atomic-write.js';
import type { RankResult } from './rank.js';
import { SCORE_NAMES, SCORE_TITLES } from './scores.js';

/** The ranking table: one row per backbone, best LogME first, each score with its rank in brackets. */
export function formatRanking(r: RankResult): string[] {
  const rows = [...r.backbones].sort((a, b) => (b.scores?.logme ?? -Infinity) - (a.scores?.logme ?? -Infinity));
  const head = ['backbone', 'dims', ...SCORE_NAMES, 'seconds'];
  const fmt = (s: (typeof SCORE_NAMES)[number], v: number) => (s === 'logme' || s === 'sfda' ? v.toFixed(4) : `${(v * 100).toFixed(1)}%`);
  const body = rows.map((b) => [
    b.backbone,
    b.dims === undefined ? '-' : String(b.dims),
    ...SCORE_NAMES.map((s) =>
      !b.scores ? 'error' : Number.isFinite(b.scores[s]) ? `${fmt(s, b.scores[s])} (${r.ranking[s].indexOf(b.backbone) + 1})` : 'n/a',
    ),
    b.seconds.toFixed(1),
  ]);
  const w = head.map((h, j) => Math.max(h.length, ...body.map((c) => c[j]!.length)));
  const line = (cells: string[]) => cells.map((c, j) => (j === 0 ? c.padEnd(w[j]!) : c.padStart(w[j]!))).join('  ');
  const out = [
    `${r.n} ${r.unit ?? 'images'} of ${r.data} (${r.classes.length} classes, class-stratified subsample, seed ${r.seed}); higher is better, (rank) per score`,
    '',
    line(head),
    ...body.map(line),
  ];
  const failed = r.backbones.filter((b) => b.error);
  if (failed.length) out.push('', ...failed.map((b) => `${b.backbone}: ${b.error}`));
  out.push('', 'scores: logme = LogME, sfda = SFDA, knn = kNN accuracy (leave-one-out, cosine), probe = linear-probe accuracy (held out)');
  return out;
}

/** The chart: one panel per score (its own y scale), a bar per scored backbone. */
export function rankingPlotSpec(r: RankResult): VegaLiteSpec {
  const values = r.backbones.flatMap((b) =>
    SCORE_NAMES.flatMap((s) => (b.scores && Number.isFinite(b.scores[s]) ? [{ backbone: b.backbone, score: SCORE_TITLES[s], value: b.scores[s] }] : [])),
  );
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `${r.unit === 'texts' ? 'Text encoders' : 'Backbones'} ranked on ${path.basename(r.data)} (${r.n} ${r.unit ?? 'images'}, no fine-tuning)`,
    data: { values },
    facet: { column: { field: 'score', type: 'nominal', title: null, sort: SCORE_NAMES.map((s) => SCORE_TITLES[s]) } },
    spec: {
      width: 160,
      height: 160,
      mark: 'bar',
      encoding: {
        x: { field: 'backbone', type: 'nominal', sort: r.backbones.map((b) => b.backbone), axis: { labelAngle: -40 }, title: null },
        y: { field: 'value', type: 'quantitative', title: null },
        color: { field: 'backbone', type: 'nominal', legend: null },
        tooltip: [{ field: 'backbone' }, { field: 'value', format: '.4f' }],
      },
    },
    resolve: { scale: { y: 'independent' } },
  };
}

/**
 * Writes `rank.json`, `rank.svg` and `rank.png` into `dir` (atomically).
 * @returns the files written, by kind.
 */
export async function writeRanking(r: RankResult, dir: string): Promise<Record<string, string>> {
  const { renderVegaLite } = await import('../report/plot.js');
  const chart = await renderVegaLite(rankingPlotSpec(r));
  const files = { json: path.join(dir, 'rank.json'), svg: path.join(dir, 'rank.svg'), png: path.join(dir, 'rank.png') };
  atomicWrite(files.svg, chart.svg);
  if (chart.png) atomicWrite(files.png, chart.png);
  atomicWrite(files.json, `${JSON.stringify({ ...r, files }, null, 2)}\n`);
  return files;
}
