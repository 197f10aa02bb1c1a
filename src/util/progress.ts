/**
 * Progress reporting: a cli-progress bar (with rate and ETA) on a terminal, throttled JSON Lines
 * elsewhere (pipes, CI logs, `--json`), nothing under `--quiet`.
 */
import cliProgress from 'cli-progress';
import { toJsonLine } from './jsonl.js';

/** Numbers (or short strings) shown beside the bar, e.g. `{ loss: 0.31, acc: 0.92 }`. */
export type Metrics = Record<string, number | string>;

/** Options for {@link createProgress}. */
export interface ProgressOptions {
  /** Number of units expected (0 or undefined: unknown, no ETA). */
  total?: number;
  /** Short label, e.g. "epoch 1/5". */
  label?: string;
  /** Unit name shown after counts and in the rate, e.g. "batch" or "img". Default "it". */
  unit?: string;
  /** Where to write. Default: process.stderr (stdout stays clean for results). */
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Force the output mode; default: `bar` on a TTY, `jsonl` otherwise ({@link configureProgress} can change it). */
  mode?: 'bar' | 'jsonl' | 'silent';
  /** Minimum milliseconds between JSONL lines (default 500, i.e. at most 2 lines per second plus the final one). */
  intervalMs?: number;
  /** Clock in milliseconds (for tests). */
  now?: () => number;
}

/** A running progress report. */
export interface Progress {
  /** Records `n` more units done (default 1), with optional metrics to display. */
  tick(n?: number, metrics?: Metrics): void;
  /** Finishes the report (always writes a final JSONL line in jsonl mode). Safe to call twice. */
  done(metrics?: Metrics): void;
}

const defaults: { json: boolean; quiet: boolean } = { json: false, quiet: false };

/** Process-wide defaults set by the CLI's global `--json` / `--quiet` options. */
export function configureProgress(opts: { json?: boolean; quiet?: boolean }): void {
  if (opts.json !== undefined) defaults.json = opts.json;
  if (opts.quiet !== undefined) defaults.quiet = opts.quiet;
}

/** Formats metrics compactly: numbers with 4 significant digits. */
export function formatMetrics(m: Metrics | undefined): string {
  if (!m) return '';
  return Object.entries(m)
    .map(([k, v]) => `${k}=${typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : v}`)
    .join(' ');
}

/**
 * Creates a progress reporter.
 * - Terminal: a bar with count, rate (`unit/s`), ETA and metrics.
 * - Otherwise: JSON lines `{"event":"progress","label","done","total","unit","rate","eta_s","elapsed_s",...metrics}`,
 *   at most one per `intervalMs` plus a final line with `"final":true`.
 */
export function createProgress(opts: ProgressOptions = {}): Progress {
  const stream = opts.stream ?? process.stderr;
  const mode = opts.mode ?? (defaults.quiet ? 'silent' : defaults.json || !stream.isTTY ? 'jsonl' : 'bar');
  const now = opts.now ?? Date.now;
  const total = opts.total && opts.total > 0 ? opts.total : 0;
  const unit = opts.unit ?? 'it';
  const label = opts.label ?? '';
  const interval = opts.intervalMs ?? 500;
  const start = now();
  let count = 0;
  let metrics: Metrics | undefined;
  let finished = false;
  let lastLine = Number.NEGATIVE_INFINITY;

  const stats = () => {
    const elapsed = Math.max((now() - start) / 1000, 1e-9);
    const rate = count / elapsed;
    const eta = total && rate > 0 ? Math.max(0, (total - count) / rate) : null;
    return { elapsed, rate, eta };
  };

  if (mode === 'silent') {
    return { tick: () => {}, done: () => {} };
  }

  if (mode === 'jsonl') {
    const emit = (final: boolean) => {
      const s = stats();
      const line = {
        event: 'progress',
        label,
        done: count,
        total: total || null,
        unit,
        rate: round(s.rate),
        eta_s: s.eta === null ? null : round(s.eta),
        elapsed_s: round(s.elapsed),
        ...(final ? { final: true } : {}),
        ...metrics,
      };
      stream.write(`${toJsonLine(line)}\n`);
      lastLine = now();
    };
    return {
      tick(n = 1, m) {
        if (finished) return;
        count += n;
        if (m) metrics = { ...metrics, ...m };
        if (now() - lastLine >= interval) emit(false);
      },
      done(m) {
        if (finished) return;
        finished = true;
        if (m) metrics = { ...metrics, ...m };
        emit(true);
      },
    };
  }

  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: `${label ? `${label} ` : ''}${total ? '[{bar}] {percentage}% ' : ''}{value}${total ? '/{total}' : ''} ${unit} | {rate} ${unit}/s${total ? ' | ETA {eta_formatted}' : ''} {metrics}`,
      hideCursor: true,
      fps: 5,
      etaBuffer: 50,
      clearOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total || 1, 0, { rate: '0', metrics: '' });
  const payload = () => ({ rate: stats().rate.toFixed(stats().rate < 10 ? 2 : 0), metrics: formatMetrics(metrics) });
  return {
    tick(n = 1, m) {
      if (finished) return;
      count += n;
      if (m) metrics = { ...metrics, ...m };
      if (!total) bar.setTotal(count + 1);
      bar.update(count, payload());
    },
    done(m) {
      if (finished) return;
      finished = true;
      if (m) metrics = { ...metrics, ...m };
      if (!total) bar.setTotal(count);
      bar.update(count, payload());
      bar.stop();
    },
  };
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/**
 * Progress of one long task of the pipeline (hashing files, validating images, extracting features). The
 * pipeline never prints: it calls an {@link OnTaskProgress} with these, and a surface draws them (the CLI with
 * {@link taskProgressBars}, a UI with its own widgets). `done` counts up to `total`; the last report has done = total.
 */
export interface TaskProgress {
  /** What is being done, e.g. "hashing images", "extracting features". */
  task: string;
  done: number;
  total: number;
  /** Unit of done/total, e.g. "img". */
  unit: string;
}

/** Receives {@link TaskProgress} reports. */
export type OnTaskProgress = (p: TaskProgress) => void;

/**
 * An {@link OnTaskProgress} that draws each task as a {@link createProgress} report (a bar with rate and ETA on a
 * terminal, JSON lines otherwise): a new report when a task starts, finished when done reaches total.
 */
export function taskProgressBars(opts: Omit<ProgressOptions, 'total' | 'label' | 'unit'> = {}): OnTaskProgress {
  let current: { task: string; bar: Progress; done: number } | undefined;
  return (p) => {
    if (!current || current.task !== p.task || p.done < current.done) {
      current?.bar.done();
      current = { task: p.task, bar: createProgress({ ...opts, total: p.total, label: p.task, unit: p.unit }), done: 0 };
    }
    if (p.done > current.done) current.bar.tick(p.done - current.done);
    current.done = p.done;
    if (p.done >= p.total) {
      current.bar.done();
      current = undefined;
    }
  };
}
