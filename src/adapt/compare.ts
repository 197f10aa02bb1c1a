/**
 * Comparing adaptation methods over seeds: one {@link adapt} run per (method, seed), summarised as mean ± std
 * (sample standard deviation) per method. AdaBN reuses the source-only run of the same seed when both are
 * compared (it only re-estimates BatchNorm statistics on top of it).
 */
import path from 'node:path';
import type { Model } from '../ir/model.js';
import { FINISHED_FILE, loadFinished, saveFinished } from './finished.js';
import { type MethodName, type MethodSpec, parseMethod } from './methods.js';
import { type AdaptOptions, type AdaptResult, adapt, withAdaBN } from './run.js';

/** Mean and sample standard deviation (0 for one value). */
export interface MeanStd {
  mean: number;
  std: number;
  n: number;
}

/** Mean ± sample std of `v`. */
export function meanStd(v: number[]): MeanStd {
  const n = v.length;
  const mean = n ? v.reduce((a, b) => a + b, 0) / n : Number.NaN;
  const std = n > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, std, n };
}

/** One row of a comparison table. */
export interface CompareRow {
  method: MethodName;
  /** Target accuracy (%) of the selected checkpoint, when target evaluation data was given. */
  target_acc?: MeanStd;
  /** Target accuracy (%) of the last checkpoint. */
  target_acc_last?: MeanStd;
  source_val_acc?: MeanStd;
  snd: MeanStd;
  target_entropy: MeanStd;
  seconds: MeanStd;
}

/** Options of {@link compareMethods}: those of {@link adapt} without method/seed, plus the lists. */
export interface CompareOptions extends Omit<AdaptOptions, 'method' | 'seed' | 'model'> {
  methods: (MethodName | MethodSpec)[];
  seeds: number[];
  /** The starting model, or a function of the seed (e.g. a fresh network to train from scratch). */
  model: Model | ((seed: number) => Model);
  /** Called after every run (progress, logging; awaited, so it may score or save the run's model). */
  onRun?: (r: AdaptResult) => void | Promise<void>;
  /**
   * Called before every run. (With `checkpointDir`, each (method, seed) run checkpoints into its own sub-folder
   * `<method>-seed<seed>`, and writes its record there as it finishes: with `resume`, a finished run is read back
   * from it instead of run again, and an unfinished one continues from its last checkpoint.)
   */
  onStart?: (method: MethodName, seed: number) => void;
  /** With `resume`: called for a run read back from its record (`file`) instead of run again, before `onRun`. */
  onReadBack?: (r: AdaptResult, file: string) => void;
}

/** Runs every method for every seed; returns the per-method summary rows and every run (models dropped). */
export async function compareMethods(o: CompareOptions): Promise<{ rows: CompareRow[]; runs: Omit<AdaptResult, 'model' | 'lastModel'>[] }> {
  if (!o.methods.length) throw new Error('compareMethods: no methods given; pass e.g. ["source-only", "mcc"].');
  if (!o.seeds.length) throw new Error('compareMethods: no seeds given; pass e.g. [0, 1, 2].');
  const specs = o.methods.map((m) => (typeof m === 'string' ? { name: parseMethod(m) } : { ...m, name: parseMethod(m.name) }));
  const runs: Omit<AdaptResult, 'model' | 'lastModel'>[] = [];
  const wantsAdabn = specs.some((s) => s.name === 'adabn');
  const plainSourceOnly = specs.some((s) => s.name === 'source-only' && Object.keys(s).length === 1);
  for (const seed of o.seeds) {
    let sourceOnly: AdaptResult | undefined;
    for (const spec of specs) {
      o.onStart?.(spec.name, seed);
      const model = typeof o.model === 'function' ? o.model(seed) : o.model;
      // each run keeps its own checkpoints and, once finished, its record: <checkpointDir>/<method>-seed<seed>/
      const checkpointDir = o.checkpointDir && path.join(o.checkpointDir, `${spec.name}-seed${seed}`);
      let r = o.resume && checkpointDir ? loadFinished(checkpointDir, model, { method: spec.name, seed }) : undefined;
      if (r) o.onReadBack?.(r, path.join(checkpointDir!, FINISHED_FILE));
      else {
        if (spec.name === 'adabn' && sourceOnly && Object.keys(spec).length === 1) r = await withAdaBN(sourceOnly, o);
        // one method, one seed: the lists (and auto's options) stay here
        else
          r = await adapt({
            ...o,
            model,
            method: spec,
            seed,
            checkpointDir,
            seeds: undefined,
            candidates: undefined,
            validator: undefined,
            ensemble: undefined,
          });
        if (checkpointDir) saveFinished(checkpointDir, r, model);
      }
      if (spec.name === 'source-only' && Object.keys(spec).length === 1 && wantsAdabn) sourceOnly = r;
      const { model: _m, lastModel: _l, ...rest } = r;
      runs.push(rest);
      await o.onRun?.(r);
    }
    if (!plainSourceOnly) sourceOnly = undefined;
  }
  return { rows: summarize(runs), runs };
}

/** Per-method mean ± std of the scores of `runs` (accuracies in %). */
export function summarize(runs: Omit<AdaptResult, 'model' | 'lastModel'>[]): CompareRow[] {
  const methods = [...new Set(runs.map((r) => r.method))];
  return methods.map((method) => {
    const rs = runs.filter((r) => r.method === method);
    const pct = (f: (r: Omit<AdaptResult, 'model' | 'lastModel'>) => number | undefined) => {
      const v = rs.map(f).filter((x): x is number => x !== undefined);
      return v.length ? meanStd(v.map((x) => 100 * x)) : undefined;
    };
    const row: CompareRow = {
      method,
      snd: meanStd(rs.map((r) => r.selected.snd)),
      target_entropy: meanStd(rs.map((r) => r.selected.target_entropy)),
      seconds: meanStd(rs.map((r) => r.seconds)),
    };
    const ta = pct((r) => r.selected.target_acc);
    if (ta) row.target_acc = ta;
    const tl = pct((r) => r.last.target_acc);
    if (tl) row.target_acc_last = tl;
    const sv = pct((r) => r.selected.source_val_acc);
    if (sv) row.source_val_acc = sv;
    return row;
  });
}

const fmt = (v: MeanStd | undefined, digits = 1) => (v ? (v.n > 1 ? `${v.mean.toFixed(digits)} ± ${v.std.toFixed(digits)}` : v.mean.toFixed(digits)) : '—');

/** The comparison as a Markdown table (one row per method). */
export function formatCompareTable(rows: CompareRow[], selectBy = 'im'): string[] {
  const hasTarget = rows.some((r) => r.target_acc);
  const head = [
    'method',
    ...(hasTarget ? [`target acc % (${selectBy}-picked)`, 'target acc % (last)'] : []),
    'source val acc %',
    'SND',
    'target entropy',
    'seconds/run',
  ];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const r of rows)
    lines.push(
      `| ${[
        r.method,
        ...(hasTarget ? [fmt(r.target_acc), fmt(r.target_acc_last)] : []),
        fmt(r.source_val_acc),
        fmt(r.snd, 3),
        fmt(r.target_entropy, 3),
        fmt(r.seconds, 0),
      ].join(' | ')} |`,
    );
  return lines;
}
