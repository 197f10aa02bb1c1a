/**
 * The study loop: keeps every executor slot busy with a trial (re-runs of interrupted trials first, then new
 * trials from the sampler), records each start / report / end in the study log, asks the pruner after every
 * report, and shows a progress bar over trials with the best value so far.
 *
 * Durability: a trial's `start` and `end` are fsync'ed, so a study killed at any moment resumes with every
 * finished trial kept once and every running trial re-run from scratch (same parameters, `attempt` + 1,
 * after an `interrupted` record). Trials that crash are recorded as failed with their error; the study goes on.
 * Reproducibility: parameters are drawn from a generator seeded by (seed, trial id) and depend only on the
 * trials finished before; with one worker a study is deterministic, also across a kill and resume.
 */
import { createProgress, type Metrics, type ProgressOptions } from '../util/progress.js';
import type { Executor } from './pool.js';
import type { Pruner } from './pruners.js';
import type { Sampler } from './samplers.js';
import { StudyLog } from './storage.js';
import { better, type StudyIdentity, type TrialJob, type TrialRecord } from './types.js';

/** Options of {@link runStudy}. */
export interface StudyOptions {
  /** The study log (study.jsonl). */
  file: string;
  identity: StudyIdentity;
  sampler: Sampler;
  pruner: Pruner;
  executor: Executor;
  /** Trials in total, counting those already in the log (ids 0 … trials − 1). */
  trials: number;
  /** Continue an existing study (re-running interrupted trials). */
  resume?: boolean;
  /** Seconds after which no new trial starts. */
  timeout?: number;
  /** Progress bar options; false for none. */
  progress?: ProgressOptions | false;
  /** Settings recorded in the log (sampler, pruner, workers, …) for `graft tune show`. */
  settings?: Record<string, unknown>;
  /** Told when the study's lock was left by a process that no longer runs (killed), and is taken over. */
  onWarning?: (message: string) => void;
  /** Stops scheduling when aborted and returns at once; running trials stay open in the log and are re-run on resume. */
  signal?: AbortSignal;
  /** Called after each trial ends (tests, logging). */
  onTrialEnd?: (t: TrialRecord) => void;
  /** Called after each trial starts. */
  onTrialStart?: (job: TrialJob) => void;
}

/** What {@link runStudy} returns. */
export interface StudyResult {
  /** Every trial, by id. */
  trials: TrialRecord[];
  best?: TrialRecord;
  /** Trials re-run in this session because a previous session was killed while they ran. */
  rerun: number[];
  /** True when the study stopped early (timeout or abort). */
  stopped: boolean;
  seconds: number;
}

/** The best complete trial (ties: the earlier one). */
export function bestTrial(trials: readonly TrialRecord[], direction: StudyIdentity['direction']): TrialRecord | undefined {
  let best: TrialRecord | undefined;
  for (const t of [...trials].sort((a, b) => a.id - b.id))
    if (t.state === 'complete' && t.value !== undefined && Number.isFinite(t.value) && (!best || better(direction, t.value, best.value!))) best = t;
  return best;
}

/** Counts of trials by state. */
export function stateCounts(trials: readonly TrialRecord[]): Record<'complete' | 'pruned' | 'failed' | 'running', number> {
  const c = { complete: 0, pruned: 0, failed: 0, running: 0 };
  for (const t of trials) c[t.state]++;
  return c;
}

/**
 * Runs (or resumes) a study until `trials` trials have finished, the timeout passes, or `signal` aborts.
 * @throws when the log cannot be opened (exists without resume, another space, locked) or written.
 */
export async function runStudy(o: StudyOptions): Promise<StudyResult> {
  const t0 = performance.now();
  const log = StudyLog.open(o.file, o.identity, { resume: !!o.resume, settings: o.settings, onWarning: o.onWarning });
  const all = () => [...log.trials.values()];
  const direction = o.identity.direction;
  let closed = false;
  const progress = o.progress === false ? undefined : createProgress({ label: 'tune', unit: 'trial', ...o.progress, total: o.trials });
  const metrics = (): Metrics => {
    const c = stateCounts(all());
    const b = bestTrial(all(), direction);
    const m: Metrics = { best: b?.value ?? '-' };
    if (b) m.trial = b.id;
    m.pruned = c.pruned;
    if (c.failed) m.failed = c.failed;
    return m;
  };
  try {
    // trials that were running when the last session died: re-run from scratch
    const queue: TrialJob[] = [];
    for (const t of all().sort((a, b) => a.id - b.id)) {
      if (t.state !== 'running') continue;
      log.append({ type: 'interrupted', trial: t.id, attempt: t.attempt, t: Date.now() });
      queue.push({ id: t.id, attempt: t.attempt + 1, params: t.params });
    }
    const rerun = queue.map((j) => j.id);
    let nextId = all().reduce((m, t) => Math.max(m, t.id + 1), 0);
    const finished = all().filter((t) => t.state !== 'running').length;
    if (finished) progress?.tick(finished, metrics());
    const running = new Map<number, Promise<void>>();
    let failure: unknown;
    let failedInARow = 0;
    let stopped = false;
    let aborted = false;
    const abort = new Promise<void>((resolve) => {
      if (o.signal?.aborted) resolve();
      o.signal?.addEventListener('abort', () => resolve(), { once: true });
    }).then(() => {
      aborted = true;
    });

    const start = (job: TrialJob) => {
      log.append({ type: 'start', trial: job.id, attempt: job.attempt, params: job.params, t: Date.now() }, true);
      o.onTrialStart?.(job);
      const began = performance.now();
      const onReport = (step: number, value: number): boolean => {
        const rec = log.trials.get(job.id);
        if (closed || !rec || rec.attempt !== job.attempt || rec.state !== 'running') return true;
        log.append({ type: 'report', trial: job.id, attempt: job.attempt, step, value });
        return o.pruner.shouldPrune(rec, step, all());
      };
      const p = o.executor
        .run(job, onReport)
        .then((out) => {
          if (closed) return;
          const seconds = Math.round((performance.now() - began) / 10) / 100;
          log.append(
            {
              type: 'end',
              trial: job.id,
              attempt: job.attempt,
              state: out.state,
              value: out.state === 'failed' ? undefined : out.value,
              error: out.state === 'failed' ? out.error : undefined,
              seconds,
            },
            true,
          );
          progress?.tick(1, metrics());
          o.onTrialEnd?.(log.trials.get(job.id)!);
          if (out.state === 'failed') {
            failedInARow++;
            const c = stateCounts(all());
            if (c.complete + c.pruned === 0 && failedInARow >= Math.max(3, o.executor.slots + 1))
              failure ??= new Error(
                `The first ${failedInARow} trials all failed, so the study stops; the last error: ${out.error}. Fix the objective, then continue with --resume.`,
              );
          } else failedInARow = 0;
        })
        .catch((e) => {
          failure ??= e;
        })
        .finally(() => running.delete(job.id));
      running.set(job.id, p);
    };

    for (;;) {
      const timedOut = o.timeout !== undefined && (performance.now() - t0) / 1000 > o.timeout;
      if (timedOut) stopped = true;
      while (!failure && !aborted && !timedOut && running.size < o.executor.slots) {
        let job = queue.shift();
        if (!job) {
          if (nextId >= o.trials) break;
          const id = nextId++;
          job = { id, attempt: 1, params: o.sampler.sample(id, all()) };
        }
        start(job);
      }
      if (failure) throw failure;
      if (running.size === 0 || aborted) break;
      await Promise.race([...running.values(), abort]);
    }
    if (aborted) stopped = true;
    const trials = all().sort((a, b) => a.id - b.id);
    return { trials, best: bestTrial(trials, direction), rerun, stopped, seconds: (performance.now() - t0) / 1000 };
  } finally {
    closed = true;
    progress?.done(metrics());
    log.close();
  }
}
