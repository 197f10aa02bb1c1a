/**
 * Adaptation methods on one target, read back from the run folders `graft adapt --out` writes (results.json):
 * each method's (and seed's) unsupervised validator scores, its target accuracy when labelled target data was
 * given (reported only), and the pick of `--method auto` with its reason; several adapt runs on the same target
 * side by side, with a Vega-Lite bar chart. What `graft ui`'s Compare tab shows; it computes nothing itself.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { VegaLiteSpec } from '../report/plot.js';
import { listRuns, readRun } from './runs.js';

/** The scores of one (method, seed) of an adapt run. */
export interface AdaptCandidate {
  /** The run folder's name. */
  run: string;
  method: string;
  seed: number;
  /** The bar's name in the chart: the method, with the seed when the run tried several, and the run when several runs are shown. */
  label: string;
  /** Soft neighbourhood density of the target predictions (higher = better clustered). */
  snd: number;
  /** Mean entropy of the target predictions, nats (lower = more confident). */
  target_entropy: number;
  /** Information maximization, nats (higher = confident and diverse). */
  target_im?: number;
  /** Accuracy on labelled target data, in [0, 1]: reported only, never used to pick. */
  target_acc?: number;
  /** Accuracy on the held-out source images, in [0, 1]. */
  source_val_acc?: number;
  /** The run's `--method auto` picked this one. */
  picked: boolean;
}

/** One finished adapt run, as its results.json tells it. */
export interface AdaptRunView {
  name: string;
  source: string;
  target: string;
  targetEval?: string;
  methods: string[];
  seeds: number[];
  /** The checkpoint criterion within each run (`--select`). */
  selectBy: string;
  /** With `--method auto`: the validator that picked, the pick and why. */
  auto?: { validator: string; pick: { method: string; seed: number }; reason: string };
  candidates: AdaptCandidate[];
  /** The run's model files (the pick's model.onnx for `--method auto`). */
  models: string[];
}

/** Adapt runs on one target side by side. */
export interface AdaptComparison {
  target: string;
  runs: AdaptRunView[];
  /** Every (run, method, seed), in run order. */
  candidates: AdaptCandidate[];
  /** Bars per candidate, one panel per measure (SND, target entropy, IM, target accuracy when known); the picks highlighted. */
  chart: VegaLiteSpec;
}

/** The finished adapt runs in `dir`, grouped by target (newest run first in each group, groups by their newest run). */
export function adaptRunsByTarget(dir: string): { target: string; runs: string[] }[] {
  const groups = new Map<string, string[]>();
  for (const r of listRuns(dir)) {
    if (r.kind !== 'adapt' || r.state !== 'finished') continue;
    const target = String(r.config.target);
    groups.set(target, [...(groups.get(target) ?? []), r.name]);
  }
  return [...groups].map(([target, runs]) => ({ target, runs }));
}

interface StoredScores {
  snd: number;
  target_entropy: number;
  target_im?: number;
  target_acc?: number;
  source_val_acc?: number;
}

interface StoredResults {
  source: string;
  target: string;
  targetEval?: string;
  methods: string[];
  seeds: number[];
  selectBy: string;
  auto?: { validator: string; pick: { method: string; seed: number }; reason: string; candidates: ({ method: string; seed: number } & StoredScores)[] };
  runs: { method: string; seed: number; selected: StoredScores }[];
  models?: string[];
}

/**
 * Reads the finished adapt run in `folder`. With `--method auto`, a candidate's scores are those the pick was made
 * with (every candidate on the same target sample); otherwise those of each run's selected checkpoint.
 * @throws naming the folder when it holds no adapt run, or one that has not finished (no results.json).
 */
export function readAdaptRun(folder: string): AdaptRunView {
  const info = readRun(folder);
  if (info?.kind !== 'adapt') throw new Error(`${folder} holds no graft adapt run; pick one from the adaptation runs (graft adapt --out <folder> makes one).`);
  const file = path.join(folder, 'results.json');
  if (!fs.existsSync(file))
    throw new Error(`${folder} has no results.json: the adapt run has not finished. Continue it with graft adapt --out ${folder} --resume and the same flags.`);
  let doc: StoredResults;
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8')) as StoredResults;
  } catch (e) {
    throw new Error(`Cannot read ${file} (${(e as Error).message}); run the adaptation again with --overwrite.`);
  }
  const seeds = new Set(doc.runs.map((r) => r.seed)).size > 1;
  const pick = doc.auto?.pick;
  const candidate = (method: string, seed: number, s: StoredScores, sourceVal?: number): AdaptCandidate => {
    const c: AdaptCandidate = {
      run: info.name,
      method,
      seed,
      label: seeds ? `${method} · seed ${seed}` : method,
      snd: s.snd,
      target_entropy: s.target_entropy,
      picked: !!pick && pick.method === method && pick.seed === seed,
    };
    if (s.target_im !== undefined) c.target_im = s.target_im;
    if (s.target_acc !== undefined) c.target_acc = s.target_acc;
    if (sourceVal !== undefined) c.source_val_acc = sourceVal;
    return c;
  };
  const ran = (method: string, seed: number) => doc.runs.find((r) => r.method === method && r.seed === seed)?.selected;
  const candidates = doc.auto
    ? doc.auto.candidates.map((c) => candidate(c.method, c.seed, c, ran(c.method, c.seed)?.source_val_acc))
    : doc.runs.map((r) => candidate(r.method, r.seed, r.selected, r.selected.source_val_acc));
  const view: AdaptRunView = {
    name: info.name,
    source: doc.source,
    target: doc.target,
    methods: doc.methods,
    seeds: doc.seeds,
    selectBy: doc.selectBy,
    candidates,
    models: doc.models ?? [],
  };
  if (doc.targetEval) view.targetEval = doc.targetEval;
  if (doc.auto) view.auto = { validator: doc.auto.validator, pick: doc.auto.pick, reason: doc.auto.reason };
  return view;
}

/**
 * Adapt runs on one target side by side: every candidate of every run, and the chart.
 * @throws when no folder is given, one holds no finished adapt run, or the runs adapted to different targets.
 */
export function compareAdaptRuns(folders: readonly string[]): AdaptComparison {
  if (!folders.length) throw new Error('compareAdaptRuns: no runs given; pass one or more graft adapt run folders on the same target.');
  const runs = folders.map(readAdaptRun);
  const target = runs[0]!.target;
  const other = runs.find((r) => r.target !== target);
  if (other)
    throw new Error(
      `${runs[0]!.name} adapted to ${target} and ${other.name} to ${other.target}; methods compare on one target only. Pick the runs of one target.`,
    );
  const candidates = runs.flatMap((r) => r.candidates.map((c) => (runs.length > 1 ? { ...c, label: `${r.name}: ${c.label}` } : c)));
  return { target, runs, candidates, chart: adaptChartSpec(candidates, runs) };
}

/** The measures of the chart: the three validators (none reads a target label), then the reported target accuracy. */
const MEASURES = [
  { key: 'snd', title: 'SND (higher wins)' },
  { key: 'target_entropy', title: 'target entropy (lower wins)' },
  { key: 'target_im', title: 'IM (higher wins)' },
  { key: 'target_acc', title: 'target accuracy % (reported only)' },
] as const;

/** One panel per measure, a bar per candidate; the candidates an auto run picked in another colour. */
export function adaptChartSpec(candidates: readonly AdaptCandidate[], runs: readonly Pick<AdaptRunView, 'auto'>[] = []): VegaLiteSpec {
  const values = candidates.flatMap((c) =>
    MEASURES.flatMap((m) => {
      const v = c[m.key];
      if (v === undefined) return [];
      return [{ label: c.label, measure: m.title, value: m.key === 'target_acc' ? 100 * v : v, pick: c.picked ? 'picked' : 'not picked' }];
    }),
  );
  const shown = MEASURES.filter((m) => values.some((v) => v.measure === m.title)).map((m) => m.title);
  const name = (v: string) => (v === 'entropy' ? 'target entropy' : v.toUpperCase());
  const validators = [...new Set(runs.flatMap((r) => (r.auto ? [name(r.auto.validator)] : [])))];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'Adaptation methods on one target',
      anchor: 'start',
      subtitle: validators.length
        ? `picked by ${validators.join(', ')} (no target label read); target accuracy only reported`
        : 'validator scores; target accuracy only reported',
    },
    data: { values },
    facet: { column: { field: 'measure', type: 'nominal', sort: shown, title: null, header: { labelFontWeight: 'bold' } } },
    spec: {
      width: 150,
      height: { step: 18 },
      mark: 'bar',
      encoding: {
        y: { field: 'label', type: 'nominal', sort: candidates.map((c) => c.label), title: null },
        x: { field: 'value', type: 'quantitative', title: null },
        color: { field: 'pick', type: 'nominal', scale: { domain: ['picked', 'not picked'], range: ['#e45756', '#4c78a8'] }, title: null },
        tooltip: [{ field: 'label', title: 'method' }, { field: 'measure' }, { field: 'value', format: '.4f' }, { field: 'pick' }],
      },
    },
    resolve: { scale: { x: 'independent' } },
    config: { font: 'sans-serif' },
  };
}
