/**
 * The run folders under a runs directory, as a UI or a server lists them: each run's config, its state
 * (finished, or incomplete: cancelled or killed, so it can be resumed), its epoch history, and the config that
 * resumes it. Reads only what `runTraining` writes (config.json, metrics.jsonl, model.json), and tells a
 * `graft adapt --out` folder (its config.json names the target and the methods; results.json when it ended)
 * apart as kind 'adapt' (run/adapt-results.ts reads those).
 */
import fs from 'node:fs';
import path from 'node:path';
import { compareCurvesSpec } from '../report/curves.js';
import type { VegaLiteSpec } from '../report/plot.js';
import { diffKeys, stripNeutral } from '../train/run-dir.js';
import { readJsonl } from '../util/jsonl.js';
import { type GraftConfig, getPath, parseConfig } from './config.js';

/** One run folder. */
export interface RunInfo {
  name: string;
  folder: string;
  /** train: `runTraining`'s (graft train, graft ui); adapt: `graft adapt --out`'s. */
  kind: 'train' | 'adapt';
  /**
   * finished: model.onnx and its sidecar are written (an adapt run: results.json); incomplete: cancelled, failed
   * or killed (resumable).
   */
  state: 'finished' | 'incomplete';
  /** config.json as stored (with `source`, where the config came from). */
  config: Record<string, unknown>;
  /** Every epoch's metrics (metrics.jsonl), with its phase. */
  history: Record<string, number | string>[];
  /** The sidecar's final metrics of a finished run. */
  metrics?: { val?: { loss: number; acc: number }; test?: { loss: number; acc: number } };
  /** config.json's modification time (ms since the epoch): when the run started. */
  started: number;
}

/** Reads one run folder; undefined when it holds no graft run (no readable config.json). */
export function readRun(folder: string): RunInfo | undefined {
  const configFile = path.join(folder, 'config.json');
  let config: Record<string, unknown>;
  let started: number;
  try {
    config = JSON.parse(fs.readFileSync(configFile, 'utf8'));
    started = fs.statSync(configFile).mtimeMs;
  } catch {
    return undefined;
  }
  if (isAdaptConfig(config)) {
    const state = fs.existsSync(path.join(folder, 'results.json')) ? 'finished' : 'incomplete';
    return { name: path.basename(folder), folder, kind: 'adapt', state, config, history: [], started };
  }
  const metricsFile = path.join(folder, 'metrics.jsonl');
  const history = fs.existsSync(metricsFile) ? readJsonl<Record<string, number | string>>(metricsFile) : [];
  const sidecar = path.join(folder, 'model.json');
  const finished = fs.existsSync(path.join(folder, 'model.onnx')) && fs.existsSync(sidecar);
  const info: RunInfo = { name: path.basename(folder), folder, kind: 'train', state: finished ? 'finished' : 'incomplete', config, history, started };
  if (finished) {
    try {
      const m = JSON.parse(fs.readFileSync(sidecar, 'utf8')).metrics;
      if (m) info.metrics = { val: m.val, test: m.test };
    } catch {
      // a sidecar being rewritten: the metrics come on the next read
    }
  }
  return info;
}

/** Whether a stored config.json is `graft adapt`'s (its flags by name: the target and the methods), not a graft config. */
export function isAdaptConfig(config: Record<string, unknown>): boolean {
  return typeof config.target === 'string' && 'methods' in config && !('train' in config);
}

/** The runs in `dir` (one folder each), newest first; an empty list when `dir` does not exist. */
export function listRuns(dir: string): RunInfo[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .map((n) => readRun(path.join(dir, n)))
    .filter((r): r is RunInfo => !!r)
    .sort((a, b) => b.started - a.started);
}

/**
 * The config that continues the run in `folder` (its stored config with `run.resume`), for `startRun`.
 * @throws naming the folder when it holds no run or its config no longer validates.
 */
export function resumeConfig(folder: string): { config: GraftConfig; source: string } {
  const info = readRun(folder);
  if (!info) throw new Error(`${folder} holds no graft run (no readable config.json); start a new run instead of resuming.`);
  if (info.kind === 'adapt') throw new Error(`${folder} is a graft adapt run; continue it with \`graft adapt --out ${folder} --resume\` and the same flags.`);
  const { source, ...raw } = info.config;
  const config = parseConfig(raw, path.join(folder, 'config.json'));
  config.run.resume = true;
  config.run.overwrite = false;
  return { config, source: typeof source === 'string' ? source : 'config.json' };
}

/** Runs side by side: the config keys whose values differ (with each run's value) and their curves overlaid. */
export interface RunComparison {
  runs: string[];
  /** Dotted config keys (e.g. `train.mode`) that differ between the runs, with each run's value (undefined: not set). */
  diff: { key: string; values: unknown[] }[];
  curves: VegaLiteSpec;
}

/** Compares the runs in `folders`: their stored configs (less the keys a resume may change) and their histories. */
export function compareRuns(folders: readonly string[]): RunComparison {
  const runs = folders.map((f) => {
    const r = readRun(f);
    if (!r) throw new Error(`${f} holds no graft run (no readable config.json); pick runs from the list.`);
    if (r.kind === 'adapt')
      throw new Error(`${r.name} is a graft adapt run; compare adaptation runs by their target (compareAdaptRuns), not with training runs.`);
    return r;
  });
  // keys that do not change the numbers (run.name, run.resume, threads, …) are no difference
  const configs = runs.map((r) => stripNeutral(r.config));
  const keys = new Set<string>();
  for (const c of configs.slice(1)) for (const k of diffKeys(configs[0], c)) keys.add(k);
  return {
    runs: runs.map((r) => r.name),
    diff: [...keys].sort().map((key) => ({ key, values: configs.map((c) => getPath(c, key)) })),
    curves: compareCurvesSpec(runs),
  };
}
