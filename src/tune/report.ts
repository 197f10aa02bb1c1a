/**
 * What `graft tune show` prints: a table of trials, the best configuration, and parameter importances
 * estimated with a "fANOVA-lite": for each parameter, complete trials are binned by its value (per choice,
 * or in quantile bins on the internal scale) and the importance is the variance of the per-bin mean
 * objective as a share of the objective's total variance — normalised so the importances sum to 1.
 */
import { canonicalJson, choiceIndex, isNumeric, type JsonValue, type SearchSpace, toInternal } from './space.js';
import type { StudyContents } from './storage.js';
import { bestTrial, stateCounts } from './study.js';
import { type Direction, lastStep, type TrialRecord } from './types.js';

/** A parameter's estimated share of the objective's variance. */
export interface Importance {
  param: string;
  /** Normalised importance (the importances of a study sum to 1). */
  importance: number;
  /** Unnormalised: between-bin variance / total variance. */
  explained: number;
}

/** Bin index of every value of one parameter among `trials`. */
function bins(space: SearchSpace, name: string, trials: readonly TrialRecord[], maxBins: number): number[] {
  const p = space[name]!;
  if (p.type === 'categorical') return trials.map((t) => choiceIndex(p, t.params[name]));
  if (!isNumeric(p)) return trials.map(() => 0);
  const xs = trials.map((t) => toInternal(p, Number(t.params[name])));
  const sorted = [...xs].sort((a, b) => a - b);
  const distinct = new Set(sorted).size;
  const nb = Math.max(1, Math.min(maxBins, distinct));
  const edges = Array.from({ length: nb - 1 }, (_, i) => sorted[Math.floor(((i + 1) * sorted.length) / nb)]!);
  return xs.map((x) => edges.filter((e) => x >= e).length);
}

/**
 * Parameter importances from the complete trials (empty with fewer than 4 of them, or when every value is equal).
 * @param maxBins bins per numeric parameter (default 4).
 */
export function importances(space: SearchSpace, trials: readonly TrialRecord[], maxBins = 4): Importance[] {
  const done = trials.filter((t) => t.state === 'complete' && t.value !== undefined && Number.isFinite(t.value));
  if (done.length < 4) return [];
  const ys = done.map((t) => t.value!);
  const mean = ys.reduce((a, b) => a + b, 0) / ys.length;
  const total = ys.reduce((a, y) => a + (y - mean) ** 2, 0) / ys.length;
  if (!(total > 0)) return [];
  const out: Importance[] = [];
  for (const name of Object.keys(space)) {
    if (space[name]!.type === 'fixed') continue;
    const b = bins(space, name, done, maxBins);
    const sums = new Map<number, { s: number; n: number }>();
    b.forEach((k, i) => {
      const e = sums.get(k) ?? { s: 0, n: 0 };
      e.s += ys[i]!;
      e.n++;
      sums.set(k, e);
    });
    let between = 0;
    for (const { s, n } of sums.values()) between += n * (s / n - mean) ** 2;
    out.push({ param: name, explained: between / ys.length / total, importance: 0 });
  }
  const sum = out.reduce((a, i) => a + i.explained, 0);
  for (const i of out) i.importance = sum > 0 ? i.explained / sum : 0;
  return out.sort((a, b) => b.importance - a.importance);
}

/** A number with 4 significant digits (integers as is). */
export function fmt(v: unknown): string {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : Math.abs(v) < 1e-3 && v !== 0 ? v.toExponential(2) : String(Number(v.toPrecision(4)));
  return canonicalJson(v);
}

/** "lr=0.01 hidden=[128]" for the non-fixed parameters. */
export function formatParams(space: SearchSpace, params: Record<string, JsonValue>): string {
  return Object.keys(space)
    .filter((k) => space[k]!.type !== 'fixed')
    .map((k) => `${k}=${fmt(params[k])}`)
    .join(' ');
}

/** The summary `graft tune show` prints (and emits as JSON). */
export interface StudySummary {
  study: string;
  direction: Direction;
  metric: string;
  counts: ReturnType<typeof stateCounts>;
  best?: { trial: number; value: number; params: Record<string, JsonValue> };
  importances: Importance[];
  trials: {
    trial: number;
    state: string;
    value?: number;
    epochs: number;
    seconds?: number;
    attempts: number;
    params: Record<string, JsonValue>;
    error?: string;
  }[];
}

/** Summarises a study log. */
export function summarize(file: string, s: StudyContents): StudySummary {
  const trials = [...s.trials.values()].sort((a, b) => a.id - b.id);
  const best = bestTrial(trials, s.identity.direction);
  return {
    study: file,
    direction: s.identity.direction,
    metric: s.identity.metric,
    counts: stateCounts(trials),
    best: best ? { trial: best.id, value: best.value!, params: best.params } : undefined,
    importances: importances(s.identity.space, trials),
    trials: trials.map((t) => ({
      trial: t.id,
      state: t.state === 'running' ? 'interrupted' : t.state,
      value: t.value,
      epochs: lastStep(t),
      seconds: t.seconds,
      attempts: t.attempt,
      params: t.params,
      error: t.error,
    })),
  };
}

/** The text table of a summary. */
export function formatSummary(sum: StudySummary, space: SearchSpace, opts: { limit?: number } = {}): string[] {
  const c = sum.counts;
  const lines = [
    `study ${sum.study}: ${sum.trials.length} trials (${c.complete} complete, ${c.pruned} pruned, ${c.failed} failed${c.running ? `, ${c.running} interrupted` : ''}); ${sum.direction} ${sum.metric}`,
    '',
  ];
  const rows = [['#', 'state', sum.metric, 'epochs', 'time', 'params']];
  const shown = opts.limit ? sum.trials.slice(-opts.limit) : sum.trials;
  for (const t of shown) {
    const note = [t.attempts > 1 ? `(re-run: attempt ${t.attempts})` : '', t.error ? `error: ${t.error.slice(0, 120)}` : ''].filter(Boolean).join(' ');
    rows.push([
      String(t.trial),
      t.state,
      t.value === undefined ? '-' : fmt(t.value),
      String(t.epochs || '-'),
      t.seconds === undefined ? '-' : `${t.seconds.toFixed(1)}s`,
      `${formatParams(space, t.params)}${note ? `  ${note}` : ''}`,
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (i === rows[0]!.length - 1 ? 0 : r[i]!.length))));
  for (const r of rows) lines.push(r.map((v, i) => (i === r.length - 1 ? v : v.padEnd(widths[i]!))).join('  '));
  if (opts.limit && sum.trials.length > opts.limit) lines.splice(2, 0, `(last ${opts.limit} of ${sum.trials.length} trials)`);
  lines.push('');
  if (sum.best) {
    lines.push(`best: trial ${sum.best.trial}, ${sum.metric} ${fmt(sum.best.value)}`);
    for (const [k, v] of Object.entries(sum.best.params)) lines.push(`  ${k}: ${fmt(v)}`);
  } else lines.push('best: no complete trial yet');
  if (sum.importances.length) {
    lines.push('', 'parameter importance (share of the objective variance explained by binning on each parameter):');
    for (const i of sum.importances)
      lines.push(`  ${i.param.padEnd(16)} ${(100 * i.importance).toFixed(1).padStart(5)}%  ${'█'.repeat(Math.round(20 * i.importance))}`);
  }
  return lines;
}
